/**
 * Ridge growth by iterative contextual Gabor filtering (the SFinGe method): start from a few random dots, then
 * repeatedly filter every pixel with the Gabor kernel of its local orientation and period, amplify and clip. Each
 * dot grows into a patch of ridges with its own phase; where patches meet, the phases reconcile through ridge
 * endings and bifurcations, which are the minutiae of the synthetic finger.
 *
 * Cost control: the growth itself (dozens of iterations) runs at half resolution, where periods are 4-5.5 px and a
 * radius-5 kernel suffices (about 12x cheaper per iteration); the grown pattern is then upsampled and refined by a
 * few full-resolution passes. Kernels come from a precomputed bank with half-support symmetric taps, buffers are
 * padded Float32Arrays (no bounds checks), and 16 x 16 blocks are skipped while nothing has grown near them.
 */
import { gaborBank, kernelIndex, type GaborBank, type GaborBankOptions } from './gabor-bank.ts';
import { MAX_PERIOD, MIN_PERIOD } from './frequency.ts';
import type { Rng } from './random.ts';

export interface GrowthInput {
  width: number;
  height: number;
  orientation: Float32Array;
  period: Float32Array;
  /** Pixels to grow ridges in (1) or leave at zero (0). */
  region: Uint8Array;
  /** Pixels that must be filled before the growth may stop (the fingerprint area, inside `region`). */
  target: Uint8Array;
  /** Number of random seed dots. */
  seeds: number;
  /** Amplification before clipping, per iteration. */
  gain?: number;
  maxIterations?: number;
  /** Iterations to run after the target is filled, so ridges settle. */
  settle?: number;
  /** Full-resolution clipped passes after upsampling. */
  refine?: number;
}

export interface GrowthResult {
  /** Ridge signal in [-1, 1]: the last filter response, softly compressed (smooth ridge profile). */
  ridges: Float32Array;
  /** Half-resolution iterations run. */
  iterations: number;
}

const BLOCK = 16;
const HALF_BANK: GaborBankOptions = { radius: 5, minPeriod: MIN_PERIOD / 2, maxPeriod: MAX_PERIOD / 2, periodStep: 0.125 };
const FULL_BANK: GaborBankOptions = { radius: 8 };

/** A filtering grid: image size, padded layout, per-pixel kernel choice, region. */
interface Grid {
  w: number;
  h: number;
  pw: number;
  R: number;
  bank: GaborBank;
  off: Int32Array;
  kidx: Uint16Array;
  region: Uint8Array;
  bw: number;
  bh: number;
}

function makeGrid(w: number, h: number, orientation: Float32Array, period: Float32Array, region: Uint8Array, bank: GaborBank): Grid {
  const R = bank.radius;
  const pw = w + 2 * R;
  const off = new Int32Array(bank.half);
  for (let j = 0; j < bank.half; j++) off[j] = bank.dy[j]! * pw + bank.dx[j]!;
  const kidx = new Uint16Array(w * h);
  for (let i = 0; i < w * h; i++) kidx[i] = kernelIndex(bank, orientation[i]!, period[i]!);
  return { w, h, pw, R, bank, off, kidx, region, bw: Math.ceil(w / BLOCK), bh: Math.ceil(h / BLOCK) };
}

function padded(g: Grid): Float32Array {
  return new Float32Array(g.pw * (g.h + 2 * g.R));
}

/** The hot loop, kept small so V8 optimises it on its own: one even-symmetric kernel at padded index p. */
function tap(a: Float32Array, p: number, c: number, weights: Float32Array, base: number, off: Int32Array, half: number): number {
  let s = c * a[p]!;
  for (let j = 0; j < half; j++) {
    const o = off[j]!;
    s += weights[base + j]! * (a[p + o]! + a[p - o]!);
  }
  return s;
}

/** b = filter(a) over the region (only blocks flagged in `todo`, or all); returns the largest |response|. */
function filterPass(g: Grid, a: Float32Array, b: Float32Array, todo: Uint8Array | null): number {
  const { w, h, pw, R, kidx, region, off } = g;
  const { centre, weights, half } = g.bank;
  let maxAbs = 0;
  for (let by = 0; by < g.bh; by++) {
    for (let bx = 0; bx < g.bw; bx++) {
      if (todo && !todo[by * g.bw + bx]) continue;
      const y1 = Math.min(h, (by + 1) * BLOCK);
      const x0 = bx * BLOCK;
      const x1 = Math.min(w, x0 + BLOCK);
      for (let y = by * BLOCK; y < y1; y++) {
        let q = y * w + x0;
        let p = (y + R) * pw + x0 + R;
        for (let x = x0; x < x1; x++, q++, p++) {
          if (!region[q]) continue;
          const k = kidx[q]!;
          const s = tap(a, p, centre[k]!, weights, k * half, off, half);
          b[p] = s;
          const m = s < 0 ? -s : s;
          if (m > maxAbs) maxAbs = m;
        }
      }
    }
  }
  return maxAbs;
}

/** In place: v = clip(v * scale, -1, 1) on the grid; returns how many target pixels carry a pattern. */
function amplifyClip(g: Grid, b: Float32Array, scale: number, target: Uint8Array, live: Uint8Array | null): number {
  let filled = 0;
  for (let y = 0; y < g.h; y++) {
    let p = (y + g.R) * g.pw + g.R;
    const row = y * g.w;
    const brow = Math.floor(y / BLOCK) * g.bw;
    for (let x = 0; x < g.w; x++, p++) {
      let v = b[p]! * scale;
      if (v === 0) continue;
      if (v > 1) v = 1;
      else if (v < -1) v = -1;
      b[p] = v;
      if ((v > 0.05 || v < -0.05) && target[row + x]) filled++;
      if (live && (v > 1e-4 || v < -1e-4)) live[brow + Math.floor(x / BLOCK)] = 1;
    }
  }
  return filled;
}

function halve(src: Float32Array, w: number, h: number, f: (v: number) => number): Float32Array {
  const hw = Math.ceil(w / 2);
  const hh = Math.ceil(h / 2);
  const out = new Float32Array(hw * hh);
  for (let y = 0; y < hh; y++) for (let x = 0; x < hw; x++) out[y * hw + x] = f(src[Math.min(h - 1, 2 * y) * w + Math.min(w - 1, 2 * x)]!);
  return out;
}

export function growRidges(input: GrowthInput, r: Rng): GrowthResult {
  const { width: w, height: h } = input;
  const hw = Math.ceil(w / 2);
  const hh = Math.ceil(h / 2);
  const hRegion = new Uint8Array(halve(Float32Array.from(input.region), w, h, (v) => v));
  const hTarget = new Uint8Array(halve(Float32Array.from(input.target), w, h, (v) => v));
  const g = makeGrid(hw, hh, halve(input.orientation, w, h, (v) => v), halve(input.period, w, h, (v) => v / 2), hRegion, gaborBank(HALF_BANK));

  let a = padded(g);
  let b = padded(g);
  const inside: number[] = [];
  for (let i = 0; i < hw * hh; i++) if (hRegion[i]) inside.push(i);
  if (inside.length === 0) return { ridges: new Float32Array(w * h), iterations: 0 };
  let live = new Uint8Array(g.bw * g.bh);
  // Seed dots at random places of the region, with random sign (ridge or valley).
  for (let s = 0; s < input.seeds; s++) {
    const i = inside[Math.floor(r.next() * inside.length)]!;
    const x = i % hw;
    const y = (i - x) / hw;
    a[(y + g.R) * g.pw + x + g.R] = r.next() < 0.5 ? -1 : 1;
    live[Math.floor(y / BLOCK) * g.bw + Math.floor(x / BLOCK)] = 1;
  }
  let targetCount = 0;
  for (let i = 0; i < hTarget.length; i++) targetCount += hTarget[i]!;
  const gain = input.gain ?? 2.5;
  const maxIt = input.maxIterations ?? 60;
  const settle = input.settle ?? 5;
  let filledAt = -1;
  let it = 0;
  while (it < maxIt) {
    // A block is computed when it or a neighbour had something: the kernel radius is below one block.
    const todo = new Uint8Array(g.bw * g.bh);
    for (let by = 0; by < g.bh; by++) {
      for (let bx = 0; bx < g.bw; bx++) {
        if (!live[by * g.bw + bx]) continue;
        for (let yy = Math.max(0, by - 1); yy <= Math.min(g.bh - 1, by + 1); yy++) for (let xx = Math.max(0, bx - 1); xx <= Math.min(g.bw - 1, bx + 1); xx++) todo[yy * g.bw + xx] = 1;
      }
    }
    b.fill(0);
    const maxAbs = filterPass(g, a, b, todo);
    it++;
    if (maxAbs === 0) break;
    // Amplify relative to the strongest response and clip: weak young patches grow, mature ones saturate.
    live = new Uint8Array(g.bw * g.bh);
    const filled = amplifyClip(g, b, gain / maxAbs, hTarget, live);
    [a, b] = [b, a];
    if (filledAt < 0 && filled >= 0.97 * targetCount) filledAt = it;
    if (filledAt >= 0 && it - filledAt >= settle) break;
  }

  // Upsample (bilinear) to full resolution and refine there: ridge shape and orientation follow the full fields.
  const G = makeGrid(w, h, input.orientation, input.period, input.region, gaborBank(FULL_BANK));
  let A = padded(G);
  let B = padded(G);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(hh - 1, y / 2);
    const y0 = Math.floor(sy);
    const y1 = Math.min(hh - 1, y0 + 1);
    const fy = sy - y0;
    for (let x = 0; x < w; x++) {
      if (!input.region[y * w + x]) continue;
      const sx = Math.min(hw - 1, x / 2);
      const x0 = Math.floor(sx);
      const x1 = Math.min(hw - 1, x0 + 1);
      const fx = sx - x0;
      const v00 = a[(y0 + g.R) * g.pw + x0 + g.R]!;
      const v01 = a[(y0 + g.R) * g.pw + x1 + g.R]!;
      const v10 = a[(y1 + g.R) * g.pw + x0 + g.R]!;
      const v11 = a[(y1 + g.R) * g.pw + x1 + g.R]!;
      A[(y + G.R) * G.pw + x + G.R] = (v00 * (1 - fx) + v01 * fx) * (1 - fy) + (v10 * (1 - fx) + v11 * fx) * fy;
    }
  }
  for (let k = 0; k < (input.refine ?? 2); k++) {
    B.fill(0);
    const m = filterPass(G, A, B, null);
    if (m === 0) break;
    amplifyClip(G, B, gain / m, input.target, null);
    [A, B] = [B, A];
  }
  B.fill(0);
  const maxAbs = filterPass(G, A, B, null);
  const out = new Float32Array(w * h);
  if (maxAbs > 0) {
    const k = 1.6 / maxAbs;
    const norm = 1 / Math.tanh(1.6);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = Math.tanh(B[(y + G.R) * G.pw + x + G.R]! * k) * norm;
  }
  return { ridges: out, iterations: it };
}
