import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFingerprintGraphs, GABOR, gaborKernel } from '../models/fingerprint/build.ts';
import { decodeGray, FingerprintExtractor, type ExtractedMinutia, type FingerprintExtraction } from '../models/fingerprint/extract/index.ts';
import { PARAMS } from '../models/fingerprint/extract/params.ts';
import { blur, makePattern, type Pattern, type PatternMinutia } from '../models/fingerprint/extract/test-pattern.ts';
import { axialDifference, normalFromGraph, orientationFromGraph } from '../models/fingerprint/extract/orientation.ts';
import { atan2, atan2Approx } from '../models/fingerprint/extract/atan2.ts';
import { loadFingerprintGraphs, runOrientation } from '../models/fingerprint/extract/graphs.ts';
import { blockFieldAt, blockGrid, blocksToPixels } from '../models/fingerprint/extract/fields.ts';
import { renderImpression, synthesizeFinger } from '../models/fingerprint/synth/index.ts';
import { BadImageError, UsageError } from '../protocol/errors.ts';

const TRUTH: PatternMinutia[] = [
  { x: 90, y: 100, type: 'ending' },
  { x: 160, y: 110, type: 'bifurcation' },
  { x: 80, y: 180, type: 'bifurcation' },
  { x: 170, y: 190, type: 'ending' },
  { x: 128, y: 150, type: 'ending' },
  { x: 120, y: 230, type: 'bifurcation' },
  { x: 125, y: 60, type: 'bifurcation' },
  { x: 185, y: 150, type: 'ending' },
];

let extractor: FingerprintExtractor;
beforeAll(async () => {
  extractor = await FingerprintExtractor.load();
});
afterAll(async () => {
  await extractor.close();
});

/** Greedy one-to-one matching of found minutiae to the truth within `radius` pixels. */
function score(found: ExtractedMinutia[], truth: PatternMinutia[], radius = 8) {
  const used = new Set<number>();
  let hits = 0;
  let typeHits = 0;
  for (const t of truth) {
    let best = -1;
    let bestD = radius;
    found.forEach((f, i) => {
      const d = Math.hypot(f.x - t.x, f.y - t.y);
      if (!used.has(i) && d <= bestD) (best = i), (bestD = d);
    });
    if (best >= 0) {
      used.add(best);
      hits++;
      if (found[best]!.type === t.type) typeHits++;
    }
  }
  return { recall: hits / truth.length, typeAccuracy: hits ? typeHits / hits : 0, spurious: found.length - hits };
}

const gray = (p: Pattern, data = p.data) => ({ width: p.width, height: p.height, data });

describe('fingerprint extraction graphs', () => {
  it('builds the same ONNX bytes on every call', () => {
    const a = buildFingerprintGraphs();
    const b = buildFingerprintGraphs();
    expect([...a.keys()]).toEqual(['fp_orientation', 'fp_gabor']);
    for (const [k, v] of a) expect(Buffer.from(b.get(k)!).equals(Buffer.from(v))).toBe(true);
  });

  it('the separable Gabor graph equals the 2-D Gabor kernels (impulse response)', async () => {
    const bytes = buildFingerprintGraphs().get('fp_gabor')!;
    const session = await ort.InferenceSession.create(bytes);
    const n = 2 * GABOR.radius + 1;
    const size = n + 4;
    const impulse = new Float32Array(size * size);
    const c = Math.floor(size / 2);
    impulse[c * size + c] = 1;
    const out = await session.run({ image: new ort.Tensor('float32', impulse, [1, 1, size, size]) });
    const resp = out.responses!.data as Float32Array;
    const K = GABOR.orientations;
    for (const [k, p] of [[0, 0], [3, 1], [6, 2]] as const) {
      const kernel = gaborKernel(k, p);
      let maxErr = 0;
      for (let y = -GABOR.radius; y <= GABOR.radius; y++) {
        for (let x = -GABOR.radius; x <= GABOR.radius; x++) {
          // Conv is a correlation: the response at offset (x, y) from the impulse is the kernel at (-x, -y).
          const got = resp[(p * K + k) * size * size + (c + y) * size + c + x]!;
          const want = kernel[(GABOR.radius - y) * n + GABOR.radius - x]!;
          maxErr = Math.max(maxErr, Math.abs(got - want));
        }
      }
      expect(maxErr).toBeLessThan(1e-5);
    }
    await session.release();
  });
});

describe('block fields', () => {
  it('a block field looked up at one pixel is the per-pixel field there, to the bit', () => {
    const grid = blockGrid(203, 157, 12);
    let seed = 7;
    const values = Float32Array.from({ length: grid.cols * grid.rows }, () => 6 + ((seed = (seed * 1103515245 + 12345) >>> 0) % 7000) / 1000);
    const field = blocksToPixels(values, grid, 203, 157);
    let differ = 0;
    for (let y = 0; y < 157; y++) for (let x = 0; x < 203; x++) if (blockFieldAt(values, grid, x, y) !== field[y * 203 + x]) differ++;
    expect(differ).toBe(0);
  });
});

describe('fingerprint extraction on analytic patterns', () => {
  const clean = makePattern({ minutiae: TRUTH, noise: 6, seed: 1 });
  let result: FingerprintExtraction;
  beforeAll(async () => {
    result = await extractor.extract(gray(clean), { keepFields: true });
  });

  it('recovers the orientation field (mean error < 10 degrees in the foreground)', () => {
    const f = result.fields!;
    let sum = 0;
    let n = 0;
    for (let i = 0; i < clean.normal.length; i++) {
      if (!clean.foreground[i] || !result.mask.data[i]) continue;
      sum += axialDifference(f.normal[i]!, clean.normal[i]!);
      n++;
    }
    expect((sum / n) * (180 / Math.PI)).toBeLessThan(10);
  });

  it('estimates the ridge period near the true one', () => {
    expect(Math.abs(result.orientation.meanPeriod - clean.period)).toBeLessThan(0.8);
  });

  it('masks the printed area and little else', () => {
    let covered = 0;
    let inside = 0;
    let outside = 0;
    let background = 0;
    for (let i = 0; i < clean.foreground.length; i++) {
      if (clean.foreground[i]) (inside++, (covered += result.mask.data[i]!));
      else (background++, (outside += result.mask.data[i]!));
    }
    expect(covered / inside).toBeGreaterThan(0.9);
    expect(outside / background).toBeLessThan(0.15);
  });

  it('finds the known minutiae with their types, few spurious ones, and a good quality', () => {
    const s = score(result.minutiae, clean.minutiae);
    expect(s.recall).toBeGreaterThanOrEqual(0.85);
    expect(s.typeAccuracy).toBeGreaterThanOrEqual(0.8);
    expect(s.spurious).toBeLessThanOrEqual(3);
    expect(result.quality.score).toBeGreaterThanOrEqual(result.quality.retryBelow);
    expect(Object.keys(result.quality.measures)).toEqual(['foreground', 'orientation', 'clarity', 'minutiae', 'density']);
    for (const m of result.minutiae) {
      expect(m.angle).toBeGreaterThanOrEqual(0);
      expect(m.angle).toBeLessThan(2 * Math.PI);
      expect(m.quality).toBeGreaterThanOrEqual(0);
      expect(m.quality).toBeLessThanOrEqual(100);
    }
  });

  it('gives minutia directions along the ridge flow, endings pointing into their ridge', () => {
    const f = result.fields!;
    for (const t of clean.minutiae) {
      const m = result.minutiae.find((q) => Math.hypot(q.x - t.x, q.y - t.y) <= 8);
      if (!m) continue;
      // The analytic normal swirls right at the dislocation: compare with its doubled-angle mean over a disc.
      let cx = 0;
      let cy = 0;
      for (let dy = -12; dy <= 12; dy++) {
        for (let dx = -12; dx <= 12; dx++) {
          if (dx * dx + dy * dy > 144) continue;
          const a = clean.normal[(Math.round(m.y) + dy) * f.width + Math.round(m.x) + dx]!;
          (cx += Math.cos(2 * a)), (cy += Math.sin(2 * a));
        }
      }
      const normal = 0.5 * Math.atan2(cy, cx);
      // Our angle is counter-clockwise on screen; in image coordinates (y down) the direction is -angle.
      expect(axialDifference(-m.angle, normal + Math.PI / 2)).toBeLessThan((20 * Math.PI) / 180);
      if (m.type === 'ending') {
        // Walking a few pixels along the direction stays on the ridge (dark) skeleton side.
        let dark = 0;
        for (let s = 2; s <= 6; s++) dark += clean.data[Math.round(m.y - s * Math.sin(m.angle)) * clean.width + Math.round(m.x + s * Math.cos(m.angle))]! < 128 ? 1 : 0;
        expect(dark).toBeGreaterThanOrEqual(3);
      }
    }
  });

  it('survives noise, blur, low contrast and rotation', async () => {
    const cases = [
      { name: 'noisy', p: makePattern({ minutiae: TRUTH, noise: 30, seed: 2 }) },
      { name: 'low contrast', p: makePattern({ minutiae: TRUTH, noise: 4, contrast: 40, mean: 170, seed: 3 }) },
      { name: 'rotated 30 deg, period 10', p: makePattern({ minutiae: TRUTH, noise: 8, rotation: Math.PI / 6, period: 10, seed: 4 }) },
    ];
    for (const c of cases) {
      const r = await extractor.extract(gray(c.p));
      const s = score(r.minutiae, c.p.minutiae);
      expect(s.recall, c.name).toBeGreaterThanOrEqual(0.75);
      expect(s.spurious, c.name).toBeLessThanOrEqual(6);
    }
    const blurred = makePattern({ minutiae: TRUTH, noise: 10, seed: 5 });
    const r = await extractor.extract(gray(blurred, blur(blurred, 2)));
    expect(score(r.minutiae, blurred.minutiae).recall).toBeGreaterThanOrEqual(0.75);
  });

  it('works at 1000 dpi, reporting input-pixel coordinates', async () => {
    const big = makePattern({ width: 512, height: 576, period: 18, noise: 6, seed: 6, minutiae: TRUTH.map((m) => ({ ...m, x: m.x * 2, y: m.y * 2 })) });
    const r = await extractor.extract(gray(big), { dpi: 1000 });
    expect(r.mask.width).toBe(512);
    expect(score(r.minutiae, big.minutiae, 16).recall).toBeGreaterThanOrEqual(0.75);
    expect(Math.abs(r.orientation.meanPeriod - 18)).toBeLessThan(2);
  });

  it('decodes PNG and BMP-less encoded bytes to gray with the same result', async () => {
    const png = await sharp(Buffer.from(clean.data), { raw: { width: clean.width, height: clean.height, channels: 1 } }).png().toBuffer();
    const decoded = await decodeGray(new Uint8Array(png));
    expect(decoded.width).toBe(clean.width);
    expect(Buffer.from(decoded.data).equals(Buffer.from(clean.data))).toBe(true);
    const r = await extractor.extract(decoded);
    expect(r.minutiae).toEqual(result.minutiae);
  });
});

describe('fingerprint extraction: the refinement', () => {
  // Creases: light bands 3 px wide every 14 px, across the ridges at about 57 degrees (as flexion creases cross a
  // print). Their edges are strong gradients in the wrong direction, which pull the raw image's orientation off.
  const creased = makePattern({ noise: 6, seed: 3 });
  const along = { c: Math.cos(1), s: Math.sin(1) };
  for (let y = 0; y < creased.height; y++) {
    for (let x = 0; x < creased.width; x++) {
      const i = y * creased.width + x;
      if (creased.foreground[i] && (((x * along.c + y * along.s) % 14) + 14) % 14 < 3) creased.data[i] = 235;
    }
  }
  const meanError = (normal: Float32Array, mask: Uint8Array) => {
    let sum = 0;
    let n = 0;
    for (let i = 0; i < normal.length; i++) {
      if (!creased.foreground[i] || !mask[i]) continue;
      sum += axialDifference(normal[i]!, creased.normal[i]!);
      n++;
    }
    return (sum / n) * (180 / Math.PI);
  };

  it('takes the orientation from the enhanced image, where creases no longer mislead it', async () => {
    const r = await extractor.extract(gray(creased), { keepFields: true });
    const graphs = await loadFingerprintGraphs();
    try {
      const unit = Float32Array.from(creased.data, (v) => v / 255);
      const raw = orientationFromGraph(await runOrientation(graphs.orientation, unit, creased.width, creased.height), creased.width, creased.height);
      const rawError = meanError(raw.normal, r.mask.data);
      const refinedError = meanError(r.fields!.normal, r.mask.data);
      expect(rawError).toBeGreaterThan(6);
      expect(refinedError).toBeLessThan(4);
      expect(refinedError).toBeLessThan(rawError / 2);
    } finally {
      await graphs.orientation.session.release();
      await graphs.gabor.session.release();
    }
  });

  it("reads the refined field with an arctangent within 1e-6 rad of Math.atan2, and the raw field's exactly", () => {
    let worst = 0;
    let exactWorst = 0;
    let seed = 7;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    for (let k = 0; k < 100_000; k++) {
      const y = next() * 10 ** (3 * next()), x = next() * 10 ** (3 * next());
      worst = Math.max(worst, Math.abs(atan2Approx(y, x) - Math.atan2(y, x)));
      exactWorst = Math.max(exactWorst, Math.abs(atan2(y, x) - Math.atan2(y, x)));
    }
    expect(worst).toBeLessThan(1e-6);
    expect(exactWorst).toBeLessThan(1e-14);
    for (const [y, x] of [[0, 0], [0, -1], [-0, -1], [1, 0], [-1, 0], [Infinity, 1], [1, -Infinity], [NaN, 1]] as const) {
      expect(Object.is(atan2Approx(y, x), Math.atan2(y, x)) || Math.abs(atan2Approx(y, x) - Math.atan2(y, x)) < 1e-6, `${y}, ${x}`).toBe(true);
    }
    // The refined field's angles are the raw reading's to within that error.
    const half = { data: Float32Array.from({ length: 4 * 20 * 15 }, (_, i) => Math.sin(i * 0.37) * 0.6), width: 20, height: 15 };
    const exact = orientationFromGraph(half, 40, 30).normal;
    const approx = normalFromGraph(half, 40, 30);
    let fieldWorst = 0;
    for (let i = 0; i < exact.length; i++) fieldWorst = Math.max(fieldWorst, axialDifference(exact[i]!, approx[i]!));
    expect(fieldWorst).toBeLessThan(1e-6);
  });

  it('gives the same result whether the bank responses are kept or the bank runs again', async () => {
    const kept = await extractor.extract(gray(creased), { keepResponses: true });
    const rerun = await extractor.extract(gray(creased), { keepResponses: false });
    expect(rerun.minutiae).toEqual(kept.minutiae);
    expect(rerun.quality).toEqual(kept.quality);
  });
});

describe("fingerprint extraction at a sensor's frame", () => {
  // Ridges fill the image up to a saturated frame, as the trapezoid of an optical sensor's window does. It starts 7
  // pixels into a 16-pixel block, which is then finger as a whole: without the trim, the mask ran 9 pixels into the
  // frame and the ridges ending at it gave false endings. A flat disc inside the finger stands for a wet blob.
  const FRAME = 199;
  const blob = { x: 100, y: 150, r: 12 };
  const base = makePattern({ minutiae: TRUTH, noise: 6, seed: 3, ellipse: null });
  const framed = Uint8Array.from(base.data);
  for (let y = 0; y < base.height; y++) {
    for (let x = 0; x < base.width; x++) {
      if (x >= FRAME) framed[y * base.width + x] = 255;
      else if (Math.hypot(x - blob.x, y - blob.y) <= blob.r) framed[y * base.width + x] = 128;
    }
  }
  let r: FingerprintExtraction;
  beforeAll(async () => {
    r = await extractor.extract(gray(base, framed));
  });

  it('leaves the flat frame out of the mask, to within the texture window of its edge', () => {
    let inFrame = 0;
    for (let y = 0; y < base.height; y++) for (let x = FRAME + PARAMS.flatRadius + 1; x < base.width; x++) inFrame += r.mask.data[y * base.width + x]!;
    expect(inFrame).toBe(0);
  });

  it('finds no false endings where the ridges meet the frame', () => {
    const atFrame = r.minutiae.filter((m) => m.x >= FRAME - base.period);
    expect(atFrame).toEqual([]);
    expect(r.minutiae.length).toBeGreaterThanOrEqual(4);
  });

  it('keeps a flat spot inside the finger in the mask', () => {
    expect(r.mask.data[blob.y * base.width + blob.x]).toBe(1);
  });
});

describe('fingerprint extraction on pathological inputs', () => {
  const flat = (w: number, h: number, v: number) => ({ width: w, height: h, data: new Uint8Array(w * h).fill(v) });

  it('returns no minutiae and a retry-level quality for blank and noise images', async () => {
    const noise = flat(256, 288, 0);
    let s = 7;
    for (let i = 0; i < noise.data.length; i++) noise.data[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
    for (const [name, img] of [['white', flat(256, 288, 255)], ['black', flat(256, 288, 0)], ['noise', noise]] as const) {
      const r = await extractor.extract(img);
      expect(r.minutiae.length, name).toBeLessThanOrEqual(2);
      expect(r.quality.score, name).toBeLessThan(r.quality.retryBelow);
    }
  });

  it('refuses tiny images, bad buffers and bad dpi with typed errors', async () => {
    await expect(extractor.extract(flat(16, 16, 128))).rejects.toBeInstanceOf(BadImageError);
    await expect(extractor.extract({ width: 100, height: 100, data: new Uint8Array(10) })).rejects.toBeInstanceOf(BadImageError);
    await expect(extractor.extract({ width: 0, height: 100, data: new Uint8Array(0) })).rejects.toBeInstanceOf(BadImageError);
    await expect(extractor.extract(flat(256, 288, 128), { dpi: 72 })).rejects.toBeInstanceOf(UsageError);
    await expect(decodeGray(new Uint8Array([1, 2, 3, 4]))).rejects.toBeInstanceOf(BadImageError);
  });

  it('handles sizes that are not multiples of the block size, and a 2000x2000 image', async () => {
    const odd = makePattern({ width: 250, height: 301, minutiae: TRUTH, noise: 6 });
    const r = await extractor.extract(gray(odd));
    expect(score(r.minutiae, odd.minutiae).recall).toBeGreaterThanOrEqual(0.75);
    const huge = makePattern({ width: 2000, height: 2000, centre: { x: 1000, y: 2400 }, noise: 6 });
    const h = await extractor.extract(gray(huge));
    expect(h.mask.width).toBe(2000);
    expect(h.quality.score).toBeGreaterThan(0);
  }, 120_000);
});

describe('fingerprint extraction on synthetic impressions (models/fingerprint/synth)', () => {
  it('reports minutiae counts and quality (informational)', async () => {
    const rows: string[] = [];
    for (let f = 0; f < 4; f++) {
      const imp = renderImpression(synthesizeFinger(500 + f), 11 + f);
      const r = await extractor.extract(imp);
      rows.push(`${imp.truth.cls}: ${r.minutiae.length} minutiae, quality ${r.quality.score}`);
      expect(r.minutiae.length).toBeGreaterThan(0);
    }
    console.log(rows.join('\n'));
  });
});
