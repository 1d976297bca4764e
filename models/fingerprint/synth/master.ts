/**
 * A master fingerprint: everything about one finger that does not change between impressions (area, class,
 * singular points, orientation and period fields, ridge pattern). Deterministic from the seed.
 */
import { UsageError } from '../../../protocol/errors.ts';
import { drawFrequencyModel, MAX_PERIOD, MIN_PERIOD, periodField } from './frequency.ts';
import { growRidges } from './gabor-growth.ts';
import { drawOrientationModel, orientationField } from './orientation.ts';
import { drawPattern } from './pattern.ts';
import { mixSeed, rng } from './random.ts';
import { drawSilhouette, silhouetteMask, silhouetteRadii } from './silhouette.ts';
import type { MasterFingerprint, SynthesizeOptions } from './types.ts';

export const MASTER_WIDTH = 320;
export const MASTER_HEIGHT = 384;

/** Everything of a master except its ridges (cheap: the fields tests and tools can inspect on their own). */
export type FingerFields = Omit<MasterFingerprint, 'ridges' | 'iterations'>;

function checkOptions(seed: number, o: SynthesizeOptions): void {
  const bad = (what: string): never => {
    throw new UsageError(`synthesizeFinger: ${what}`);
  };
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) bad(`seed must be an integer from 0 to 2^32-1, got ${seed}`);
  for (const [k, v] of [['width', o.width], ['height', o.height]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 96 || v > 2048)) bad(`${k} must be an integer from 96 to 2048, got ${v}`);
  }
  if (o.meanPeriod !== undefined && !(o.meanPeriod >= MIN_PERIOD && o.meanPeriod <= MAX_PERIOD)) bad(`meanPeriod must be from ${MIN_PERIOD} to ${MAX_PERIOD} px, got ${o.meanPeriod}`);
  if (o.seeds !== undefined && (!Number.isInteger(o.seeds) || o.seeds < 1 || o.seeds > 10_000)) bad(`seeds must be an integer from 1 to 10000, got ${o.seeds}`);
}

export function fingerFields(seed: number, opts: SynthesizeOptions = {}): FingerFields {
  checkOptions(seed, opts);
  const width = opts.width ?? MASTER_WIDTH;
  const height = opts.height ?? MASTER_HEIGHT;
  // One stream per stage, so a change in how one stage draws does not reshuffle the others.
  const silhouette = drawSilhouette(rng(mixSeed(seed, 1)), width, height);
  const pattern = drawPattern(rng(mixSeed(seed, 2)), silhouette, opts.cls);
  const orientationModel = drawOrientationModel(rng(mixSeed(seed, 3)), pattern, silhouette);
  const frequencyModel = drawFrequencyModel(rng(mixSeed(seed, 4)), pattern, silhouette, opts.meanPeriod);
  const orientation = orientationField(orientationModel, width, height);
  const period = periodField(frequencyModel, width, height);
  const radii = silhouetteRadii(silhouette, width, height);
  const mask = silhouetteMask(silhouette, radii);
  return { seed, width, height, mask, radius: radii, orientation, period, pattern, silhouette };
}

export function synthesizeFinger(seed: number, opts: SynthesizeOptions = {}): MasterFingerprint {
  const f = fingerFields(seed, opts);
  const { width, height, silhouette, orientation, period, mask } = f;
  const radii = f.radius;
  // Grow a little beyond the silhouette so the ridges do not fade before the edge.
  const region = new Uint8Array(width * height);
  const margin = 1 + 12 / Math.min(silhouette.rx, silhouette.ry);
  for (let i = 0; i < region.length; i++) region[i] = radii[i]! < margin ? 1 : 0;
  const growthRng = rng(mixSeed(seed, 5));
  const seeds = opts.seeds ?? growthRng.int(40, 70);
  const target = new Uint8Array(width * height);
  for (let i = 0; i < target.length; i++) target[i] = mask[i]! > 0 ? 1 : 0;
  const grown = growRidges({ width, height, orientation, period, region, target, seeds }, growthRng);
  return { ...f, ridges: grown.ridges, iterations: grown.iterations };
}
