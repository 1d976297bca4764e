/**
 * Specular reflections (the illuminator's glints, often several inside the pupil): pixels much brighter than
 * their neighbourhood. They are found, dilated, and filled from their borders inwards (onion peeling) so that a
 * glint in the pupil does not break the pupil's dark disc; the mask is kept so they never enter the iris code.
 */
import { integral, type FloatImage } from './image-ops.ts';

export interface Reflections {
  /** The image with the glints filled. */
  filled: FloatImage;
  /** 1 where a glint (dilated) was. */
  mask: Uint8Array;
  pixels: number;
}

export function removeReflections(img: FloatImage, o: { min: number; lift: number; dilate: number; window?: number }): Reflections {
  const { width: w, height: h, data } = img;
  const seed = glintSeeds(img, o.min, o.lift, o.window ?? 7);
  const mask = new Uint8Array(w * h);
  if (seed.length === 0) return { filled: img, mask, pixels: 0 };
  // Dilate: a glint's halo is brighter than its surroundings too. Grow each seed into the connected bright
  // pixels around it (above the halfway level), then by a fixed margin.
  const r = o.dilate;
  for (const p of seed) {
    const x = p % w;
    const y = (p - x) / w;
    for (let dy = -r; dy <= r; dy++) {
      const yy = y + dy;
      if (yy < 0 || yy >= h) continue;
      for (let dx = -r; dx <= r; dx++) {
        const xx = x + dx;
        if (xx >= 0 && xx < w) mask[yy * w + xx] = 1;
      }
    }
  }
  const out = data.slice();
  const known = new Uint8Array(w * h);
  let pending: number[] = [];
  for (let i = 0; i < known.length; i++) {
    known[i] = mask[i] ? 0 : 1;
    if (mask[i]) pending.push(i);
  }
  const pixels = pending.length;
  // Onion peeling: each pass fills the unknown pixels that touch known ones with their known neighbours' mean.
  // A pass reads only pixels known before it, so the order within a pass does not matter.
  const filledNow: number[] = [];
  const still: number[] = [];
  while (pending.length > 0) {
    filledNow.length = 0;
    still.length = 0;
    for (const i of pending) {
      const x = i % w;
      const y = (i - x) / w;
      let acc = 0;
      let n = 0;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= w || !known[yy * w + xx]) continue;
          acc += out[yy * w + xx]!;
          n++;
        }
      }
      if (n > 0) {
        out[i] = acc / n;
        filledNow.push(i);
      } else still.push(i);
    }
    if (filledNow.length === 0) break; // the whole image is glint: nothing to fill from
    for (const i of filledNow) known[i] = 1;
    pending = still.slice();
  }
  return { filled: { width: w, height: h, data: out }, mask, pixels };
}

/** Pixels (indices, in raster order) at least `min` and brighter than the mean of their window by `lift`. */
function glintSeeds(img: FloatImage, min: number, lift: number, half: number): number[] {
  const { width: w, height: h, data } = img;
  let s: Float64Array | null = null;
  const seeds: number[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = data[y * w + x]!;
      if (v < min) continue;
      s ??= integral(img);
      // boxSum inline: the window clipped to the image, four corners of the summed-area table.
      const a = Math.max(0, x - half);
      const b = Math.max(0, y - half);
      const c = Math.min(w, x + half + 1);
      const d = Math.min(h, y + half + 1);
      const sum = s[d * (w + 1) + c]! - s[b * (w + 1) + c]! - s[d * (w + 1) + a]! + s[b * (w + 1) + a]!;
      if (v - sum / ((c - a) * (d - b)) >= lift) seeds.push(y * w + x);
    }
  }
  return seeds;
}
