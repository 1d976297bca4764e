/**
 * The iris modality on synthetic captures (models/iris/synth: tests run without the shared real data): segmentation,
 * code, template, matcher (the wasm loop against the plain reference), errors, the engine, the verifier's matcher.
 */
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadImageError, BadTemplateError } from '../protocol/errors.ts';
import { mulberry32 } from '../models/common/prng.ts';
import { decodeGray } from '../models/fingerprint/extract/decode.ts';
import { decodeIrisImage } from '../models/iris/decode.ts';
import { CODE_BYTES } from '../models/iris/encode.ts';
import { IrisEngine, irisModelIdentity } from '../models/iris/engine.ts';
import { NoIrisFoundError } from '../models/iris/errors.ts';
import { hammingReference, normaliseHd } from '../models/iris/hamming.ts';
import { assembleMatcherModule } from '../models/iris/hamming-wasm.ts';
import { IRIS_DEFAULT_THRESHOLD, IRIS_MATCH, irisHamming, prepareIris } from '../models/iris/matcher.ts';
import { sampledPixels, sampleSheet, sheetPoints } from '../models/iris/normalise.ts';
import { arcReach, largestRadiusTried, refineCircle } from '../models/iris/segment/circles.ts';
import { gaussianBlur, gaussianBlurWithin } from '../models/iris/segment/image-ops.ts';
import { captureParams, irisMaster, renderCapture, syntheticIris } from '../models/iris/synth/generator.ts';
import { decodeIrisTemplate, encodeIrisTemplate, MAX_IRIS_TEMPLATE_BYTES } from '../models/iris/template.ts';
import { builtinMatchers, irisMatcher } from '../verifier/matchers.ts';

const png = (img: { width: number; height: number; data: Uint8Array }) => sharp(img.data, { raw: { width: img.width, height: img.height, channels: 1 } }).png().toBuffer();

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

describe('iris matcher', () => {
  const rand = mulberry32(11);
  const bytes = () => Uint8Array.from({ length: CODE_BYTES }, () => Math.floor(rand() * 256));

  it('the wasm loop gives the reference distances and rotations', () => {
    for (let i = 0; i < 40; i++) {
      const a = { code: bytes(), mask: bytes().map((v) => v | 0x5a) };
      const b = { code: bytes(), mask: bytes().map((v) => v | 0xa5) };
      const w = irisHamming(prepareIris(a.code, a.mask), prepareIris(b.code, b.mask));
      const r = hammingReference(a, b, IRIS_MATCH);
      expect(w.hd).toBeCloseTo(r.hd, 12);
      expect([w.shift, w.bits]).toEqual([r.shift, r.bits]);
    }
  });

  it('finds a rotated copy at its rotation with distance 0, and random codes near 0.5', () => {
    const code = bytes();
    const mask = new Uint8Array(CODE_BYTES).fill(0xff);
    // Turn by 5 columns (16 bits each): column c of the copy is column c - 5 of the original.
    const turned = new Uint8Array(CODE_BYTES);
    for (let c = 0; c < 128; c++) turned.set(code.subarray(2 * ((c - 5 + 128) % 128), 2 * ((c - 5 + 128) % 128) + 2), 2 * c);
    const r = irisHamming(prepareIris(code, mask), prepareIris(turned, mask));
    expect(r.raw).toBe(0);
    expect(r.shift).toBe(5);
    const x = irisHamming(prepareIris(bytes(), mask), prepareIris(bytes(), mask));
    expect(x.raw).toBeGreaterThan(0.44);
    expect(x.raw).toBeLessThan(0.53);
  });

  it("rescales by the bits compared (Daugman) and gives no evidence below the minimum", () => {
    expect(normaliseHd(0.3, IRIS_MATCH.typicalBits, IRIS_MATCH.typicalBits, IRIS_MATCH.minBits)).toBeCloseTo(0.3, 12);
    expect(normaliseHd(0.3, IRIS_MATCH.typicalBits / 4, IRIS_MATCH.typicalBits, IRIS_MATCH.minBits)).toBeCloseTo(0.4, 12);
    expect(normaliseHd(0.1, 10, IRIS_MATCH.typicalBits, IRIS_MATCH.minBits)).toBe(0.5);
    expect(assembleMatcherModule().length).toBeLessThan(1024);
  });
});

describe('iris template', () => {
  const model = irisModelIdentity('ab'.repeat(32));
  it('round-trips, stays under 1 KB, and refuses damage with BadTemplateError', () => {
    const code = Uint8Array.from({ length: CODE_BYTES }, (_, i) => i);
    const mask = Uint8Array.from({ length: CODE_BYTES }, (_, i) => 255 - i);
    const t = encodeIrisTemplate({ model, quality: 77, code, mask });
    expect(t.length).toBeLessThanOrEqual(1024);
    expect(MAX_IRIS_TEMPLATE_BYTES).toBeLessThanOrEqual(1024);
    const d = decodeIrisTemplate(t);
    expect(d).toMatchObject({ format: 'biokiosk-iris/1', quality: 77, model });
    expect([...d.code]).toEqual([...code]);
    expect([...d.mask]).toEqual([...mask]);
    for (const bad of [t.subarray(0, 30), t.subarray(0, t.length - 1), Uint8Array.from(t, (v, i) => (i === 0 ? 0 : v)), Uint8Array.from(t, (v, i) => (i === 5 ? 200 : v)), Uint8Array.from(t, (v, i) => (i === 6 ? 4 : v))]) {
      expect(() => decodeIrisTemplate(bad)).toThrow(BadTemplateError);
    }
  });

  it('names a model that changes with the graph', () => {
    expect(irisModelIdentity('00'.repeat(32)).sha256).not.toBe(model.sha256);
  });
});

describe('iris engine on synthetic captures', () => {
  let engine: IrisEngine;
  beforeAll(async () => {
    engine = await IrisEngine.create();
  });
  afterAll(async () => {
    await engine.close();
  });

  it('segments the pupil and limbus it was given (glints in the pupil, lids over the iris)', async () => {
    const master = irisMaster(4242);
    const params = captureParams(master, 2);
    const img = { width: params.width, height: params.height, data: renderCapture(master, params, 9) };
    const x = await engine.extract(await png(img));
    const pupil = x.info['pupil'] as { x: number; y: number; r: number };
    const iris = x.info['iris'] as { x: number; y: number; r: number };
    const truePupil = { x: params.centre.x + master.offset.x * master.irisRadius, y: params.centre.y + master.offset.y * master.irisRadius, r: params.dilation * master.irisRadius };
    expect(Math.hypot(pupil.x - truePupil.x, pupil.y - truePupil.y)).toBeLessThan(3);
    expect(Math.abs(pupil.r - truePupil.r)).toBeLessThan(3);
    expect(Math.abs(iris.r - master.irisRadius)).toBeLessThan(6);
    expect(x.template.length).toBeLessThanOrEqual(1024);
    expect(x.quality.retryBelow).toBe(30);
    expect(Object.keys(x.quality.measures)).toEqual(['usable_iris_area', 'iris_sclera_contrast', 'iris_pupil_contrast', 'pupil_iris_ratio', 'pupil_iris_concentricity', 'margin_adequacy', 'grey_scale_utilisation', 'sharpness']);
    expect(Object.keys(x.timings)).toEqual(['decode', 'segmentation', 'normalisation', 'occlusion', 'filter', 'encode', 'quality', 'template']);
  });

  it('matches captures of one eye and not of others; the verifier matcher agrees', async () => {
    const t = async (eye: number, sample: number) => (await engine.extract(await png(syntheticIris(5, eye, sample)))).template;
    const [a1, a2, b1, c1] = await Promise.all([t(0, 0), t(0, 3), t(1, 0), t(2, 1)]);
    const genuine = engine.compare(a1!, a2!);
    expect(genuine.decision).toBe('match');
    expect(genuine.native.value).toBeLessThan(IRIS_DEFAULT_THRESHOLD);
    for (const other of [b1!, c1!]) {
      const r = engine.compare(a1!, other);
      expect(r.decision).toBe('no_match');
      expect(r.native.value).toBeGreaterThan(0.4);
    }
    const v = builtinMatchers().get('biokiosk-iris/1')!;
    expect(v.modality).toBe('iris');
    expect(v.modelOf(a1!)).toBe(engine.model.sha256);
    expect(v.match(a2!, a1!).decision).toBe('match');
    // The threshold given is the one used: at HD 0.5 even another eye "matches".
    expect(v.match(b1!, a1!).decision).toBe('no_match');
    expect(irisMatcher(0.5).match(b1!, a1!).decision).toBe('match');
    expect(() => v.match(a2!.subarray(0, 100), a1!)).toThrow(BadTemplateError);
  });

  it('refuses a malformed file (BadImage) and an image with no eye (NoIrisFound)', async () => {
    expect(await errorOf(engine.extract(Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 1, 2, 3)))).toBeInstanceOf(BadImageError);
    expect(await errorOf(engine.extract(await png({ width: 50, height: 50, data: new Uint8Array(2500) })))).toBeInstanceOf(BadImageError);
    const flat = new Uint8Array(320 * 240).fill(128);
    expect(await errorOf(engine.extract(await png({ width: 320, height: 240, data: flat })))).toBeInstanceOf(NoIrisFoundError);
    const rand = mulberry32(3);
    const noise = Uint8Array.from({ length: 320 * 240 }, () => Math.floor(rand() * 256));
    expect(await errorOf(engine.extract(await png({ width: 320, height: 240, data: noise })))).toBeInstanceOf(NoIrisFoundError);
  });

  it('is deterministic: the same image gives the same template', async () => {
    const bytes = await png(syntheticIris(9, 3, 1));
    const a = await engine.extract(bytes);
    const b = await engine.extract(bytes);
    expect(Buffer.from(a.template).equals(Buffer.from(b.template))).toBe(true);
  });
});

// The speed-ups of issue 16 compute less, never something else: the same pixels and circles as the plain forms.
describe('iris image math: partial forms give the values of the whole', () => {
  const rand = mulberry32(16);
  const image = (w: number, h: number) => ({ width: w, height: h, data: Float32Array.from({ length: w * h }, () => rand() * 255) });

  it('a blur inside boxes equals the whole-image blur there, edges included', () => {
    for (const [w, h] of [[97, 61], [6, 4], [1, 9]] as const) {
      const img = image(w, h);
      for (const sigma of [0.5, 0.855, 1.2, 2, 3.3]) {
        const whole = gaussianBlur(img, sigma);
        const boxes = [{ x0: 0, y0: 0, x1: Math.floor(w / 3), y1: h - 1 }, { x0: Math.floor(w / 2), y0: Math.floor(h / 3), x1: w + 5, y1: h + 5 }];
        const part = gaussianBlurWithin(img, sigma, boxes);
        for (const b of boxes) {
          for (let y = b.y0; y <= Math.min(h - 1, b.y1); y++) for (let x = b.x0; x <= Math.min(w - 1, b.x1); x++) expect(part.data[y * w + x]).toBe(whole.data[y * w + x]);
        }
      }
    }
  });

  it('the limbus search reads only inside arcReach, and the sheet only inside sampledPixels', () => {
    const img = image(160, 120);
    const arcs: Array<[number, number]> = [[-20, 30], [150, 200]];
    const o = { arcs, centreRange: 6, centreRangeY: 2.5, centreStep: 1.5, rMin: 30, rMax: 50, combine: 'weakest' as const, stepWidth: 3 };
    const start = { x: 81.3, y: 58.7 };
    const reach = arcReach(start, { x: 6, y: 2.5 }, [30, largestRadiusTried(o)], arcs);
    expect(refineCircle(gaussianBlurWithin(img, 2, reach), start, o)).toEqual(refineCircle(gaussianBlur(img, 2), start, o));
    const points = sheetPoints({ x: 70, y: 64, r: 14 }, { x: 72, y: 62, r: 52 }, { rows: 32, cols: 256, rhoRange: [0.04, 0.86] });
    const inside = sampleSheet(gaussianBlurWithin(img, 0.9, sampledPixels(points, 160, 120)), points);
    expect([...inside.data]).toEqual([...sampleSheet(gaussianBlur(img, 0.9), points).data]);
  });

  it('the iris decoder gives the shared decoder’s pixels and errors', async () => {
    const grey = await png({ width: 40, height: 30, data: Uint8Array.from({ length: 1200 }, () => Math.floor(rand() * 256)) });
    const colour = await sharp(Buffer.from(Uint8Array.from({ length: 40 * 30 * 3 }, () => Math.floor(rand() * 256))), { raw: { width: 40, height: 30, channels: 3 } }).png().toBuffer();
    const turned = await sharp(colour).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    for (const bytes of [grey, colour, turned]) {
      const a = await decodeGray(new Uint8Array(bytes), { maxSide: 4096 });
      const b = await decodeIrisImage(new Uint8Array(bytes), { maxSide: 4096 });
      expect([b.width, b.height]).toEqual([a.width, a.height]);
      expect(Buffer.from(b.data).equals(Buffer.from(a.data))).toBe(true);
    }
    const bad = grey.subarray(0, 60);
    expect(String(await errorOf(decodeIrisImage(bad, { maxSide: 4096 })))).toBe(String(await errorOf(decodeGray(bad, { maxSide: 4096 }))));
  });
});
