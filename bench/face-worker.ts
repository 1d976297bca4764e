/**
 * One side of the face extraction benchmark, in its own process so its peak RSS is its own:
 *   npx tsx bench/face-worker.ts ours|face-api FRAME.jpg RUNS
 * Prints one JSON line: model load time, per-run times (ms), peak RSS (MB).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [side, framePath, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 50);
const WARMUP = 5;
const frame = await readFile(framePath!);

async function timeRuns(fn: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times;
}

let result: Record<string, unknown>;
if (side === 'ours') {
  const { FacePipeline } = await import('../models/face/pipeline.ts');
  const t0 = performance.now();
  const pipeline = await FacePipeline.load();
  const load = performance.now() - t0;
  const stages: Record<string, number[]> = {};
  const times = await timeRuns(async () => {
    const r = await pipeline.extract(frame);
    for (const [k, v] of Object.entries(r.timings)) (stages[k] ??= []).push(v);
  });
  await pipeline.close();
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  result = { side, load, times, stageMedians: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, med(v.slice(WARMUP))])) };
} else if (side === 'face-api') {
  // face-api on TF.js with the WASM backend: tiny detector + 68 landmarks + descriptor, same nets, same frame.
  const require = createRequire(import.meta.url);
  const tf = require('@tensorflow/tfjs');
  const wasm = require('@tensorflow/tfjs-backend-wasm');
  const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
  const sharp = (await import('sharp')).default;
  const t0 = performance.now();
  await tf.setBackend('wasm');
  await tf.ready();
  const dir = join(require.resolve('@vladmandic/face-api/package.json'), '..', 'model');
  await faceapi.nets.tinyFaceDetector.loadFromDisk(dir);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(dir);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(dir);
  const load = performance.now() - t0;
  const options = new faceapi.TinyFaceDetectorOptions({ inputSize: 416, scoreThreshold: 0.5 });
  const times = await timeRuns(async () => {
    // Decoding is part of the job on both sides (sharp here too, as face-api has no decoder in Node).
    const { data, info } = await sharp(frame).rotate().removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const tensor = tf.tensor3d(new Uint8Array(data), [info.height, info.width, 3], 'int32');
    const r = await faceapi.detectSingleFace(tensor, options).withFaceLandmarks().withFaceDescriptor();
    tensor.dispose();
    if (!r) throw new Error('face-api found no face in the benchmark frame');
  });
  result = { side, load, times, backend: tf.getBackend(), wasmFeatures: { simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'), threads: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT') }, wasmVersion: wasm.version_wasm };
} else {
  throw new Error(`unknown side ${side}`);
}
result['peakRssMb'] = process.resourceUsage().maxRSS / 1024;
process.stdout.write(JSON.stringify(result) + '\n');
