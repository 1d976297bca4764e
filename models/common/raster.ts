/**
 * In-memory images and the pure image math the pipelines share: affine warps with bilinear sampling, grey
 * conversion, and simple statistics. Images are interleaved 8-bit, row-major, no padding.
 */
export interface Raster {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

/**
 * A 2x3 affine matrix [a, b, c, d, e, f] mapping destination pixel centres to source coordinates:
 * src.x = a*x + b*y + c, src.y = d*x + e*y + f.
 */
export type Affine = [number, number, number, number, number, number];

/**
 * Samples `src` through `dstToSrc` into a new image of the given size (bilinear; outside the source is black).
 * Returns float32 pixels, interleaved, ready for a net's NHWC input.
 */
export function warpAffineToFloat(src: Raster, width: number, height: number, m: Affine): Float32Array {
  const out = new Float32Array(width * height * src.channels);
  const { data, width: sw, height: sh, channels: ch } = src;
  const [a, b, c, d, e, f] = m;
  let o = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sx = a * x + b * y + c;
      const sy = d * x + e * y + f;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      for (let k = 0; k < ch; k++) {
        const p00 = pixel(data, sw, sh, ch, x0, y0, k);
        const p10 = pixel(data, sw, sh, ch, x0 + 1, y0, k);
        const p01 = pixel(data, sw, sh, ch, x0, y0 + 1, k);
        const p11 = pixel(data, sw, sh, ch, x0 + 1, y0 + 1, k);
        out[o++] = (p00 * (1 - fx) + p10 * fx) * (1 - fy) + (p01 * (1 - fx) + p11 * fx) * fy;
      }
    }
  }
  return out;
}

function pixel(data: Uint8Array, w: number, h: number, ch: number, x: number, y: number, k: number): number {
  if (x < 0 || y < 0 || x >= w || y >= h) return 0;
  return data[(y * w + x) * ch + k]!;
}

/** The affine that maps destination (x, y) to source (x / scale + ox, y / scale + oy): crop-and-resize. */
export function scaleTranslate(scale: number, ox: number, oy: number): Affine {
  // Pixel centres: destination centre (x + 0.5) corresponds to source centre (sx + 0.5).
  const inv = 1 / scale;
  return [inv, 0, ox + 0.5 * inv - 0.5, 0, inv, oy + 0.5 * inv - 0.5];
}

/** Luma (BT.601) of interleaved RGB floats or bytes. */
export function toGrey(rgb: ArrayLike<number>, pixels: number): Float32Array {
  const out = new Float32Array(pixels);
  for (let i = 0; i < pixels; i++) out[i] = 0.299 * rgb[3 * i]! + 0.587 * rgb[3 * i + 1]! + 0.114 * rgb[3 * i + 2]!;
  return out;
}

/** Variance of the 4-neighbour Laplacian over the interior of a grey image (a standard focus measure). */
export function laplacianVariance(grey: Float32Array, width: number, height: number, margin = 1): number {
  let sum = 0;
  let sumSq = 0;
  let n = 0;
  const m = Math.max(1, margin);
  for (let y = m; y < height - m; y++) {
    for (let x = m; x < width - m; x++) {
      const i = y * width + x;
      const lap = grey[i - 1]! + grey[i + 1]! + grey[i - width]! + grey[i + width]! - 4 * grey[i]!;
      sum += lap;
      sumSq += lap * lap;
      n++;
    }
  }
  if (n === 0) return 0;
  const mean = sum / n;
  return sumSq / n - mean * mean;
}
