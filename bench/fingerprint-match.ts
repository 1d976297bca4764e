/**
 * Fingerprint matcher speed on one core: prepared templates of ~40 minutiae (synthetic minutiae sets, no images),
 * a genuine + impostor mix, several timed rounds after a warm-up; prints one JSON line with comparisons/s (median and
 * best round), the preparation cost (the first preparations, JIT compilation included, and warm), and the template
 * size in bytes for 40 minutiae and for the maximum.
 *   npx tsx bench/fingerprint-match.ts [--fingers 50] [--rounds 7]
 */
import os from 'node:os';
import { FINGERPRINT_DEFAULT_THRESHOLD, matchScore, prepareFingerprintBytes, type PreparedFingerprint } from '../models/fingerprint/matcher/mcc.ts';
import { MCC_DEFAULTS } from '../models/fingerprint/matcher/params.ts';
import { syntheticFinger, syntheticImpression } from '../models/fingerprint/matcher/synthetic.ts';
import { encodeFingerprintTemplate, MAX_TEMPLATE_MINUTIAE } from '../models/fingerprint/template.ts';
import type { FingerRecord } from '../models/fingerprint/minutiae.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const fingers = arg('--fingers', 50);
const rounds = arg('--rounds', 7);
const model = { name: 'biokiosk-minutiae-v1', sha256: '0'.repeat(64) };

// Two impressions per finger of a 50-minutia finger: ~40 minutiae survive (missed, spurious, crop).
const bytes: Uint8Array[] = [];
for (let f = 0; f < fingers; f++) {
  const finger = syntheticFinger(90_000 + f, 50);
  for (let k = 0; k < 2; k++) bytes.push(encodeFingerprintTemplate({ model, quality: 70, record: syntheticImpression(finger, 91_000 + 2 * f + k) }));
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
const pairs: [PreparedFingerprint, PreparedFingerprint][] = [];
for (let i = 0; i < prepared.length; i++) for (let j = i + 1; j < prepared.length; j++) pairs.push([prepared[i]!, prepared[j]!]);
const genuinePairs = fingers;

let sink = 0;
const runRound = () => {
  const t = performance.now();
  for (const [a, b] of pairs) sink += matchScore(a, b);
  return pairs.length / ((performance.now() - t) / 1000);
};
runRound(); // warm-up (JIT)
const perSecond = Array.from({ length: rounds }, runRound).sort((a, b) => a - b);

const sized = (n: number): number => {
  const rec: FingerRecord = {
    width: 256, height: 288, resolution: { x: 500, y: 500 }, quality: 70,
    minutiae: Array.from({ length: n }, (_, i) => ({ x: i % 256, y: (i * 7) % 288, angle: 0, type: 'ending' as const, quality: 50 })),
  };
  return encodeFingerprintTemplate({ model, quality: 70, record: rec }).length;
};

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
    prepareMsPerTemplate: +prepareMs.toFixed(3),
    prepareWarmMsPerTemplate: +prepareWarmMs.toFixed(3),
    templateBytes: { minutiae40: sized(40), [`minutiae${MAX_TEMPLATE_MINUTIAE}`]: sized(MAX_TEMPLATE_MINUTIAE), modelNameBytes: model.name.length },
    checksum: +sink.toFixed(3),
  }) + '\n',
);
