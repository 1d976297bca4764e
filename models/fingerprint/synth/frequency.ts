/**
 * Ridge period map (pixels at 500 dpi): a finger's mean period, a smooth random variation, and sparser ridges above
 * the highest core and below the lowest delta, as observed on real fingers. Clamped to the 8-11 px range typical
 * of adult fingers at 500 dpi.
 */
import type { Rng } from './random.ts';
import type { Pattern, Silhouette } from './types.ts';

export const MIN_PERIOD = 8;
export const MAX_PERIOD = 11;

export interface FrequencyModel {
  mean: number;
  /** Low-frequency cosine modes: amplitude, wave vector, phase. */
  modes: Array<{ a: number; kx: number; ky: number; phase: number }>;
  /** Extra period above the top core / below the bottom delta, and where those regions start. */
  above: { y: number; extra: number; span: number };
  below: { y: number; extra: number; span: number };
}

export function drawFrequencyModel(r: Rng, pattern: Pattern, s: Silhouette, meanPeriod?: number): FrequencyModel {
  const modes = [];
  for (let i = 0; i < 4; i++) {
    const wavelength = r.uniform(120, 320);
    const dir = r.uniform(0, Math.PI);
    modes.push({ a: r.uniform(0.15, 0.35), kx: (Math.cos(dir) * 2 * Math.PI) / wavelength, ky: (Math.sin(dir) * 2 * Math.PI) / wavelength, phase: r.uniform(0, 2 * Math.PI) });
  }
  const top = pattern.cores.length ? Math.min(...pattern.cores.map((c) => c.y)) : s.cy - 0.15 * s.ry;
  const bottom = pattern.deltas.length ? Math.max(...pattern.deltas.map((d) => d.y)) : s.cy + 0.5 * s.ry;
  return {
    mean: meanPeriod ?? r.uniform(8.6, 10.2),
    modes,
    above: { y: top - 10, extra: r.uniform(0.5, 1.0), span: 0.4 * s.ry },
    below: { y: bottom + 10, extra: r.uniform(0.2, 0.6), span: 0.3 * s.ry },
  };
}

export function periodAt(m: FrequencyModel, x: number, y: number): number {
  let p = m.mean;
  for (const md of m.modes) p += md.a * Math.cos(md.kx * x + md.ky * y + md.phase);
  const up = Math.min(1, Math.max(0, (m.above.y - y) / m.above.span));
  const down = Math.min(1, Math.max(0, (y - m.below.y) / m.below.span));
  p += m.above.extra * up * up * (3 - 2 * up) + m.below.extra * down * down * (3 - 2 * down);
  return Math.min(MAX_PERIOD, Math.max(MIN_PERIOD, p));
}

export function periodField(m: FrequencyModel, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[y * width + x] = periodAt(m, x, y);
  return out;
}
