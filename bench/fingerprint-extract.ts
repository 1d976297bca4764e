/**
 * Fingerprint extraction speed: median milliseconds per image and per stage at two sensor sizes, 256x288 (the R307 /
 * ZFM module's image) and 640x480 (a large optical platen, most of it background around the finger), over synthetic
 * impressions (models/fingerprint/synth) after a warm-up. Prints one JSON line with one entry per size.
 *   npx tsx bench/fingerprint-extract.ts [--images N] [--rounds R]
 */
import os from 'node:os';
import { FingerprintExtractor } from '../models/fingerprint/extract/index.ts';
import { renderImpression, synthesizeFinger } from '../models/fingerprint/synth/index.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const count = arg('--images', 8);
const rounds = arg('--rounds', 5);
const SIZES = [
  { width: 256, height: 288, goalMs: 35 },
  { width: 640, height: 480, goalMs: 60 },
];
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return +(s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2).toFixed(2);
};
const masters = Array.from({ length: count }, (_, f) => synthesizeFinger(1000 + f));
const extractor = await FingerprintExtractor.load();
const sizes = [];
for (const size of SIZES) {
  const images = masters.map((m, f) => renderImpression(m, 77 + f, { width: size.width, height: size.height }));
  // Warm-up: every stage's code must be optimised by the JIT before it is timed (a few rounds of all images).
  for (let r = 0; r < 3; r++) for (const img of images) await extractor.extract(img);
  const totals: number[] = [];
  const stages: Record<string, number[]> = {};
  const minutiae: number[] = [];
  const quality: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const img of images) {
      const t0 = performance.now();
      const out = await extractor.extract(img);
      totals.push(performance.now() - t0);
      for (const [k, v] of Object.entries(out.timings)) (stages[k] ??= []).push(v);
      if (r === 0) (minutiae.push(out.minutiae.length), quality.push(out.quality.score));
    }
  }
  sizes.push({
    width: size.width,
    height: size.height,
    images: count,
    runs: totals.length,
    medianMs: median(totals),
    p90Ms: +[...totals].sort((a, b) => a - b)[Math.floor(0.9 * (totals.length - 1))]!.toFixed(2),
    goalMs: size.goalMs,
    stagesMedianMs: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, median(v)])),
    minutiaeMedian: median(minutiae),
    qualityMedian: median(quality),
  });
}
await extractor.close();
process.stdout.write(
  JSON.stringify({ bench: 'fingerprint-extract', sizes, cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), loadavg1: os.loadavg()[0] }) + '\n',
);
