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

/**
 * Crop-and-resize without rotation: the special case of warpAffineToFloat for a scaleTranslate matrix, separable,
 * with per-column and per-row tables (several times faster; same samples up to float rounding).
 */
export function resizeToFloat(src: Raster, width: number, height: number, m: Affine): Float32Array {
  const [a, b, c, d, e, f] = m;
  if (b !== 0 || d !== 0) return warpAffineToFloat(src, width, height, m);
  const ch = src.channels;
  const { data, width: sw, height: sh } = src;
  const cols = axisTable(width, a, c, sw);
  const rows = axisTable(height, e, f, sh);
  const out = new Float32Array(width * height * ch);
  for (let y = 0; y < height; y++) {
    const r0 = rows.i0[y]!;
    const r1 = rows.i1[y]!;
    if (r0 < 0 && r1 < 0) continue; // wholly outside: stays black
    const wy1 = rows.w1[y]!;
    const wy0 = rows.w0[y]!;
    // A row outside the source contributes black: point it at row 0 with weight 0.
    const row0 = (r0 < 0 ? 0 : r0) * sw;
    const row1 = (r1 < 0 ? 0 : r1) * sw;
    const v0 = r0 < 0 ? 0 : wy0;
    const v1 = r1 < 0 ? 0 : wy1;
    let o = y * width * ch;
    for (let x = 0; x < width; x++, o += ch) {
      const c0 = cols.i0[x]!;
      const c1 = cols.i1[x]!;
      if (c0 < 0 && c1 < 0) continue;
      const u0 = c0 < 0 ? 0 : cols.w0[x]!;
      const u1 = c1 < 0 ? 0 : cols.w1[x]!;
      const a00 = (row0 + (c0 < 0 ? 0 : c0)) * ch;
      const a10 = (row0 + (c1 < 0 ? 0 : c1)) * ch;
      const a01 = (row1 + (c0 < 0 ? 0 : c0)) * ch;
      const a11 = (row1 + (c1 < 0 ? 0 : c1)) * ch;
      const w00 = u0 * v0;
      const w10 = u1 * v0;
      const w01 = u0 * v1;
      const w11 = u1 * v1;
      for (let k = 0; k < ch; k++) {
        out[o + k] = data[a00 + k]! * w00 + data[a10 + k]! * w10 + data[a01 + k]! * w01 + data[a11 + k]! * w11;
      }
    }
  }
  return out;
}

function axisTable(n: number, scale: number, offset: number, limit: number): { i0: Int32Array; i1: Int32Array; w0: Float32Array; w1: Float32Array } {
  const i0 = new Int32Array(n);
  const i1 = new Int32Array(n);
  const w0 = new Float32Array(n);
  const w1 = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = scale * i + offset;
    const f = Math.floor(s);
    const t = s - f;
    i0[i] = f >= 0 && f < limit ? f : -1;
    i1[i] = f + 1 >= 0 && f + 1 < limit ? f + 1 : -1;
    w0[i] = 1 - t;
    w1[i] = t;
  }
  return { i0, i1, w0, w1 };
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
