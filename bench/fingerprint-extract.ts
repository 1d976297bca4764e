/**
 * Fingerprint extraction speed: median milliseconds per 256x288 image (the R307 / ZFM sensor image) and per stage,
 * over synthetic impressions (models/fingerprint/synth) after a warm-up. Prints one JSON line.
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
const images = [];
for (let f = 0; f < count; f++) {
  const master = synthesizeFinger(1000 + f);
  images.push(renderImpression(master, 77 + f));
}
const extractor = await FingerprintExtractor.load();
for (const img of images.slice(0, 3)) await extractor.extract(img); // warm-up (JIT, ONNX allocations)
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
await extractor.close();
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return +(s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2).toFixed(2);
};
process.stdout.write(
  JSON.stringify({
    bench: 'fingerprint-extract',
    width: 256,
    height: 288,
    images: count,
    runs: totals.length,
    medianMs: median(totals),
    p90Ms: +[...totals].sort((a, b) => a - b)[Math.floor(0.9 * (totals.length - 1))]!.toFixed(2),
    goalMs: 60,
    stagesMedianMs: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, median(v)])),
    minutiaeMedian: median(minutiae),
    qualityMedian: median(quality),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
  }) + '\n',
);
