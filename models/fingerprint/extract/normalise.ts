/**
 * Normalisation (Hong, Wan and Jain 1998, with local instead of global statistics): each pixel becomes
 * (I - local mean) / local deviation, so uneven pressure and contrast do not bias the Gabor stage.
 * Result: zero mean, unit variance, dark ridges < 0. (The extractor zeroes the background after segmentation so the
 * Gabor filters do not grow ridges from noise.)
 */
import { boxMean } from './fields.ts';
import { PARAMS } from './params.ts';

export function normalise(gray: Float32Array, width: number, height: number): Float32Array {
  const sq = new Float32Array(gray.length);
  for (let i = 0; i < gray.length; i++) sq[i] = gray[i]! * gray[i]!;
  const mean = boxMean(gray, width, height, PARAMS.normRadius);
  const mean2 = boxMean(sq, width, height, PARAMS.normRadius);
  const out = new Float32Array(gray.length);
  for (let i = 0; i < gray.length; i++) {
    const m = mean[i]!;
    const sd = Math.sqrt(Math.max(0, mean2[i]! - m * m));
    out[i] = (gray[i]! - m) / Math.max(PARAMS.normMinStd, sd);
  }
  return out;
}
