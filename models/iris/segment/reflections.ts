/**
 * Specular reflections (the illuminator's glints, often several inside the pupil): pixels much brighter than
 * their neighbourhood. They are found, dilated, and filled from their borders inwards (onion peeling) so that a
 * glint in the pupil does not break the pupil's dark disc; the mask is kept so they never enter the iris code.
 */
import { boxSum, integral, type FloatImage } from './image-ops.ts';

export interface Reflections {
  /** The image with the glints filled. */
  filled: FloatImage;
  /** 1 where a glint (dilated) was. */
  mask: Uint8Array;
  pixels: number;
}

export function removeReflections(img: FloatImage, o: { min: number; lift: number; dilate: number; window?: number }): Reflections {
  const { width: w, height: h, data } = img;
  const s = integral(img);
  const half = o.window ?? 7;
  const seed = new Uint8Array(w * h);
  let any = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = data[y * w + x]!;
      if (v < o.min) continue;
      const { sum, n } = boxSum(s, w, h, x - half, y - half, x + half + 1, y + half + 1);
      if (v - sum / n >= o.lift) {
        seed[y * w + x] = 1;
        any++;
      }
    }
  }
  const mask = new Uint8Array(w * h);
  if (any === 0) return { filled: img, mask, pixels: 0 };
  // Dilate: a glint's halo is brighter than its surroundings too. Grow each seed into the connected bright
  // pixels around it (above the halfway level), then by a fixed margin.
  const r = o.dilate;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!seed[y * w + x]) continue;
      for (let dy = -r; dy <= r; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -r; dx <= r; dx++) {
          const xx = x + dx;
          if (xx >= 0 && xx < w) mask[yy * w + xx] = 1;
        }
      }
    }
  }
  const out = data.slice();
  const known = new Uint8Array(w * h);
  let todo = 0;
  for (let i = 0; i < known.length; i++) {
    known[i] = mask[i] ? 0 : 1;
    if (mask[i]) todo++;
  }
  const pixels = todo;
  // Onion peeling: each pass fills the unknown pixels that touch known ones with their known neighbours' mean.
  const next: number[] = [];
  while (todo > 0) {
    next.length = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        if (known[i]) continue;
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
          next.push(i);
        }
      }
    }
    if (next.length === 0) break; // the whole image is glint: nothing to fill from
    for (const i of next) known[i] = 1;
    todo -= next.length;
  }
  return { filled: { width: w, height: h, data: out }, mask, pixels };
}
