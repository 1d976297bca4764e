/**
 * Synthetic MINUTIAE sets (not images) for testing and benchmarking the matcher without an extractor: a random
 * "finger" and impressions of it, deterministic from a seed (models/common/prng.ts). Image synthesis lives in
 * models/fingerprint/synth/; this only models what an extractor would hand the matcher.
 *
 * Finger: 30-60 minutiae spread over an elliptical pad (about 270 x 360 px at 500 dpi) with a minimum spacing, whose
 * directions follow a smooth orientation field (core/delta zero-pole model plus a low-frequency wobble) with a random
 * ridge sense, as real minutiae do; this makes unrelated fingers look locally alike, as they do in reality.
 * Impression: smooth non-linear distortion, rotation, translation, per-minutia jitter and angle noise, missed minutiae,
 * spurious ones (lower quality, along the same field), and a crop to part of the pad (partial contact).
 */
import { mulberry32, uniform } from '../../common/prng.ts';
import { angleFromImageVector, normaliseAngle, type FingerRecord, type Minutia } from '../minutiae.ts';

export interface SyntheticFinger {
  minutiae: Minutia[];
  /** Orientation field (ridge direction mod pi, our counter-clockwise convention) at a point of the pad. */
  orientation: (x: number, y: number) => number;
}

export const PAD = { cx: 160, cy: 200, rx: 135, ry: 180 } as const;
export const IMPRESSION_SIZE = { width: 448, height: 512 } as const;

const inPad = (x: number, y: number) => ((x - PAD.cx) / PAD.rx) ** 2 + ((y - PAD.cy) / PAD.ry) ** 2 <= 1;

export function syntheticFinger(seed: number, count?: number): SyntheticFinger {
  const rand = mulberry32(seed);
  const n = count ?? 30 + Math.floor(rand() * 31);
  const core = { x: PAD.cx + uniform(rand, -30, 30), y: PAD.cy + uniform(rand, -60, 0) };
  const delta = { x: PAD.cx + uniform(rand, -120, 120), y: PAD.cy + uniform(rand, 80, 160) };
  const tilt = uniform(rand, -0.3, 0.3);
  const w = [uniform(rand, 0.1, 0.25), uniform(rand, 0, 2 * Math.PI), uniform(rand, 0.004, 0.012), uniform(rand, 0.004, 0.012)];
  // Zero-pole model (Sherlock & Monro): half the difference of the arguments to the core and to the delta. The image
  // y axis points down, hence the minus signs to stay counter-clockwise.
  const orientation = (x: number, y: number) =>
    0.5 * (Math.atan2(-(y - core.y), x - core.x) - Math.atan2(-(y - delta.y), x - delta.x)) + Math.PI / 2 + tilt +
    w[0]! * Math.sin(w[2]! * x + w[3]! * y + w[1]!);

  const minutiae: Minutia[] = [];
  const minGap = 18;
  for (let tries = 0; minutiae.length < n && tries < 20000; tries++) {
    const x = uniform(rand, PAD.cx - PAD.rx, PAD.cx + PAD.rx);
    const y = uniform(rand, PAD.cy - PAD.ry, PAD.cy + PAD.ry);
    if (!inPad(x, y)) continue;
    if (minutiae.some((m) => Math.hypot(m.x - x, m.y - y) < minGap)) continue;
    const sense = rand() < 0.5 ? 0 : Math.PI;
    minutiae.push({
      x, y,
      angle: normaliseAngle(orientation(x, y) + sense + uniform(rand, -0.1, 0.1)),
      type: rand() < 0.5 ? 'ending' : 'bifurcation',
      quality: Math.round(uniform(rand, 40, 100)),
    });
  }
  return { minutiae, orientation };
}

export interface ImpressionOptions {
  /** Largest rotation (rad), default 30 degrees. */
  maxRotation?: number;
  /** Largest translation (px), default 40. */
  maxTranslation?: number;
  /** Amplitude (px) of the smooth non-linear distortion, default 6. */
  distortion?: number;
  /** Position jitter (+- px) and angle noise (+- rad), defaults 4 px and 10 degrees. */
  jitter?: number;
  angleNoise?: number;
  /** Fractions of minutiae missed and of spurious ones added, drawn uniformly in these ranges. */
  missing?: readonly [number, number];
  spurious?: readonly [number, number];
  /** Fraction of the pad's width and height seen by the sensor, drawn uniformly in this range; 1 = no crop. */
  crop?: readonly [number, number];
}

/** One impression of a finger as an extractor would report it, deterministic from `seed`. */
export function syntheticImpression(finger: SyntheticFinger, seed: number, o: ImpressionOptions = {}): FingerRecord {
  const rand = mulberry32(seed);
  const maxRot = o.maxRotation ?? Math.PI / 6;
  const maxT = o.maxTranslation ?? 40;
  const amp = o.distortion ?? 6;
  const jitter = o.jitter ?? 4;
  const angleNoise = o.angleNoise ?? (10 * Math.PI) / 180;
  const [miss0, miss1] = o.missing ?? [0.15, 0.25];
  const [sp0, sp1] = o.spurious ?? [0.1, 0.2];
  const [cr0, cr1] = o.crop ?? [0.75, 0.95];

  // Missed minutiae, then spurious ones drawn on the pad along the orientation field.
  const missRate = uniform(rand, miss0, miss1);
  const kept = finger.minutiae.filter(() => rand() >= missRate);
  const nSpurious = Math.round(finger.minutiae.length * uniform(rand, sp0, sp1));
  const all: Minutia[] = [...kept];
  for (let i = 0, tries = 0; i < nSpurious && tries < 10000; tries++) {
    const x = uniform(rand, PAD.cx - PAD.rx, PAD.cx + PAD.rx);
    const y = uniform(rand, PAD.cy - PAD.ry, PAD.cy + PAD.ry);
    if (!inPad(x, y)) continue;
    all.push({ x, y, angle: normaliseAngle(finger.orientation(x, y) + (rand() < 0.5 ? 0 : Math.PI)), type: rand() < 0.5 ? 'ending' : 'bifurcation', quality: Math.round(uniform(rand, 10, 60)) });
    i++;
  }

  // Partial contact: a window covering part of the pad.
  const cw = PAD.rx * 2 * uniform(rand, cr0, cr1);
  const ch = PAD.ry * 2 * uniform(rand, cr0, cr1);
  const x0 = uniform(rand, PAD.cx - PAD.rx, PAD.cx + PAD.rx - cw);
  const y0 = uniform(rand, PAD.cy - PAD.ry, PAD.cy + PAD.ry - ch);
  const seen = all.filter((m) => m.x >= x0 && m.x <= x0 + cw && m.y >= y0 && m.y <= y0 + ch);

  // Smooth distortion (two low-frequency sine fields), then rotation about the pad centre and translation into the
  // impression's image. Directions are carried through the same map by finite differences.
  const f = [uniform(rand, 0.006, 0.014), uniform(rand, 0.006, 0.014), uniform(rand, 0, 6.3), uniform(rand, 0, 6.3), uniform(rand, -1, 1)];
  const rot = uniform(rand, -maxRot, maxRot);
  const tx = IMPRESSION_SIZE.width / 2 - PAD.cx + uniform(rand, -maxT, maxT);
  const ty = IMPRESSION_SIZE.height / 2 - PAD.cy + uniform(rand, -maxT, maxT);
  const cos = Math.cos(rot), sin = Math.sin(rot);
  const map = (x: number, y: number): [number, number] => {
    const dx = x + amp * Math.sin(f[0]! * y + f[2]!) + amp * f[4]! * Math.sin(f[1]! * x + f[3]!);
    const dy = y + amp * Math.sin(f[1]! * x + f[3]!) - amp * f[4]! * Math.sin(f[0]! * y + f[2]!);
    // Counter-clockwise on screen with y down: x' = c x + s y, y' = -s x + c y (about the pad centre).
    const u = dx - PAD.cx, v = dy - PAD.cy;
    return [PAD.cx + cos * u + sin * v + tx, PAD.cy - sin * u + cos * v + ty];
  };

  const out: Minutia[] = [];
  for (const m of seen) {
    const [x, y] = map(m.x, m.y);
    const [x2, y2] = map(m.x + Math.cos(m.angle), m.y - Math.sin(m.angle));
    const angle = normaliseAngle(angleFromImageVector(x2 - x, y2 - y) + uniform(rand, -angleNoise, angleNoise));
    const jx = Math.round(x + uniform(rand, -jitter, jitter));
    const jy = Math.round(y + uniform(rand, -jitter, jitter));
    if (jx < 0 || jy < 0 || jx >= IMPRESSION_SIZE.width || jy >= IMPRESSION_SIZE.height) continue;
    out.push({ ...m, x: jx, y: jy, angle });
  }
  // Shuffle so that list order carries no information.
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return { width: IMPRESSION_SIZE.width, height: IMPRESSION_SIZE.height, resolution: { x: 500, y: 500 }, minutiae: out, quality: 70 };
}

/** A rigid copy (rotation about the image centre + translation), no noise: for invariance checks. */
export function rigidCopy(r: FingerRecord, rotation: number, tx: number, ty: number): FingerRecord {
  const cx = r.width / 2, cy = r.height / 2;
  const cos = Math.cos(rotation), sin = Math.sin(rotation);
  return {
    ...r,
    minutiae: r.minutiae.map((m) => {
      const u = m.x - cx, v = m.y - cy;
      return { ...m, x: cx + cos * u + sin * v + tx, y: cy - sin * u + cos * v + ty, angle: normaliseAngle(m.angle + rotation) };
    }),
  };
}
