import { describe, expect, it } from 'vitest';
import { errorRates } from '../models/evaluation/metrics.ts';
import { decodeFingerRecordIso, encodeFingerRecordIso } from '../models/fingerprint/iso19794-2.ts';
import type { FingerRecord } from '../models/fingerprint/minutiae.ts';
import { compare, compareFingerprints, compareFingerprintTemplateBytes, FINGERPRINT_DEFAULT_THRESHOLD, matchScore, mccScore, prepareFingerprint, prepareFingerRecord, scoreParts, type PreparedFingerprint } from '../models/fingerprint/matcher/mcc.ts';
import { MCC_DEFAULTS } from '../models/fingerprint/matcher/params.ts';
import { rigidCopy, syntheticFinger, syntheticImpression } from '../models/fingerprint/matcher/synthetic.ts';
import { decodeFingerprintTemplate, encodeFingerprintTemplate } from '../models/fingerprint/template.ts';
import { BadTemplateError } from '../protocol/errors.ts';

const FINGERS = 200;
const IMPRESSIONS = 3;
const model = { name: 'test-extractor', sha256: 'cd'.repeat(32) };

describe('MCC matcher', () => {
  it('is invariant to rotation (up to its 60 degree limit) and translation: an exact rigid copy scores like the original', () => {
    for (let f = 0; f < 5; f++) {
      const r = syntheticImpression(syntheticFinger(300 + f), 1 + f);
      const a = prepareFingerRecord(r);
      const self = scoreParts(a, a);
      expect(self.lssr).toBeGreaterThan(0.9);
      expect(self.score).toBeGreaterThan(0.95);
      // Pairing pairs every minutia with its own copy.
      expect(self.pairing.pairs).toBe(r.minutiae.length);
      for (const [rot, tx, ty] of [[0, 25, -40], [0.35, 0, 0], [-0.52, 30, 12], [0.9, -20, 35]] as const) {
        const s = scoreParts(a, prepareFingerRecord(rigidCopy(r, rot, tx, ty)));
        expect(Math.abs(s.lssr - self.lssr)).toBeLessThan(0.01);
        expect(Math.abs(s.score - self.score)).toBeLessThan(0.01);
      }
      // Beyond the rotation limit, nothing matches.
      expect(matchScore(a, prepareFingerRecord(rigidCopy(r, 1.3, 0, 0)))).toBeLessThan(FINGERPRINT_DEFAULT_THRESHOLD);
      // Through the ISO record (coordinates rounded to pixels, angles to 1.40625 degrees) it barely moves.
      const viaIso = decodeFingerRecordIso(encodeFingerRecordIso(rigidCopy(r, 0.4, 10, 10)));
      expect(mccScore(a, prepareFingerRecord(viaIso))).toBeGreaterThan(self.lssr - 0.1);
      expect(matchScore(a, prepareFingerRecord(viaIso))).toBeGreaterThan(self.score - 0.05);
    }
  });

  it.each([
    { name: 'default parameters', params: MCC_DEFAULTS },
    { name: 'the paper\'s validity offset (omega 50: masked comparisons)', params: { ...MCC_DEFAULTS, omega: 50 } },
  ])(`separates genuine from impostor synthetic minutiae sets (${FINGERS} fingers x ${IMPRESSIONS}), $name: EER < 1%`, ({ params }) => {
    const t0 = performance.now();
    const prepared: PreparedFingerprint[][] = [];
    for (let f = 0; f < FINGERS; f++) {
      const finger = syntheticFinger(1000 + f);
      prepared.push(Array.from({ length: IMPRESSIONS }, (_, k) => prepareFingerRecord(syntheticImpression(finger, 50000 + f * 10 + k), params)));
    }
    const t1 = performance.now();
    const genuine: number[] = [];
    const impostor: number[] = [];
    for (const imps of prepared) for (let i = 0; i < IMPRESSIONS; i++) for (let j = i + 1; j < IMPRESSIONS; j++) genuine.push(matchScore(imps[i]!, imps[j]!));
    for (let f = 0; f < FINGERS; f++) for (let g = f + 1; g < FINGERS; g++) impostor.push(matchScore(prepared[f]![0]!, prepared[g]![0]!));
    const t2 = performance.now();
    const rates = errorRates(Float64Array.from(genuine), Float64Array.from(impostor));
    const q = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.floor(p * (a.length - 1))]!;
    const comparisons = genuine.length + impostor.length;
    console.log(JSON.stringify({
      genuine: genuine.length, impostor: impostor.length, eer: rates.eer,
      genuineMedian: q(genuine, 0.5), impostor999: q(impostor, 0.999), impostorMax: Math.max(...impostor),
      fmrAtDefault: impostor.filter((s) => s >= FINGERPRINT_DEFAULT_THRESHOLD).length / impostor.length,
      fnmrAtDefault: genuine.filter((s) => s < FINGERPRINT_DEFAULT_THRESHOLD).length / genuine.length,
      prepareMsPerTemplate: (t1 - t0) / (FINGERS * IMPRESSIONS), comparisonsPerSecond: Math.round(comparisons / ((t2 - t1) / 1000)),
    }));
    expect(rates.eer.value).toBeLessThan(0.01);
    // The typical genuine pair is a match at the default threshold, and the impostors are not (scores f / (1 + f)
    // compress the top, so compare with the threshold rather than by ratio).
    expect(q(genuine, 0.5)).toBeGreaterThan(FINGERPRINT_DEFAULT_THRESHOLD);
    expect(q(impostor, 0.999)).toBeLessThan(FINGERPRINT_DEFAULT_THRESHOLD);
    expect(impostor.every((s) => s >= 0 && s <= 1) && genuine.every((s) => s >= 0 && s <= 1)).toBe(true);
  });

  it('compare() follows the face matcher shape and honours the threshold and trusted extractors', () => {
    const finger = syntheticFinger(77);
    const rec = (seed: number) => syntheticImpression(finger, seed);
    const ta = decodeFingerprintTemplate(encodeFingerprintTemplate({ model, quality: 80, record: rec(1) }));
    const tb = decodeFingerprintTemplate(encodeFingerprintTemplate({ model, quality: 80, record: rec(2) }));
    const r = compare(ta, tb);
    expect(r).toEqual({ score: r.score, native: { name: 'mcc-lssr', value: scoreParts(prepareFingerprint(ta), prepareFingerprint(tb)).lssr }, threshold: FINGERPRINT_DEFAULT_THRESHOLD, decision: r.score >= FINGERPRINT_DEFAULT_THRESHOLD ? 'match' : 'no_match' });
    expect(r.score).toBeGreaterThan(0.02);
    expect(compare(ta, tb, { threshold: r.score + 1e-6 }).decision).toBe('no_match');
    expect(compare(ta, tb, { threshold: r.score }).decision).toBe('match');
    // Prepared and decoded templates give the same answer; bytes too.
    const pa = prepareFingerprint(ta), pb = prepareFingerprint(tb);
    expect(compareFingerprints(pa, pb).score).toBe(r.score);
    expect(compareFingerprintTemplateBytes(encodeFingerprintTemplate({ model, quality: 80, record: rec(1) }), encodeFingerprintTemplate({ model, quality: 80, record: rec(2) })).score).toBe(r.score);
    expect(compare(pa, pb, { trustedModelSha256: [model.sha256] }).score).toBe(r.score);
    expect(() => compare(pa, pb, { trustedModelSha256: ['00'.repeat(32)] })).toThrow(BadTemplateError);
    expect(() => compareFingerprints(pa, prepareFingerRecord(rec(3), { ...MCC_DEFAULTS }))).toThrow(BadTemplateError);
  });

  it('scores degenerate templates 0 without throwing', () => {
    const empty: FingerRecord = { width: 256, height: 288, resolution: { x: 500, y: 500 }, minutiae: [], quality: 0 };
    const one: FingerRecord = { ...empty, minutiae: [{ x: 10, y: 10, angle: 1, type: 'ending', quality: 50 }] };
    const full = prepareFingerRecord(syntheticImpression(syntheticFinger(5), 5));
    for (const r of [empty, one]) {
      const p = prepareFingerRecord(r);
      expect(p.count).toBe(0);
      expect(mccScore(p, full)).toBe(0);
      expect(mccScore(full, p)).toBe(0);
      expect(mccScore(p, p)).toBe(0);
      expect(matchScore(p, full)).toBe(0);
      expect(matchScore(p, p)).toBe(0);
    }
  });

  it('rescales templates of other resolutions to 500 dpi', () => {
    const r = syntheticImpression(syntheticFinger(11), 3);
    const at1000: FingerRecord = { ...r, width: r.width * 2, height: r.height * 2, resolution: { x: 1000, y: 1000 }, minutiae: r.minutiae.map((m) => ({ ...m, x: m.x * 2, y: m.y * 2 })) };
    const a = prepareFingerRecord(r);
    expect(Math.abs(mccScore(a, prepareFingerRecord(at1000)) - mccScore(a, a))).toBeLessThan(0.01);
    expect(Math.abs(matchScore(a, prepareFingerRecord(at1000)) - matchScore(a, a))).toBeLessThan(0.01);
  });

  it('prints its speed on prepared ~40-minutia templates (informational)', () => {
    const preps = Array.from({ length: 40 }, (_, f) => prepareFingerRecord(syntheticImpression(syntheticFinger(2000 + f, 50), 9 + f)));
    const mean = preps.reduce((s, p) => s + p.minutiae, 0) / preps.length;
    let n = 0;
    const t0 = performance.now();
    for (let rep = 0; rep < 3; rep++) for (const a of preps) for (const b of preps) { matchScore(a, b); n++; }
    const s = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ minutiaePerTemplate: mean, comparisons: n, comparisonsPerSecond: Math.round(n / s) }));
  });
});
