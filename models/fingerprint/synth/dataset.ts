/**
 * `biokiosk synth fingerprint`: a dataset of N synthetic fingers x K impressions, PNG files named
 * `{finger}_{impression}.png` (f0001_1.png ...) for `biokiosk eval`, plus manifest.json and README.txt stating
 * the seed and parameters. Fingers are rendered on worker threads (one per core); every byte depends only on
 * the seed and the parameters, not on the number of workers or their timing.
 */
import { availableParallelism } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { BiokioskError, UsageError } from '../../../protocol/errors.ts';
import { workerEntry } from '../../../protocol/runtime.ts';
import { runFingerJob, type FingerJob, type FingerJobResult } from './finger-job.ts';
import { SENSOR_HEIGHT, SENSOR_WIDTH } from './impression.ts';
import type { PatternClass } from './types.ts';

export const GENERATOR = 'biokiosk-fingerprint-synth/1';

export interface FingerprintDatasetOptions {
  out: string;
  fingers: number;
  impressions: number;
  seed: number;
  width?: number;
  height?: number;
  /** Worker threads (default: one per core, at most one per finger); 0 renders on the calling thread. */
  workers?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface FingerprintDatasetResult {
  fingers: number;
  impressions: number;
  files: string[];
  classes: Record<PatternClass, number>;
  workers: number;
  /** Wall time, and CPU time summed over workers for masters and impressions. */
  ms: { total: number; masters: number; impressions: number };
}

const BOOTSTRAP = workerEntry(import.meta.url, 'worker');

export function fingerId(index: number, fingers: number): string {
  return `f${String(index + 1).padStart(Math.max(4, String(fingers).length), '0')}`;
}

type Reply = { ready: true } | { ok: true; result: FingerJobResult } | { ok: false; index: number; error: string };

export async function synthesizeFingerprintDataset(o: FingerprintDatasetOptions): Promise<FingerprintDatasetResult> {
  const width = o.width ?? SENSOR_WIDTH;
  const height = o.height ?? SENSOR_HEIGHT;
  if (!Number.isInteger(o.fingers) || o.fingers < 1) throw new UsageError(`fingers must be a positive integer, got ${o.fingers}`);
  if (!Number.isInteger(o.impressions) || o.impressions < 1) throw new UsageError(`impressions must be a positive integer, got ${o.impressions}`);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 64 || height < 64 || width > 2048 || height > 2048) {
    throw new UsageError(`image size must be 64-2048 pixels per side, got ${width}x${height}`);
  }
  const t0 = performance.now();
  await mkdir(o.out, { recursive: true });
  const jobs: FingerJob[] = [];
  for (let i = 0; i < o.fingers; i++) jobs.push({ index: i, datasetSeed: o.seed >>> 0, impressions: o.impressions, width, height });
  const classes: Record<PatternClass, number> = { arch: 0, tented_arch: 0, left_loop: 0, right_loop: 0, whorl: 0 };
  const files: string[] = [];
  const ms = { total: 0, masters: 0, impressions: 0 };
  let done = 0;

  const save = async (r: FingerJobResult): Promise<void> => {
    const id = fingerId(r.index, o.fingers);
    classes[r.cls]++;
    ms.masters += r.masterMs;
    ms.impressions += r.impressionMs;
    await Promise.all(
      r.images.map(async (data, k) => {
        const path = join(o.out, `${id}_${k + 1}.png`);
        // b-w keeps one channel: without it sharp writes the gray image as RGB.
        await sharp(data, { raw: { width, height, channels: 1 } }).toColourspace('b-w').png({ compressionLevel: 6 }).toFile(path);
        files.push(path);
      }),
    );
    o.onProgress?.(++done, o.fingers);
  };

  const count = Math.min(o.workers ?? availableParallelism(), o.fingers);
  if (count <= 0) {
    for (const job of jobs) await save(runFingerJob(job));
  } else {
    await runPool(jobs, count, save);
  }
  files.sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  ms.total = performance.now() - t0;

  const manifest = { generator: GENERATOR, seed: o.seed >>> 0, fingers: o.fingers, impressions: o.impressions, width, height, dpi: 500, naming: '{finger}_{impression}.png', classes };
  await writeFile(join(o.out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  await writeFile(
    join(o.out, 'README.txt'),
    `Synthetic fingerprints (${GENERATOR}, SFinGe-style): ${o.fingers} fingers x ${o.impressions} impressions, ${width}x${height} at 500 dpi, seed ${o.seed >>> 0}. ` +
      `Regenerate: biokiosk synth fingerprint --fingers ${o.fingers} --impressions ${o.impressions} --seed ${o.seed >>> 0} --width ${width} --height ${height} --out DIR\n`,
  );
  return { fingers: o.fingers, impressions: o.impressions, files, classes, workers: Math.max(0, count), ms };
}

/** Hands one finger at a time to each worker; the first failure stops the pool and is thrown. */
async function runPool(jobs: FingerJob[], size: number, save: (r: FingerJobResult) => Promise<void>): Promise<void> {
  const queue = [...jobs];
  const workers: Worker[] = [];
  const pending: Promise<void>[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let active = 0;
      let failed = false;
      const fail = (e: Error): void => {
        if (failed) return;
        failed = true;
        reject(e);
      };
      const feed = (w: Worker): void => {
        const job = queue.shift();
        if (!job) {
          active--;
          if (active === 0) resolve();
          return;
        }
        w.postMessage(job);
      };
      for (let i = 0; i < size; i++) {
        const w = new Worker(BOOTSTRAP);
        workers.push(w);
        active++;
        w.on('message', (m: Reply) => {
          if ('ready' in m) return feed(w);
          if (!m.ok) return fail(new BiokioskError('SynthWorker', `rendering finger ${m.index + 1} failed: ${m.error}`, { kind: 'internal' }));
          pending.push(save(m.result).catch((e: unknown) => fail(e instanceof Error ? e : new Error(String(e)))));
          feed(w);
        });
        w.on('error', (e) => fail(new BiokioskError('SynthWorker', `a synth worker failed: ${e.message}`, { kind: 'internal', cause: e })));
        w.on('exit', (code) => {
          if (code !== 0) fail(new BiokioskError('SynthWorker', `a synth worker exited with code ${code}`, { kind: 'internal' }));
        });
      }
    });
    await Promise.all(pending);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
