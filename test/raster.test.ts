import { describe, expect, it } from 'vitest';
import { laplacianVariance, resizeToFloat, scaleTranslate, warpAffineToFloat, type Raster } from '../models/common/raster.ts';
import { fitSimilarity } from '../models/face/align.ts';

function randomRaster(w: number, h: number, seed = 1): Raster {
  const data = new Uint8Array(w * h * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    data[i] = s & 0xff;
  }
  return { width: w, height: h, channels: 3, data };
}

describe('raster math', () => {
  it('resizeToFloat gives the same samples as the general affine warp, borders included', () => {
    const img = randomRaster(37, 23);
    for (const [scale, ox, oy] of [[0.5, 0, 0], [2.3, -3, 4], [1, 5.5, -2.25], [416 / 37, 0, 0]] as const) {
      const m = scaleTranslate(scale, ox, oy);
      const a = resizeToFloat(img, 40, 30, m);
      const b = warpAffineToFloat(img, 40, 30, m);
      let max = 0;
      for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
      expect(max).toBeLessThan(1e-3);
    }
  });

  it('identity scale reproduces the pixels', () => {
    const img = randomRaster(8, 6);
    const out = resizeToFloat(img, 8, 6, scaleTranslate(1, 0, 0));
    expect(Array.from(out)).toEqual(Array.from(img.data));
  });

  it('fitSimilarity recovers a known rotation, scale and translation', () => {
    const from = [{ x: 0, y: 0 }, { x: 10, y: 0 }, { x: 3, y: 7 }, { x: -4, y: 5 }];
    const th = 0.3;
    const s = 1.7;
    const to = from.map((p) => ({ x: s * (Math.cos(th) * p.x - Math.sin(th) * p.y) + 11, y: s * (Math.sin(th) * p.x + Math.cos(th) * p.y) - 2 }));
    const [a, b, c, d, e, f] = fitSimilarity(from, to);
    expect(a).toBeCloseTo(s * Math.cos(th), 9);
    expect(d).toBeCloseTo(s * Math.sin(th), 9);
    expect(b).toBeCloseTo(-d, 9);
    expect(e).toBeCloseTo(a, 9);
    expect(c).toBeCloseTo(11, 9);
    expect(f).toBeCloseTo(-2, 9);
  });

  it('Laplacian variance is zero on a flat image and grows with detail', () => {
    const flat = new Float32Array(100).fill(50);
    expect(laplacianVariance(flat, 10, 10)).toBe(0);
    const checker = Float32Array.from({ length: 100 }, (_, i) => ((i % 10) + Math.floor(i / 10)) % 2 ? 200 : 0);
    expect(laplacianVariance(checker, 10, 10)).toBeGreaterThan(1000);
  });
});
