/** One unit of dataset work: a finger's master and its impressions, as raw images (pure; no I/O). */
import { renderImpression } from './impression.ts';
import { synthesizeFinger } from './master.ts';
import { mixSeed } from './random.ts';
import type { PatternClass } from './types.ts';

export interface FingerJob {
  index: number;
  datasetSeed: number;
  impressions: number;
  width: number;
  height: number;
}

export interface FingerJobResult {
  index: number;
  cls: PatternClass;
  images: Uint8Array[];
  masterMs: number;
  impressionMs: number;
}

/** Seeds derive from (dataset seed, finger index[, impression]): any worker, any order, same bytes. */
export function fingerSeed(datasetSeed: number, index: number): number {
  return mixSeed(datasetSeed, index, 0xf19e);
}

export function impressionSeed(datasetSeed: number, index: number, impression: number): number {
  return mixSeed(datasetSeed, index, impression, 0x1b9e);
}

export function runFingerJob(job: FingerJob): FingerJobResult {
  const t0 = performance.now();
  const master = synthesizeFinger(fingerSeed(job.datasetSeed, job.index));
  const t1 = performance.now();
  const images: Uint8Array[] = [];
  for (let k = 1; k <= job.impressions; k++) {
    images.push(renderImpression(master, impressionSeed(job.datasetSeed, job.index, k), { width: job.width, height: job.height }).data);
  }
  return { index: job.index, cls: master.pattern.cls, images, masterMs: t1 - t0, impressionMs: performance.now() - t1 };
}
