/** Pure image math for the iris pipeline: float gray images, blurs, integral images, sampling. */

export interface FloatImage {
  width: number;
  height: number;
  data: Float32Array;
}

/** Bilinear sample; NaN outside the image. */
export function sample(img: FloatImage, x: number, y: number): number {
  const { width: w, height: h, data } = img;
  if (!(x >= 0 && y >= 0 && x <= w - 1 && y <= h - 1)) return NaN;
  const x0 = Math.min(w - 2, Math.floor(x));
  const y0 = Math.min(h - 2, Math.floor(y));
  const fx = x - x0;
  const fy = y - y0;
  const i = y0 * w + x0;
  const a = data[i]!;
  const b = data[i + 1]!;
  const c = data[i + w]!;
  const d = data[i + w + 1]!;
  return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy;
}

/** Normalised Gaussian taps, radius ceil(2.5 sigma). */
function gaussianTaps(sigma: number): Float32Array {
  const r = Math.max(1, Math.ceil(2.5 * sigma));
  const taps = new Float32Array(2 * r + 1);
  let s = 0;
  for (let i = -r; i <= r; i++) s += taps[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < taps.length; i++) taps[i]! /= s;
  return taps;
}

/** A pixel rectangle, both ends included. */
export interface PixelBox {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Separable Gaussian blur with edge replication. */
export function gaussianBlur(img: FloatImage, sigma: number): FloatImage {
  if (sigma <= 0) return { ...img, data: img.data.slice() };
  return gaussianBlurWithin(img, sigma, { x0: 0, y0: 0, x1: img.width - 1, y1: img.height - 1 });
}

/**
 * The same blur computed only inside `boxes` (each clipped to the image); pixels outside them are 0. Every pixel
 * inside has exactly the value gaussianBlur gives it: neighbours outside a box are read from the image as usual.
 */
export function gaussianBlurWithin(img: FloatImage, sigma: number, boxes: PixelBox | PixelBox[]): FloatImage {
  const { width: w, height: h } = img;
  const out = new Float32Array(w * h);
  const taps = sigma > 0 ? gaussianTaps(sigma) : null;
  const r = taps ? (taps.length - 1) >> 1 : 0;
  let tmp: Float32Array | null = null;
  for (const box of Array.isArray(boxes) ? boxes : [boxes]) {
    const x0 = Math.max(0, Math.floor(box.x0));
    const x1 = Math.min(w - 1, Math.ceil(box.x1));
    const y0 = Math.max(0, Math.floor(box.y0));
    const y1 = Math.min(h - 1, Math.ceil(box.y1));
    if (x1 < x0 || y1 < y0) continue;
    if (!taps) {
      for (let y = y0; y <= y1; y++) out.set(img.data.subarray(y * w + x0, y * w + x1 + 1), y * w + x0);
      continue;
    }
    // The vertical pass needs the horizontal one r rows beyond the box; `rows` holds just those rows.
    const rowFrom = Math.max(0, y0 - r);
    const rowTo = Math.min(h - 1, y1 + r);
    const rows = tmp && tmp.length >= (rowTo - rowFrom + 1) * w ? tmp : (tmp = new Float32Array((rowTo - rowFrom + 1) * w));
    blurRows(img.data, rows, w, taps, rowFrom, rowTo, x0, x1);
    blurColumns(rows, rowFrom, out, w, h, taps, y0, y1, x0, x1);
  }
  return { width: w, height: h, data: out };
}

// Both passes sum the taps in the same order (k = -r..r) in double precision and store float32, so the fast
// interior path (no edge clamping) gives the very same values as the clamped one.
/** Rows y0..y1 of `src` blurred along x, into `dst` from its first row (dst row i = image row y0 + i). */
function blurRows(src: Float32Array, dst: Float32Array, w: number, taps: Float32Array, y0: number, y1: number, x0: number, x1: number): void {
  const r = (taps.length - 1) >> 1;
  const safeFrom = Math.max(x0, r);
  const safeTo = Math.min(x1, w - 1 - r);
  for (let y = y0; y <= y1; y++) {
    const row = y * w;
    const out = (y - y0) * w;
    for (let x = x0; x <= x1; x++) {
      if (x === safeFrom && safeFrom <= safeTo) {
        tapRun(src, row + x - r, 1, dst, out + x, safeTo - safeFrom + 1, taps);
        x = safeTo;
        continue;
      }
      let acc = 0;
      for (let k = -r; k <= r; k++) {
        const xx = x + k < 0 ? 0 : x + k >= w ? w - 1 : x + k;
        acc += taps[k + r]! * src[row + xx]!;
      }
      dst[out + x] = acc;
    }
  }
}

/** The box y0..y1 x x0..x1 blurred along y from `rows`, whose first row is image row `row0`. */
function blurColumns(rows: Float32Array, row0: number, dst: Float32Array, w: number, h: number, taps: Float32Array, y0: number, y1: number, x0: number, x1: number): void {
  const r = (taps.length - 1) >> 1;
  for (let y = y0; y <= y1; y++) {
    if (y >= r && y < h - r) {
      tapRun(rows, (y - r - row0) * w + x0, w, dst, y * w + x0, x1 - x0 + 1, taps);
      continue;
    }
    for (let x = x0; x <= x1; x++) {
      let acc = 0;
      for (let k = -r; k <= r; k++) {
        const yy = y + k < 0 ? 0 : y + k >= h ? h - 1 : y + k;
        acc += taps[k + r]! * rows[(yy - row0) * w + x]!;
      }
      dst[y * w + x] = acc;
    }
  }
}

/**
 * `count` consecutive outputs dst[at + j] = sum over k of taps[k] * src[from + j + k * stride], k in order; written
 * out for the usual 7 and 11 taps, where a loop over the taps costs more than the sums themselves.
 */
function tapRun(src: Float32Array, from: number, stride: number, dst: Float32Array, at: number, count: number, taps: Float32Array): void {
  const n = taps.length;
  if (n === 7) {
    const [t0, t1, t2, t3, t4, t5, t6] = taps as unknown as number[];
    for (let j = 0, i = from; j < count; j++, i++) {
      dst[at + j] = t0! * src[i]! + t1! * src[i + stride]! + t2! * src[i + 2 * stride]! + t3! * src[i + 3 * stride]! + t4! * src[i + 4 * stride]! + t5! * src[i + 5 * stride]! + t6! * src[i + 6 * stride]!;
    }
    return;
  }
  if (n === 11) {
    const [t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10] = taps as unknown as number[];
    for (let j = 0, i = from; j < count; j++, i++) {
      dst[at + j] =
        t0! * src[i]! + t1! * src[i + stride]! + t2! * src[i + 2 * stride]! + t3! * src[i + 3 * stride]! + t4! * src[i + 4 * stride]! + t5! * src[i + 5 * stride]! +
        t6! * src[i + 6 * stride]! + t7! * src[i + 7 * stride]! + t8! * src[i + 8 * stride]! + t9! * src[i + 9 * stride]! + t10! * src[i + 10 * stride]!;
    }
    return;
  }
  for (let j = 0, i = from; j < count; j++, i++) {
    let acc = 0;
    for (let k = 0, q = i; k < n; k++, q += stride) acc += taps[k]! * src[q]!;
    dst[at + j] = acc;
  }
}

/** Summed-area table with one row and column of zeros in front: (w + 1) x (h + 1), float64. */
export function integral(img: FloatImage): Float64Array {
  const { width: w, height: h, data } = img;
  const s = new Float64Array((w + 1) * (h + 1));
  for (let y = 0; y < h; y++) {
    let row = 0;
    for (let x = 0; x < w; x++) {
      row += data[y * w + x]!;
      s[(y + 1) * (w + 1) + x + 1] = s[y * (w + 1) + x + 1]! + row;
    }
  }
  return s;
}

/** Sum and pixel count of the box [x0, x1) x [y0, y1), clipped to the image. */
export function boxSum(s: Float64Array, w: number, h: number, x0: number, y0: number, x1: number, y1: number): { sum: number; n: number } {
  const a = Math.max(0, Math.min(w, Math.round(x0)));
  const b = Math.max(0, Math.min(h, Math.round(y0)));
  const c = Math.max(0, Math.min(w, Math.round(x1)));
  const d = Math.max(0, Math.min(h, Math.round(y1)));
  if (c <= a || d <= b) return { sum: 0, n: 0 };
  const W = w + 1;
  return { sum: s[d * W + c]! - s[b * W + c]! - s[d * W + a]! + s[b * W + a]!, n: (c - a) * (d - b) };
}

/** Area-average downscale by an integer factor (>= 1). */
export function downscale(img: FloatImage, factor: number): FloatImage {
  if (factor <= 1) return img;
  const w = Math.floor(img.width / factor);
  const h = Math.floor(img.height / factor);
  const src = img.data;
  const stride = img.width;
  const out = new Float32Array(w * h);
  const inv = 1 / (factor * factor);
  if (factor === 2) {
    // The common case (640x480 cameras), unrolled; the same sums in the same order as the loop below.
    for (let y = 0; y < h; y++) {
      let i = 2 * y * stride;
      for (let x = 0; x < w; x++, i += 2) out[y * w + x] = (src[i]! + src[i + 1]! + src[i + stride]! + src[i + stride + 1]!) * inv;
    }
    return { width: w, height: h, data: out };
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let dy = 0; dy < factor; dy++) {
        const row = (y * factor + dy) * stride + x * factor;
        for (let dx = 0; dx < factor; dx++) acc += src[row + dx]!;
      }
      out[y * w + x] = acc * inv;
    }
  }
  return { width: w, height: h, data: out };
}

/** Value at quantile q (0-1) of the finite values (a copy is sorted). */
export function quantile(values: ArrayLike<number>, q: number): number {
  const v: number[] = [];
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i]!)) v.push(values[i]!);
  if (v.length === 0) return NaN;
  v.sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.max(0, Math.floor(q * (v.length - 1) + 0.5)))]!;
}
