import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../models/common/prng.ts';
import { DESCRIPTOR, DESCRIPTOR_BYTES, DESCRIPTOR_SAMPLES, descriptorAgreement, describeMinutia, packDescriptors, unpackDescriptors } from '../models/fingerprint/descriptor.ts';
import { FingerprintExtractor } from '../models/fingerprint/extract/index.ts';
import { renderImpression, synthesizeFinger } from '../models/fingerprint/synth/index.ts';
import { matchScore, prepareFingerRecord } from '../models/fingerprint/matcher/mcc.ts';
import { MCC_DEFAULTS } from '../models/fingerprint/matcher/params.ts';
import { descriptorVectors, descriptorWeight } from '../models/fingerprint/matcher/similarity.ts';
import { syntheticFinger, syntheticImpression } from '../models/fingerprint/matcher/synthetic.ts';
import type { FingerRecord } from '../models/fingerprint/minutiae.ts';
import { decodeFingerprintTemplate, DESCRIPTOR_AREA_TYPE, encodeFingerprintTemplate, MAX_TEMPLATE_BYTES, maxMinutiaeWithDescriptors } from '../models/fingerprint/template.ts';
import { decodeIsoRecord, encodeIsoRecord } from '../models/fingerprint/iso19794-2.ts';
import { BadTemplateError } from '../protocol/errors.ts';

const W = 200, H = 200;
/** A field whose ridges all run at `ridge` radians (counter-clockwise as seen), as the extractor's ridge-normal field. */
const uniformField = (ridge: number) => new Float32Array(W * H).fill(Math.PI / 2 - ridge);
const randomCodes = (n: number, seed: number) => {
  const rand = mulberry32(seed);
  return Uint8Array.from({ length: n * DESCRIPTOR_SAMPLES }, () => Math.floor(rand() * (DESCRIPTOR.levels + 1)));
};

describe('orientation descriptors', () => {
  it('code the ridge flow relative to the minutia, so they turn with the finger; points off the finger are 0', () => {
    const mask = new Uint8Array(W * H).fill(1);
    // Ridges along the minutia: the first bin everywhere.
    expect([...describeMinutia(100, 100, 0, uniformField(0), mask, W, H)]).toEqual(new Array(DESCRIPTOR_SAMPLES).fill(1));
    // Turned together by 50 degrees: the same codes.
    const turn = (50 * Math.PI) / 180;
    expect([...describeMinutia(100, 100, turn, uniformField(turn), mask, W, H)]).toEqual(new Array(DESCRIPTOR_SAMPLES).fill(1));
    // Ridges at 3/4 pi from the minutia's direction: the nearest bin centre, round(0.75 x levels), + 1.
    const codes = describeMinutia(100, 100, Math.PI / 4, uniformField(0), mask, W, H);
    expect(new Set(codes)).toEqual(new Set([1 + Math.round(0.75 * DESCRIPTOR.levels)]));
    // Near the image edge and beside a background half: those points are 0, the others are not.
    const half = new Uint8Array(W * H);
    for (let y = 0; y < H; y++) for (let x = 0; x < W / 2; x++) half[y * W + x] = 1;
    const edge = describeMinutia(100, 100, 0, uniformField(0), half, W, H);
    // Direction 0 points right (into the background), direction 4 left (onto the finger).
    for (let r = 0; r < DESCRIPTOR.rings.length; r++) {
      expect(edge[r * DESCRIPTOR.directions]).toBe(0);
      expect(edge[r * DESCRIPTOR.directions + DESCRIPTOR.directions / 2]).toBe(1);
    }
    const corner = describeMinutia(5, 5, 0, uniformField(0), mask, W, H);
    expect(corner.filter((c) => c === 0).length).toBeGreaterThan(DESCRIPTOR_SAMPLES / 2);
  });

  it('pack to DESCRIPTOR_BYTES per minutia and back; a wrong length is refused', () => {
    const codes = randomCodes(37, 5);
    const packed = packDescriptors(codes);
    expect(packed.length).toBe(37 * DESCRIPTOR_BYTES);
    expect(unpackDescriptors(packed, 37)).toEqual(codes);
    expect(() => unpackDescriptors(packed, 36)).toThrow(BadTemplateError);
    expect(() => unpackDescriptors(packed.subarray(1), 37)).toThrow(/orientation descriptors: .* bytes for 37 minutiae/);
  });

  it('agree fully with themselves, less with others, and say nothing with too few points in common', () => {
    const a = randomCodes(1, 1).map((c) => c || 1);
    expect(descriptorAgreement(a, 0, a, 0, 4)).toBeCloseTo(1, 6);
    const other = randomCodes(200, 2).map((c) => c || 1);
    let sum = 0;
    for (let m = 0; m < 200; m++) sum += descriptorAgreement(a, 0, other, m * DESCRIPTOR_SAMPLES, 4);
    expect(Math.abs(sum / 200)).toBeLessThan(0.2); // unrelated flow: about 0 on average
    const sparse = new Uint8Array(DESCRIPTOR_SAMPLES);
    sparse.set(a.subarray(0, 3));
    expect(descriptorAgreement(sparse, 0, a, 0, 4)).toBeNaN();
    expect(descriptorAgreement(sparse, 0, a, 0, 3)).toBeCloseTo(1, 6);
  });
});

describe('orientation descriptors in the matcher', () => {
  it('weigh a local similarity by the agreement of the two descriptors, as descriptorAgreement defines it', () => {
    const nA = 9, nB = 11;
    const codesA = randomCodes(nA, 31), codesB = randomCodes(nB, 32);
    // A descriptor mostly off the finger: too few common points, the neutral weight.
    for (let s = 0; s < DESCRIPTOR_SAMPLES - 2; s++) codesB[3 * DESCRIPTOR_SAMPLES + s] = 0;
    const split = (c: Uint8Array, n: number) => Array.from({ length: n }, (_, t) => c.subarray(t * DESCRIPTOR_SAMPLES, (t + 1) * DESCRIPTOR_SAMPLES));
    const pair = { a: descriptorVectors(split(codesA, nA)), b: descriptorVectors(split(codesB, nB)) };
    const p = MCC_DEFAULTS;
    const rand = mulberry32(33);
    let compared = 0;
    for (let i = 0; i < nA; i++) {
      for (let j = 0; j < nB; j++) {
        const v = rand();
        const agreement = descriptorAgreement(codesA, i * DESCRIPTOR_SAMPLES, codesB, j * DESCRIPTOR_SAMPLES, p.descriptorMinSamples);
        const expected = v < p.descriptorFrom || Number.isNaN(agreement) ? p.descriptorUnknown : Math.max(0, agreement);
        if (v >= p.descriptorFrom && !Number.isNaN(agreement)) compared++;
        expect(descriptorWeight(pair, i, j, v, p)).toBeCloseTo(expected, 5);
      }
    }
    expect(compared).toBeGreaterThan(30);
  });
});

describe('orientation descriptors in templates and matching', () => {
  const model = { name: 'biokiosk-fingerprint-extractor/2', sha256: 'ab'.repeat(32) };
  const described = (n: number, seed: number): FingerRecord => {
    const rand = mulberry32(seed);
    const codes = randomCodes(n, seed + 100);
    return {
      width: 256, height: 288, resolution: { x: 500, y: 500 }, quality: 70,
      minutiae: Array.from({ length: n }, (_, i) => ({ x: Math.floor(rand() * 256), y: Math.floor(rand() * 288), angle: (Math.floor(rand() * 256) * Math.PI) / 128, type: 'ending' as const, quality: Math.floor(rand() * 101), descriptor: codes.subarray(i * DESCRIPTOR_SAMPLES, (i + 1) * DESCRIPTOR_SAMPLES) })),
    };
  };

  it('travel in one vendor-defined extended data area and come back; templates without it still decode', () => {
    const r = described(40, 3);
    const bytes = encodeFingerprintTemplate({ model, quality: 70, record: r });
    expect(bytes.length).toBe(41 + model.name.length + 24 + 4 + 2 + 4 + 40 * (6 + DESCRIPTOR_BYTES));
    const iso = decodeIsoRecord(bytes.subarray(41 + model.name.length));
    expect(iso.views[0]!.extendedData.map((a) => a.type)).toEqual([DESCRIPTOR_AREA_TYPE]);
    const back = decodeFingerprintTemplate(bytes).record.minutiae;
    expect(back.map((m) => [...m.descriptor!])).toEqual(r.minutiae.map((m) => [...m.descriptor!]));
    // One minutia without a descriptor: none are written (the matcher then compares minutiae alone).
    const partial = { ...r, minutiae: r.minutiae.map((m, i) => (i === 7 ? { ...m, descriptor: undefined } : m)) };
    expect(decodeFingerprintTemplate(encodeFingerprintTemplate({ model, quality: 70, record: partial })).record.minutiae.every((m) => m.descriptor === undefined)).toBe(true);
  });

  it('keep a template within 1 KB even with the longest model name, by keeping the best minutiae', () => {
    const longName = { name: 'x'.repeat(255), sha256: model.sha256 };
    const r = described(150, 4);
    const bytes = encodeFingerprintTemplate({ model: longName, quality: 70, record: r });
    expect(bytes.length).toBeLessThanOrEqual(MAX_TEMPLATE_BYTES);
    const kept = decodeFingerprintTemplate(bytes).record.minutiae;
    expect(kept).toHaveLength(maxMinutiaeWithDescriptors(255));
    expect(kept.every((m) => m.descriptor?.length === DESCRIPTOR_SAMPLES)).toBe(true);
    const cutoff = r.minutiae.map((m) => m.quality).sort((a, b) => b - a)[kept.length - 1]!;
    expect(Math.min(...kept.map((m) => m.quality))).toBe(cutoff);
    expect(maxMinutiaeWithDescriptors(model.name.length)).toBe(65);
    expect(maxMinutiaeWithDescriptors(255)).toBe(49);
  });

  it('refuse a descriptor area that does not fit the minutiae, or two of them, naming the descriptors', () => {
    const bytes = encodeFingerprintTemplate({ model, quality: 70, record: described(12, 5) });
    const head = 41 + model.name.length;
    const iso = decodeIsoRecord(bytes.subarray(head));
    const rewrap = (areas: typeof iso.views[0]['extendedData']) => {
      const body = encodeIsoRecord({ ...iso, views: [{ ...iso.views[0]!, extendedData: areas }] });
      const out = new Uint8Array(head + body.length);
      out.set(bytes.subarray(0, head));
      new DataView(out.buffer).setUint16(6, body.length, true);
      out.set(body, head);
      return out;
    };
    const area = iso.views[0]!.extendedData[0]!;
    expect(() => decodeFingerprintTemplate(rewrap([{ type: area.type, data: area.data.subarray(0, area.data.length - 1) }]))).toThrow(/orientation descriptors: .* for 12 minutiae/);
    expect(() => decodeFingerprintTemplate(rewrap([area, area]))).toThrow(/2 orientation descriptor areas/);
    // Another vendor's area is skipped, as ISO/IEC 19794-2 allows.
    expect(decodeFingerprintTemplate(rewrap([{ type: 0x0123, data: Uint8Array.of(1, 2, 3) }, area])).record.minutiae[0]!.descriptor).toBeDefined();
  });

  it('lower the score of minutiae that coincide in flow that disagrees; one side without them compares minutiae alone', () => {
    let agreeing = 0, disagreeing = 0;
    for (let f = 0; f < 6; f++) {
      const finger = syntheticFinger(700 + f);
      const base = syntheticImpression(finger, 1);
      const codes = randomCodes(base.minutiae.length, 10 + f).map((c) => c || 1);
      const scrambled = randomCodes(base.minutiae.length, 50 + f).map((c) => c || 1);
      const withCodes = (r: FingerRecord, c: Uint8Array): FingerRecord => ({ ...r, minutiae: r.minutiae.map((m, i) => ({ ...m, descriptor: c.subarray(i * DESCRIPTOR_SAMPLES, (i + 1) * DESCRIPTOR_SAMPLES) })) });
      const a = prepareFingerRecord(withCodes(base, codes));
      const same = prepareFingerRecord(withCodes(base, codes));
      const other = prepareFingerRecord(withCodes(base, scrambled));
      agreeing += matchScore(a, same);
      disagreeing += matchScore(a, other);
      expect(matchScore(a, other)).toBeLessThan(matchScore(a, same));
      // Without descriptors on one side, the score is that of the minutiae alone.
      const plain = prepareFingerRecord(base);
      expect(matchScore(a, plain)).toBeCloseTo(matchScore(plain, plain), 12);
    }
    expect(disagreeing / 6).toBeLessThan(0.8 * (agreeing / 6));
  });

  it('come out of the extractor for every minutia, mostly on the finger', async () => {
    const ex = await FingerprintExtractor.load();
    try {
      const img = renderImpression(synthesizeFinger(4242), 9, { width: 256, height: 288 });
      const r = await ex.extract(img);
      expect(r.minutiae.length).toBeGreaterThan(10);
      let onFinger = 0;
      for (const m of r.minutiae) {
        expect(m.descriptor).toHaveLength(DESCRIPTOR_SAMPLES);
        onFinger += m.descriptor.filter((c) => c > 0).length;
      }
      expect(onFinger / (r.minutiae.length * DESCRIPTOR_SAMPLES)).toBeGreaterThan(0.5);
    } finally {
      await ex.close();
    }
  });
});
