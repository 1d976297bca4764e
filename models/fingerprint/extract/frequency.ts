/**
 * Ridge frequency field (Hong, Wan and Jain 1998): per block, the "x-signature" of the normalised image in a window
 * oriented along the ridge normal (average across the window's length along the ridges), whose peaks are one ridge
 * period apart. Blocks without a clear, plausible period take the mean of their valid neighbours (repeatedly), then
 * the block field is smoothed and interpolated bilinearly to pixels.
 */
import { blockFieldAt, blocksToPixels, type BlockGrid } from './fields.ts';
import { PARAMS } from './params.ts';

export interface FrequencyField {
  grid: BlockGrid;
  /** Per-block period (after interpolation and smoothing); per pixel see periodField and periodAt. */
  blockPeriod: Float32Array;
  /** Fraction of foreground blocks whose period was interpolated. */
  interpolatedFraction: number;
  meanPeriod: number;
}

export interface RawFrequency {
  /** Period per block, 0 where the block shows no clear, plausible period. */
  raw: Float32Array;
  valid: Uint8Array;
}

/** Period of every block from its x-signature (segmentation uses the validity: background has no ridge period). */
export function blockPeriods(normalised: Float32Array, normal: Float32Array, grid: BlockGrid, width: number, height: number): RawFrequency {
  const n = grid.cols * grid.rows;
  const raw = new Float32Array(n);
  const valid = new Uint8Array(n);
  const L = PARAMS.freqWindowAcross;
  const Wd = PARAMS.freqWindowAlong;
  const sig = new Float32Array(L);
  const alongX = new Float64Array(Wd);
  const alongY = new Float64Array(Wd);
  let foreground = 0;
  for (let by = 0; by < grid.rows; by++) {
    for (let bx = 0; bx < grid.cols; bx++) {
      const b = by * grid.cols + bx;
      const cx = Math.min(width - 1, (bx + 0.5) * grid.block);
      const cy = Math.min(height - 1, (by + 0.5) * grid.block);
      // The field is already smoothed over about a block (sigma 6), so its value at the centre stands for the block.
      const a = normal[Math.round(cy) * width + Math.round(cx)]!;
      const nx = Math.cos(a);
      const ny = Math.sin(a);
      // Sample (k, d) lies at (cx + s nx - t ny, cy + s ny + t nx): the along-ridge offsets are the same for every
      // k, so they are computed once per block (the sums keep their order, so the values are the same).
      for (let d = 0; d < Wd; d++) {
        const t = d - (Wd - 1) / 2;
        alongX[d] = t * ny;
        alongY[d] = t * nx;
      }
      for (let k = 0; k < L; k++) {
        const s = k - (L - 1) / 2;
        const baseX = cx + s * nx;
        const baseY = cy + s * ny;
        let sum = 0;
        for (let d = 0; d < Wd; d++) sum += sample(normalised, width, height, baseX - alongX[d]!, baseY + alongY[d]!);
        sig[k] = sum / Wd;
      }
      const p = periodOfSignature(sig);
      if (p > 0) {
        raw[b] = p;
        valid[b] = 1;
      }
    }
  }
  return { raw, valid };
}

/** Fills the foreground blocks without a valid period from their neighbours and smooths (pixels: periodField, periodAt). */
export function completeFrequency(rawField: RawFrequency, blocks: Uint8Array, grid: BlockGrid): FrequencyField {
  const n = grid.cols * grid.rows;
  const raw = rawField.raw;
  const valid = Uint8Array.from(rawField.valid, (v, i) => (v && blocks[i] ? 1 : 0));
  let foreground = 0;
  for (let i = 0; i < n; i++) if (blocks[i]) foreground++;
  let validCount = 0;
  let validSum = 0;
  for (let i = 0; i < n; i++) if (valid[i] && blocks[i]) (validCount++, (validSum += raw[i]!));
  const fallback = validCount ? validSum / validCount : PARAMS.defaultPeriod;
  const filled = fillInvalid(raw, valid, grid, fallback);
  const smooth = smoothBlocks(filled, grid);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < n; i++) if (blocks[i]) (sum += smooth[i]!, count++);
  return {
    grid,
    blockPeriod: smooth,
    interpolatedFraction: foreground ? 1 - validCount / foreground : 1,
    meanPeriod: count ? sum / count : PARAMS.defaultPeriod,
  };
}

/** Ridge period per pixel, working pixels (bilinear between block centres). */
export function periodField(f: FrequencyField, width: number, height: number): Float32Array {
  return blocksToPixels(f.blockPeriod, f.grid, width, height);
}

/** The period periodField gives at pixel (x, y), without the whole field. */
export function periodAt(f: FrequencyField, x: number, y: number): number {
  return blockFieldAt(f.blockPeriod, f.grid, x, y);
}

/** Period of an x-signature from its maxima (parabolic sub-sample peaks), or 0 when it has no clear, plausible one. */
export function periodOfSignature(sig: Float32Array): number {
  const L = sig.length;
  const sm = new Float32Array(L);
  for (let k = 0; k < L; k++) sm[k] = 0.25 * (sig[Math.max(0, k - 1)]! + 2 * sig[k]! + sig[Math.min(L - 1, k + 1)]!);
  let lo = Infinity;
  let hi = -Infinity;
  for (let k = 0; k < L; k++) (lo = Math.min(lo, sm[k]!)), (hi = Math.max(hi, sm[k]!));
  if (hi - lo < PARAMS.freqMinSwing) return 0;
  const peaks: number[] = [];
  for (let k = 1; k < L - 1; k++) {
    const a = sm[k - 1]!;
    const b = sm[k]!;
    const c = sm[k + 1]!;
    if (b > a && b >= c && b > lo + 0.5 * (hi - lo)) {
      const den = a - 2 * b + c;
      peaks.push(k + (den < 0 ? (0.5 * (a - c)) / den : 0));
    }
  }
  if (peaks.length < 2) return 0;
  const period = (peaks[peaks.length - 1]! - peaks[0]!) / (peaks.length - 1);
  return period >= PARAMS.minPeriod && period <= PARAMS.maxPeriod ? period : 0;
}

function sample(img: Float32Array, w: number, h: number, x: number, y: number): number {
  if (x < 0 || y < 0 || x > w - 1 || y > h - 1) return 0;
  const x0 = Math.floor(x);
  const y0 = Math.floor(y);
  const x1 = Math.min(w - 1, x0 + 1);
  const y1 = Math.min(h - 1, y0 + 1);
  const ax = x - x0;
  const ay = y - y0;
  return (1 - ay) * ((1 - ax) * img[y0 * w + x0]! + ax * img[y0 * w + x1]!) + ay * ((1 - ax) * img[y1 * w + x0]! + ax * img[y1 * w + x1]!);
}

/**
 * Weighted mean over block (x, y) and its in-grid 8-neighbours, weight(j, dx, dy) for block j; NaN when every
 * weight is 0.
 */
function neighbourMean(v: Float32Array, grid: BlockGrid, x: number, y: number, weight: (j: number, dx: number, dy: number) => number): number {
  let s = 0;
  let c = 0;
  for (let dy = -1; dy <= 1; dy++) {
    for (let dx = -1; dx <= 1; dx++) {
      const xx = x + dx;
      const yy = y + dy;
      if (xx < 0 || yy < 0 || xx >= grid.cols || yy >= grid.rows) continue;
      const j = yy * grid.cols + xx;
      const k = weight(j, dx, dy);
      if (!k) continue; // (a block left out may hold NaN)
      s += k * v[j]!;
      c += k;
    }
  }
  return c ? s / c : NaN;
}

/** Invalid blocks take the mean of valid 8-neighbours, in rounds, until every block has a value. */
function fillInvalid(raw: Float32Array, valid: Uint8Array, grid: BlockGrid, fallback: number): Float32Array {
  const v = Float32Array.from(raw);
  const ok = Uint8Array.from(valid);
  const validWeight = (j: number) => ok[j]!;
  for (let round = 0; round < grid.cols + grid.rows; round++) {
    const updates: Array<[number, number]> = [];
    for (let y = 0; y < grid.rows; y++) {
      for (let x = 0; x < grid.cols; x++) {
        const i = y * grid.cols + x;
        if (ok[i]) continue;
        const m = neighbourMean(v, grid, x, y, validWeight);
        if (!Number.isNaN(m)) updates.push([i, m]);
      }
    }
    if (!updates.length) break;
    for (const [i, val] of updates) (v[i] = val), (ok[i] = 1);
  }
  for (let i = 0; i < v.length; i++) if (!ok[i]) v[i] = fallback;
  return v;
}

/** 3x3 binomial smoothing of the block periods. */
function smoothBlocks(v: Float32Array, grid: BlockGrid): Float32Array {
  const out = new Float32Array(v.length);
  const binomial = (_j: number, dx: number, dy: number) => (dx ? 1 : 2) * (dy ? 1 : 2);
  for (let y = 0; y < grid.rows; y++) for (let x = 0; x < grid.cols; x++) out[y * grid.cols + x] = neighbourMean(v, grid, x, y, binomial);
  return out;
}
