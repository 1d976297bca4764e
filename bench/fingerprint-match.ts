/**
 * Fingerprint matcher speed on one core: prepared templates of ~40 minutiae (synthetic minutiae sets, no images)
 * with orientation descriptors as the extractor writes them (codes drawn at random, every point on the finger: the
 * most work), a genuine + impostor mix, several timed rounds after a warm-up; prints one JSON line with comparisons/s
 * (median and best round; and the same templates without descriptors, as older extractors made them), the
 * preparation cost (the first preparations, JIT compilation included, and warm), and the template size in bytes for
 * 40 minutiae and for the maximum, with and without descriptors.
 *   npx tsx bench/fingerprint-match.ts [--fingers 50] [--rounds 7]
 */
import os from 'node:os';
import { FINGERPRINT_DEFAULT_THRESHOLD, matchScore, prepareFingerprintBytes, type PreparedFingerprint } from '../models/fingerprint/matcher/mcc.ts';
import { MCC_DEFAULTS } from '../models/fingerprint/matcher/params.ts';
import { syntheticFinger, syntheticImpression } from '../models/fingerprint/matcher/synthetic.ts';
import { encodeFingerprintTemplate, MAX_TEMPLATE_MINUTIAE, maxMinutiaeWithDescriptors } from '../models/fingerprint/template.ts';
import { mulberry32 } from '../models/common/prng.ts';
import { DESCRIPTOR, DESCRIPTOR_SAMPLES } from '../models/fingerprint/descriptor.ts';
import type { FingerRecord } from '../models/fingerprint/minutiae.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const fingers = arg('--fingers', 50);
const rounds = arg('--rounds', 7);
const model = { name: 'biokiosk-fingerprint-extractor/2', sha256: '0'.repeat(64) };
const rand = mulberry32(7);
const describe = (r: FingerRecord): FingerRecord => ({
  ...r,
  minutiae: r.minutiae.map((m) => ({ ...m, descriptor: Uint8Array.from({ length: DESCRIPTOR_SAMPLES }, () => 1 + Math.floor(rand() * DESCRIPTOR.levels)) })),
});

// Two impressions per finger of a 50-minutia finger: ~40 minutiae survive (missed, spurious, crop).
const bytes: Uint8Array[] = [];
const plainBytes: Uint8Array[] = [];
for (let f = 0; f < fingers; f++) {
  const finger = syntheticFinger(90_000 + f, 50);
  for (let k = 0; k < 2; k++) {
    const record = syntheticImpression(finger, 91_000 + 2 * f + k);
    bytes.push(encodeFingerprintTemplate({ model, quality: 70, record: describe(record) }));
    plainBytes.push(encodeFingerprintTemplate({ model, quality: 70, record }));
  }
}
const t0 = performance.now();
const prepared: PreparedFingerprint[] = bytes.map((b) => prepareFingerprintBytes(b));
const prepareMs = (performance.now() - t0) / prepared.length;
// The same again once the JIT has compiled the preparation (a verifier prepares a probe per decision, long after
// start-up): the first figure includes compilation, this one is the steady cost.
for (let r = 0; r < 3; r++) for (const b of bytes) prepareFingerprintBytes(b);
const t1 = performance.now();
for (const b of bytes) prepareFingerprintBytes(b);
const prepareWarmMs = (performance.now() - t1) / bytes.length;

// Every pair once: per finger one genuine pair, the rest impostors.
const allPairs = (set: PreparedFingerprint[]) => {
  const out: [PreparedFingerprint, PreparedFingerprint][] = [];
  for (let i = 0; i < set.length; i++) for (let j = i + 1; j < set.length; j++) out.push([set[i]!, set[j]!]);
  return out;
};
const pairs = allPairs(prepared);
const plainPairs = allPairs(plainBytes.map((b) => prepareFingerprintBytes(b)));
const genuinePairs = fingers;

let sink = 0;
const runRound = (list: [PreparedFingerprint, PreparedFingerprint][]) => {
  const t = performance.now();
  for (const [a, b] of list) sink += matchScore(a, b);
  return list.length / ((performance.now() - t) / 1000);
};
runRound(pairs); // warm-up (JIT)
runRound(plainPairs);
// Rounds alternate between the two kinds, so both see the same machine.
const perSecond: number[] = [], plainPerSecond: number[] = [];
for (let r = 0; r < rounds; r++) (perSecond.push(runRound(pairs)), plainPerSecond.push(runRound(plainPairs)));
perSecond.sort((a, b) => a - b);
plainPerSecond.sort((a, b) => a - b);

const sized = (n: number, withDescriptors: boolean): number => {
  const rec: FingerRecord = {
    width: 256, height: 288, resolution: { x: 500, y: 500 }, quality: 70,
    minutiae: Array.from({ length: n }, (_, i) => ({ x: i % 256, y: (i * 7) % 288, angle: 0, type: 'ending' as const, quality: 50 })),
  };
  return encodeFingerprintTemplate({ model, quality: 70, record: withDescriptors ? describe(rec) : rec }).length;
};
const cap = maxMinutiaeWithDescriptors(new TextEncoder().encode(model.name).length);

process.stdout.write(
  JSON.stringify({
    bench: 'fingerprint-match',
    cpu: os.cpus()[0]?.model ?? 'unknown',
    loadavg1: os.loadavg()[0],
    params: { ns: MCC_DEFAULTS.ns, nd: MCC_DEFAULTS.nd, radius: MCC_DEFAULTS.radius, maxRotationDeg: (MCC_DEFAULTS.maxRotation * 180) / Math.PI },
    threshold: FINGERPRINT_DEFAULT_THRESHOLD,
    templates: prepared.length,
    meanMinutiae: prepared.reduce((s, p) => s + p.minutiae, 0) / prepared.length,
    comparisonsPerRound: pairs.length,
    genuineShare: genuinePairs / pairs.length,
    comparisonsPerSecond: { median: Math.round(perSecond[Math.floor(rounds / 2)]!), best: Math.round(perSecond[rounds - 1]!) },
    withoutDescriptorsPerSecond: { median: Math.round(plainPerSecond[Math.floor(rounds / 2)]!), best: Math.round(plainPerSecond[rounds - 1]!) },
    prepareMsPerTemplate: +prepareMs.toFixed(3),
    prepareWarmMsPerTemplate: +prepareWarmMs.toFixed(3),
    templateBytes: { minutiae40: sized(40, true), cap, atCap: sized(cap, true), modelNameBytes: model.name.length },
    templateBytesWithoutDescriptors: { minutiae40: sized(40, false), cap: MAX_TEMPLATE_MINUTIAE, atCap: sized(MAX_TEMPLATE_MINUTIAE, false) },
    checksum: +sink.toFixed(3),
  }) + '\n',
);
