/**
 * From the rubber sheet to the iris code (pure functions):
 *
 * - `padPolar`: the polar image normalised by the iris texture's median and spread, unusable samples set to 0 (the
 *   texture's median, so a lid edge does not ring through the filter), rows replicated above and below, columns
 *   wrapped round (the angle is periodic), in the layout the `iris_loggabor` graph takes.
 * - `quantise`: Daugman's 2-bit phase code: bit 0 = real part >= 0, bit 1 = imaginary part >= 0, per code cell.
 *   A bit is masked when its cell is not mostly usable iris, or when its component is among the weakest
 *   (fragile bits, Hollingsworth et al.: near zero the sign is noise).
 *
 * Bit layout (both code and mask): column c of the code grid is the 16 bits [16c, 16c + 16), little-endian, bit 2k
 * (real) and 2k + 1 (imaginary) for ring k. So a rotation by one column is a shift by 16 bits, and 32 or 64-bit
 * words hold whole columns (matcher.ts).
 */
import { FILTER, PAD_COLS, PAD_LEFT, PAD_ROWS, PAD_TOP } from './build.ts';
import type { PolarImage } from './normalise.ts';
import { IRIS_PARAMS } from './params.ts';

export const CODE_RINGS = IRIS_PARAMS.codeRings;
export const CODE_COLS = IRIS_PARAMS.codeCols;
export const BITS_PER_COL = 2 * CODE_RINGS;
export const CODE_BITS = CODE_COLS * BITS_PER_COL;
export const CODE_BYTES = CODE_BITS / 8;
if (BITS_PER_COL !== 16) throw new Error('the iris code layout needs 8 rings (16 bits per column)');

export interface IrisCode {
  /** CODE_BYTES each. */
  code: Uint8Array;
  mask: Uint8Array;
  /** Share of bits unmasked. */
  usableBits: number;
}

export function padPolar(p: PolarImage, valid: Uint8Array, median: number, spread: number): Float32Array {
  const out = new Float32Array(PAD_ROWS * PAD_COLS);
  const { rows, cols } = p;
  for (let i = 0; i < PAD_ROWS; i++) {
    const r = Math.max(0, Math.min(rows - 1, i - PAD_TOP));
    for (let j = 0; j < PAD_COLS; j++) {
      const c = (((j - PAD_LEFT) % cols) + cols) % cols;
      const k = r * cols + c;
      out[i * PAD_COLS + j] = valid[k] ? (p.data[k]! - median) / spread : 0;
    }
  }
  return out;
}

/** Share of usable polar samples under each code cell (rowStride x colStride block centred on the cell). */
export function cellValidity(valid: Uint8Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(CODE_RINGS * CODE_COLS);
  const rs = FILTER.rowStride;
  const cs = FILTER.colStride;
  for (let k = 0; k < CODE_RINGS; k++) {
    for (let c = 0; c < CODE_COLS; c++) {
      let n = 0;
      let ok = 0;
      for (let i = k * rs; i < Math.min(rows, (k + 1) * rs); i++) {
        for (let d = -Math.floor(cs / 2); d < cs - Math.floor(cs / 2) + 1; d++) {
          const j = (((c * cs + d) % cols) + cols) % cols;
          n++;
          ok += valid[i * cols + j]!;
        }
      }
      out[k * CODE_COLS + c] = n ? ok / n : 0;
    }
  }
  return out;
}

export function quantise(re: Float32Array, im: Float32Array, cells: Float32Array, o: { minCellValid: number; fragile: number }): IrisCode {
  const code = new Uint8Array(CODE_BYTES);
  const mask = new Uint8Array(CODE_BYTES);
  const n = CODE_RINGS * CODE_COLS;
  // Fragile-bit thresholds: the o.fragile quantile of |component| over usable cells, per component.
  const mags = (a: Float32Array): number => {
    const all = new Float32Array(n);
    let m = 0;
    for (let i = 0; i < n; i++) if (cells[i]! >= o.minCellValid) all[m++] = Math.abs(a[i]!);
    if (m === 0) return Infinity;
    const v = all.subarray(0, m).sort();
    return v[Math.floor(o.fragile * (m - 1))]!;
  };
  const tRe = o.fragile > 0 ? mags(re) : 0;
  const tIm = o.fragile > 0 ? mags(im) : 0;
  let usable = 0;
  for (let k = 0; k < CODE_RINGS; k++) {
    for (let c = 0; c < CODE_COLS; c++) {
      const i = k * CODE_COLS + c;
      const ok = cells[i]! >= o.minCellValid;
      const bit = c * BITS_PER_COL + 2 * k;
      const a = re[i]!;
      const b = im[i]!;
      if (a >= 0) code[bit >> 3]! |= 1 << (bit & 7);
      if (b >= 0) code[(bit + 1) >> 3]! |= 1 << ((bit + 1) & 7);
      if (ok && Math.abs(a) > tRe) {
        mask[bit >> 3]! |= 1 << (bit & 7);
        usable++;
      }
      if (ok && Math.abs(b) > tIm) {
        mask[(bit + 1) >> 3]! |= 1 << ((bit + 1) & 7);
        usable++;
      }
    }
  }
  return { code, mask, usableBits: usable / CODE_BITS };
}
