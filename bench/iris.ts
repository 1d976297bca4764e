/**
 * Iris benchmarks, one JSON line: extraction of 640x480 synthetic captures (median of runs after warm-up, stage
 * medians), matching on one core with the default rotation search (prepared codes, genuine + impostor mix), template
 * size, and the HID path: capture start to a 640x480 image in memory through the virtual camera at 8,000 reports/s,
 * against that report rate's limit.
 *   npx tsx bench/iris.ts [--runs 40]
 */
import os from 'node:os';
import sharp from 'sharp';
import { IrisCamera } from '../drivers/hid/iris-camera.ts';
import { CHUNK_BYTES } from '../drivers/hid/iris-protocol.ts';
import { VirtualHidBinding } from '../drivers/virtual/hid-binding.ts';
import { VirtualIrisCamera } from '../drivers/virtual/hid-iris-camera.ts';
import { IrisEngine } from '../models/iris/engine.ts';
import { IRIS_MATCH, irisHamming, prepareIrisTemplate } from '../models/iris/matcher.ts';
import { syntheticIris } from '../models/iris/synth/generator.ts';

const arg = (name: string, fallback: number) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback);
const runs = arg('--runs', 40);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const size = { width: 640, height: 480 };

const engine = await IrisEngine.create();
const images = await Promise.all(Array.from({ length: 8 }, (_, i) => sharp(syntheticIris(77, i, 0, size).data, { raw: { ...size, channels: 1 } }).png().toBuffer()));
for (let i = 0; i < 5; i++) await engine.extract(images[i % images.length]!);
const times: number[] = [];
const stages: Record<string, number[]> = {};
let failures = 0;
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  try {
    const x = await engine.extract(images[i % images.length]!);
    times.push(performance.now() - t);
    for (const [k, v] of Object.entries(x.timings)) (stages[k] ??= []).push(v);
  } catch {
    failures++;
  }
}

// Matching: 60 eyes x 2 captures at 320x280, every pair.
const templates: Uint8Array[] = [];
for (let e = 0; e < 60; e++) for (let k = 0; k < 2; k++) templates.push((await engine.extract(await sharp(syntheticIris(78, e, k).data, { raw: { width: 320, height: 280, channels: 1 } }).png().toBuffer())).template);
await engine.close();
const prepared = templates.map((t) => prepareIrisTemplate(t));
let sink = 0;
const round = () => {
  const t = performance.now();
  let n = 0;
  for (let i = 0; i < prepared.length; i++) for (let j = i + 1; j < prepared.length; j++, n++) sink += irisHamming(prepared[i]!, prepared[j]!).hd;
  return n / ((performance.now() - t) / 1000);
};
round();
const perSecond = Array.from({ length: 7 }, round);

// The HID path.
const frame = syntheticIris(79, 0, 0, size);
const binding = new VirtualHidBinding();
const rate = 8000;
binding.attach(new VirtualIrisCamera({ images: [frame], reportRate: rate }));
const cam = await IrisCamera.open(binding);
await cam.capture();
const hid: number[] = [];
for (let i = 0; i < 15; i++) hid.push((await cam.capture()).ms);
await cam.close();
const reports = Math.ceil((size.width * size.height) / CHUNK_BYTES) + 2;

process.stdout.write(
  JSON.stringify({
    bench: 'iris',
    cpu: os.cpus()[0]?.model ?? 'unknown',
    loadavg1: os.loadavg()[0],
    extract: { runs, failures, medianMs: +median(times).toFixed(1), p90Ms: +[...times].sort((a, b) => a - b)[Math.floor(times.length * 0.9)]!.toFixed(1), stagesMedianMs: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, +median(v).toFixed(2)])) },
    match: { maxShift: IRIS_MATCH.maxShift, comparisonsPerSecond: { median: Math.round(median(perSecond)), best: Math.round(Math.max(...perSecond)) } },
    templateBytes: { median: median(templates.map((t) => t.length)), max: Math.max(...templates.map((t) => t.length)) },
    hid: { reportRate: rate, reports, limitMs: +((reports / rate) * 1000).toFixed(1), medianMs: +median(hid).toFixed(1) },
    checksum: +sink.toFixed(3),
  }) + '\n',
);
