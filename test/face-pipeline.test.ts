import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadImageError, BadTemplateError } from '../protocol/errors.ts';
import { FaceEngine } from '../models/face/engine.ts';
import { compareFaceTemplateBytes, euclidean, FACE_DEFAULT_THRESHOLD } from '../models/face/matcher.ts';
import { decodeFaceTemplate, encodeFaceTemplate } from '../models/face/template.ts';
import { sample } from './helpers/fixtures.ts';

let engine: FaceEngine;
beforeAll(async () => {
  engine = await FaceEngine.create();
});
afterAll(async () => {
  await engine?.close();
});

const embeddingOf = async (bytes: Uint8Array) => decodeFaceTemplate((await engine.extract(bytes)).template).embedding;

describe('face pipeline', () => {
  it('extracts an L2-normalised 128-D template with quality, face count and stage timings from a good photo', async () => {
    const r = await engine.extract(sample(2));
    const t = decodeFaceTemplate(r.template);
    expect(t.format).toBe('biokiosk-face/1');
    expect(t.embedding.length).toBe(128);
    expect(Math.hypot(...t.embedding)).toBeCloseTo(1, 5);
    expect(t.model.name).toBe('face_descriptor_resnet29');
    expect(r.info['faceCount']).toBe(1);
    expect(Object.keys(r.timings)).toEqual(expect.arrayContaining(['decode', 'detect', 'landmarks', 'align', 'embed']));
    expect(r.quality.score).toBeGreaterThan(r.quality.retryBelow);
    for (const m of ['interEyeDistance', 'sharpness', 'exposure', 'yaw']) expect(r.quality.measures[m]).toBeDefined();
    const box = r.info['box'] as { x: number; y: number; width: number; height: number };
    // Boxes are reported in the original image's pixels (the photo is 1920 px wide; the face is on the right).
    expect(box.x).toBeGreaterThan(1000);
    expect(box.width).toBeGreaterThan(150);
  });

  it('takes the largest of several faces and reports how many it saw', async () => {
    const r = await engine.extract(sample(1));
    expect(r.info['faceCount']).toBeGreaterThanOrEqual(3);
    const box = r.info['box'] as { width: number; height: number };
    const all = await engine.pipeline.detectAll(sample(1));
    const largest = Math.max(...all.map((f) => f.box.width * f.box.height));
    // detectAll works on the decoded (downscaled) image: compare areas relative to the image.
    const scale = 1920 / 1920;
    expect(box.width * box.height).toBeCloseTo(largest * scale * scale, -2);
  });

  it('reports NoFaceDetected for an image without a face', async () => {
    const blank = await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 90, g: 140, b: 200 } } }).jpeg().toBuffer();
    await expect(engine.extract(blank)).rejects.toMatchObject({ code: 'NoFaceDetected', kind: 'input' });
  });

  it('reports BadImage for a truncated JPEG, random bytes, an empty file and a text file', async () => {
    const jpeg = sample(2);
    const cases = [jpeg.subarray(0, Math.floor(jpeg.length / 3)), Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 251)), Buffer.alloc(0), Buffer.from('hello, not an image\n')];
    for (const bytes of cases) {
      const err = await engine.extract(bytes).catch((e) => e);
      expect(err).toBeInstanceOf(BadImageError);
      expect(err.message.length).toBeGreaterThan(10);
    }
  });

  it('refuses an image over the pixel limit with a clear error, without decoding it', async () => {
    // 12000 x 9000 = 108 MP, over the 100 MP limit; PNG of a flat colour compresses to a small file.
    const huge = await sharp({ create: { width: 12000, height: 9000, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png({ compressionLevel: 9 }).toBuffer();
    const err = await engine.extract(huge).catch((e) => e);
    expect(err).toBeInstanceOf(BadImageError);
    expect(err.message).toMatch(/too large: 12000x9000/);
  });

  it('handles a large photo (8000 px wide) by downscaling, and finds the same face', async () => {
    const big = await sharp(sample(2)).rotate().resize({ width: 8000 }).jpeg({ quality: 90 }).toBuffer();
    const a = await embeddingOf(big);
    const b = await embeddingOf(sample(2));
    expect(euclidean(a, b)).toBeLessThan(0.2);
  });

  it('honours EXIF orientation', async () => {
    // Store the pixels rotated by 90 degrees with orientation 6 ("rotate 90 CW to display"): same face upright.
    const rotatedPixels = await sharp(sample(2)).rotate().rotate(-90).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const withExif = await embeddingOf(rotatedPixels);
    const upright = await embeddingOf(sample(2));
    expect(euclidean(withExif, upright)).toBeLessThan(0.2);
    // Without the EXIF tag the face lies on its side: either not found or a clearly different embedding.
    const noExif = await sharp(sample(2)).rotate().rotate(-90).jpeg({ quality: 95 }).toBuffer();
    const sideways = await engine.extract(noExif).then((r) => decodeFaceTemplate(r.template).embedding, () => null);
    if (sideways) expect(euclidean(sideways, upright)).toBeGreaterThan(euclidean(withExif, upright));
  });

  it('reads PNG and WebP as well as JPEG', async () => {
    const base = await embeddingOf(sample(2));
    for (const fmt of ['png', 'webp'] as const) {
      const bytes = await sharp(sample(2)).rotate().resize({ width: 1280 }).toFormat(fmt).toBuffer();
      expect(euclidean(await embeddingOf(bytes), base)).toBeLessThan(0.2);
    }
  });

  it('scores a blurred capture lower on sharpness and asks for a retry when it is badly blurred', async () => {
    const crisp = await engine.extract(sample(6));
    const blurred = await engine.extract(await sharp(sample(6)).rotate().blur(4).jpeg().toBuffer());
    expect(blurred.quality.measures['sharpness']!.value).toBeLessThan(crisp.quality.measures['sharpness']!.value);
    expect(blurred.quality.score).toBeLessThan(crisp.quality.score);
    expect(blurred.quality.score).toBeLessThan(blurred.quality.retryBelow);
  });

  it('scores a dark capture lower on exposure', async () => {
    const dark = await engine.extract(await sharp(sample(2)).rotate().linear(0.3, 0).jpeg().toBuffer());
    expect(dark.quality.measures['exposure']!.score).toBeLessThan(50);
  });

  it('matches a second capture of the same face and not another person', async () => {
    const enrolled = (await engine.extract(sample(2))).template;
    // A second capture: recropped, rescaled, brighter, recompressed.
    const meta = await sharp(sample(2)).rotate().metadata();
    const again = await sharp(sample(2)).rotate().extract({ left: 900, top: 0, width: (meta.autoOrient?.width ?? 1920) - 900, height: 900 }).resize({ width: 700 }).modulate({ brightness: 1.15 }).jpeg({ quality: 70 }).toBuffer();
    const genuine = compareFaceTemplateBytes(enrolled, (await engine.extract(again)).template);
    expect(genuine.decision).toBe('match');
    const impostor = compareFaceTemplateBytes(enrolled, (await engine.extract(sample(6))).template);
    expect(impostor.decision).toBe('no_match');
    expect(impostor.native.value).toBeGreaterThan(FACE_DEFAULT_THRESHOLD);
    expect(genuine.score).toBeGreaterThan(impostor.score);
  });
});

describe('face templates', () => {
  const model = { name: 'face_descriptor_resnet29', sha256: 'ab'.repeat(32) };
  const embedding = Float32Array.from({ length: 128 }, (_, i) => Math.sin(i) / 8);

  it('round-trips through biokiosk-face/1', () => {
    const t = decodeFaceTemplate(encodeFaceTemplate({ model, quality: 77, embedding }));
    expect(t.model).toEqual(model);
    expect(t.quality).toBe(77);
    expect(Array.from(t.embedding)).toEqual(Array.from(embedding));
  });

  it('rejects a truncated, wrongly tagged or padded template', () => {
    const bytes = encodeFaceTemplate({ model, quality: 77, embedding });
    expect(() => decodeFaceTemplate(bytes.subarray(0, bytes.length - 1))).toThrow(BadTemplateError);
    expect(() => decodeFaceTemplate(Uint8Array.from([...bytes, 0]))).toThrow(/does not match its header/);
    const wrongMagic = Uint8Array.from(bytes);
    wrongMagic[0] = 0x58;
    expect(() => decodeFaceTemplate(wrongMagic)).toThrow(/bad magic/);
    const wrongVersion = Uint8Array.from(bytes);
    wrongVersion[4] = 9;
    expect(() => decodeFaceTemplate(wrongVersion)).toThrow(/version 9/);
  });

  it('refuses to compare templates from different or untrusted models', () => {
    const a = encodeFaceTemplate({ model, quality: 77, embedding });
    const b = encodeFaceTemplate({ model: { ...model, sha256: 'cd'.repeat(32) }, quality: 77, embedding });
    expect(() => compareFaceTemplateBytes(a, b)).toThrow(/different models/);
    expect(() => compareFaceTemplateBytes(a, a, { trustedModelSha256: ['cd'.repeat(32)] })).toThrow(/untrusted model/);
    expect(compareFaceTemplateBytes(a, a).decision).toBe('match');
  });

  it('applies a configurable threshold', () => {
    const other = Float32Array.from(embedding, (v, i) => v + (i % 2 ? 0.02 : -0.02));
    const a = encodeFaceTemplate({ model, quality: 77, embedding });
    const b = encodeFaceTemplate({ model, quality: 77, embedding: other });
    const d = compareFaceTemplateBytes(a, b).native.value;
    expect(compareFaceTemplateBytes(a, b, { threshold: d + 0.01 }).decision).toBe('match');
    expect(compareFaceTemplateBytes(a, b, { threshold: d - 0.01 }).decision).toBe('no_match');
  });
});
