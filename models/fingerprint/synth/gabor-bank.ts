/**
 * A precomputed bank of even-symmetric Gabor kernels, K orientations x F periods, on a shared circular support.
 * Even symmetry (w(-d) = w(d)) lets the filter visit only half of the offsets: each tap adds I[p+d] + I[p-d].
 * Every kernel is zero-mean (so flat areas and isolated blobs do not grow into bias) and scaled to gain 1 on a
 * matched unit sinusoid (so a clipped ridge pattern stays stable from one iteration to the next).
 */
import { MAX_PERIOD, MIN_PERIOD } from './frequency.ts';

export interface GaborBank {
  radius: number;
  orientations: number;
  periods: number;
  periodStep: number;
  minPeriod: number;
  /** Offsets (dx, dy) of half of the support, excluding the centre. */
  dx: Int32Array;
  dy: Int32Array;
  /** Per kernel: the centre weight, then half.length weights (kernel k at k * half). */
  centre: Float32Array;
  weights: Float32Array;
  half: number;
}

export interface GaborBankOptions {
  radius?: number;
  orientations?: number;
  periodStep?: number;
  /** Period range covered (pixels); default 8-11, the 500 dpi range. */
  minPeriod?: number;
  maxPeriod?: number;
  /** Envelope sigma across and along the ridge, as fractions of the period. */
  sigmaAcross?: number;
  sigmaAlong?: number;
}

const cache = new Map<string, GaborBank>();

export function gaborBank(o: GaborBankOptions = {}): GaborBank {
  const key = JSON.stringify(o);
  const hit = cache.get(key);
  if (hit) return hit;
  const radius = o.radius ?? 9;
  const K = o.orientations ?? 32;
  const step = o.periodStep ?? 0.25;
  const minPeriod = o.minPeriod ?? MIN_PERIOD;
  const F = Math.round(((o.maxPeriod ?? MAX_PERIOD) - minPeriod) / step) + 1;
  const sa = o.sigmaAcross ?? 0.4;
  const sl = o.sigmaAlong ?? 0.48;
  const dxs: number[] = [];
  const dys: number[] = [];
  for (let dy = 0; dy <= radius; dy++) {
    for (let dx = -radius; dx <= radius; dx++) {
      if (dy === 0 && dx <= 0) continue;
      if (dx * dx + dy * dy > radius * radius + 0.5) continue;
      dxs.push(dx);
      dys.push(dy);
    }
  }
  const half = dxs.length;
  const centre = new Float32Array(K * F);
  const weights = new Float32Array(K * F * half);
  const env = new Float64Array(half);
  const cosv = new Float64Array(half);
  for (let k = 0; k < K; k++) {
    const theta = (k * Math.PI) / K;
    // Normal to the ridge: the sinusoid varies along n, the envelope is longer along the ridge direction t.
    const nx = -Math.sin(theta);
    const ny = Math.cos(theta);
    for (let f = 0; f < F; f++) {
      const period = minPeriod + f * step;
      const sN = sa * period;
      const sT = sl * period;
      const w = 2 * Math.PI / period;
      let sumW = 0.5; // centre counted once, pairs twice: work with half sums
      let sumE = 0.5;
      for (let j = 0; j < half; j++) {
        const n = dxs[j]! * nx + dys[j]! * ny;
        const t = dxs[j]! * ny - dys[j]! * nx;
        env[j] = Math.exp(-(n * n) / (2 * sN * sN) - (t * t) / (2 * sT * sT));
        cosv[j] = Math.cos(w * n);
        sumW += env[j]! * cosv[j]!;
        sumE += env[j]!;
      }
      // Zero mean: subtract a multiple of the envelope, which keeps the kernel smooth at the support's edge.
      const c = sumW / sumE;
      let gain = 1 - c; // centre: env 1, cos 1, response to cos(w n) is 1 there
      const base = (k * F + f) * half;
      for (let j = 0; j < half; j++) {
        const v = env[j]! * (cosv[j]! - c);
        weights[base + j] = v;
        gain += 2 * v * cosv[j]!;
      }
      centre[k * F + f] = (1 - c) / gain;
      for (let j = 0; j < half; j++) weights[base + j] = weights[base + j]! / gain;
    }
  }
  const bank = { radius, orientations: K, periods: F, periodStep: step, minPeriod, dx: Int32Array.from(dxs), dy: Int32Array.from(dys), centre, weights, half };
  cache.set(key, bank);
  return bank;
}

/** Index of the kernel closest to an orientation (radians, any range) and a period (pixels). */
export function kernelIndex(bank: GaborBank, theta: number, period: number): number {
  let k = Math.round((theta / Math.PI) * bank.orientations) % bank.orientations;
  if (k < 0) k += bank.orientations;
  const f = Math.min(bank.periods - 1, Math.max(0, Math.round((period - bank.minPeriod) / bank.periodStep)));
  return k * bank.periods + f;
}
