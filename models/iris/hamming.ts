/**
 * Fractional Hamming distance between two iris codes over the bits unmasked in both, minimised over rotations
 * (whole code columns: a head tilt turns the rubber sheet along its angle axis), with Daugman's rescaling for the
 * number of bits compared:
 *
 *   HD_raw(s) = |(A_s xor B) and MA_s and MB| / |MA_s and MB|,  A_s = A turned by s columns
 *   HD_norm   = 0.5 - (0.5 - HD_raw) * sqrt(n / N_TYPICAL)
 *
 * so that a comparison over few bits (a closed eye) cannot look as certain as one over many. This file is the
 * plain reference (32-bit words, one column per half word); matcher.ts runs the same arithmetic in WebAssembly.
 */
import { BITS_PER_COL, CODE_BYTES, CODE_COLS } from './encode.ts';

export interface HammingResult {
  /** Normalised Hamming distance at the best rotation. */
  hd: number;
  raw: number;
  /** Bits compared at that rotation. */
  bits: number;
  /** The best rotation, in columns (positive: A turned towards higher angles). */
  shift: number;
}

export function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

/** Daugman's rescaling; fewer than `minBits` compared bits give 0.5 (no evidence). */
export function normaliseHd(raw: number, bits: number, typical: number, minBits: number): number {
  if (bits < minBits) return 0.5;
  return 0.5 - (0.5 - raw) * Math.sqrt(bits / typical);
}

/** The code turned by s columns (column c of the result is column c - s of the input), as 16-bit columns. */
function column16(bytes: Uint8Array, c: number): number {
  const k = ((c % CODE_COLS) + CODE_COLS) % CODE_COLS;
  return bytes[2 * k]! | (bytes[2 * k + 1]! << 8);
}

export function hammingReference(a: { code: Uint8Array; mask: Uint8Array }, b: { code: Uint8Array; mask: Uint8Array }, o: { maxShift: number; typicalBits: number; minBits: number }): HammingResult {
  if (a.code.length !== CODE_BYTES || b.code.length !== CODE_BYTES) throw new Error('iris codes of the wrong size');
  if (BITS_PER_COL !== 16) throw new Error('the reference matcher assumes 16-bit columns');
  let best: HammingResult = { hd: 1, raw: 0.5, bits: 0, shift: 0 };
  for (let s = -o.maxShift; s <= o.maxShift; s++) {
    let diff = 0;
    let bits = 0;
    for (let c = 0; c < CODE_COLS; c++) {
      const m = column16(a.mask, c - s) & column16(b.mask, c);
      diff += popcount32((column16(a.code, c - s) ^ column16(b.code, c)) & m);
      bits += popcount32(m);
    }
    const raw = bits ? diff / bits : 0.5;
    const hd = normaliseHd(raw, bits, o.typicalBits, o.minBits);
    if (hd < best.hd) best = { hd, raw, bits, shift: s };
  }
  return best;
}
