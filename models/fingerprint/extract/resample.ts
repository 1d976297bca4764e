/**
 * Resampling of gray images to the working resolution (500 dpi): separable triangle (tent) filter whose support
 * widens with the downscaling factor, so downscaling averages (no aliasing of fine ridges) and upscaling is bilinear.
 */
export function resampleGray(src: Float32Array, width: number, height: number, scale: number): { data: Float32Array; width: number; height: number } {
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  if (w === width && h === height) return { data: src, width, height };
  const tmp = new Float32Array(w * height);
  const wx = weights(width, w);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < w; x++) {
      const { start, taps } = wx[x]!;
      let s = 0;
      for (let i = 0; i < taps.length; i++) s += taps[i]! * src[row + start + i]!;
      tmp[y * w + x] = s;
    }
  }
  const out = new Float32Array(w * h);
  const wy = weights(height, h);
  for (let y = 0; y < h; y++) {
    const { start, taps } = wy[y]!;
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let i = 0; i < taps.length; i++) s += taps[i]! * tmp[(start + i) * w + x]!;
      out[y * w + x] = s;
    }
  }
  return { data: out, width: w, height: h };
}

function weights(n: number, m: number): Array<{ start: number; taps: Float32Array }> {
  const ratio = n / m;
  const support = Math.max(1, ratio);
  const out: Array<{ start: number; taps: Float32Array }> = [];
  for (let j = 0; j < m; j++) {
    const centre = (j + 0.5) * ratio - 0.5;
    const start = Math.max(0, Math.ceil(centre - support));
    const end = Math.min(n - 1, Math.floor(centre + support));
    const taps = new Float32Array(Math.max(1, end - start + 1));
    let sum = 0;
    for (let i = start; i <= end; i++) sum += taps[i - start] = Math.max(0, 1 - Math.abs(i - centre) / support);
    if (sum <= 0) {
      taps.fill(0);
      taps[0] = 1;
    } else for (let i = 0; i < taps.length; i++) taps[i]! /= sum;
    out.push({ start: Math.min(start, n - 1), taps });
  }
  return out;
}
