/**
 * Normalisation (Hong, Wan and Jain 1998, with local instead of global statistics): each pixel becomes
 * (I - local mean) / local deviation, so uneven pressure and contrast do not bias the Gabor stage.
 * Result: zero mean, unit variance, dark ridges < 0. (The extractor zeroes the background after segmentation so the
 * Gabor filters do not grow ridges from noise.)
 */
import { PARAMS } from './params.ts';

/**
 * `sat`: graySums of the same plane (fields.ts). The window means are rounded to float32 as stored planes of them
 * were, which keeps the output bit for bit.
 */
export function normalise(gray: Float32Array, width: number, height: number, sat: Float64Array): Float32Array {
  const r = PARAMS.normRadius;
  const minStd = PARAMS.normMinStd;
  const W = width + 1;
  const out = new Float32Array(gray.length);
  for (let y = 0; y < height; y++) {
    const y0 = Math.max(0, y - r);
    const y1 = Math.min(height, y + r + 1);
    const top = 2 * y0 * W;
    const bottom = 2 * y1 * W;
    for (let x = 0, i = y * width; x < width; x++, i++) {
      const x0 = 2 * Math.max(0, x - r);
      const x1 = 2 * Math.min(width, x + r + 1);
      const area = (y1 - y0) * ((x1 - x0) >> 1);
      const m = Math.fround((sat[bottom + x1]! - sat[top + x1]! - sat[bottom + x0]! + sat[top + x0]!) / area);
      const m2 = Math.fround((sat[bottom + x1 + 1]! - sat[top + x1 + 1]! - sat[bottom + x0 + 1]! + sat[top + x0 + 1]!) / area);
      const sd = Math.sqrt(Math.max(0, m2 - m * m));
      out[i] = (gray[i]! - m) / (sd > minStd ? sd : minStd);
    }
  }
  return out;
}
