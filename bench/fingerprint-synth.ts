/**
 * Synthetic fingerprint generation speed: writes 100 fingers x 8 impressions (the evaluation set's size) to a
 * temporary folder on all cores and prints one JSON line with the timings. `--fingers N --impressions K` change the
 * size; `--keep` leaves the folder (its path is in the JSON) instead of deleting it.
 *   npx tsx bench/fingerprint-synth.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { synthesizeFingerprintDataset } from '../models/fingerprint/synth/dataset.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const fingers = arg('--fingers', 100);
const impressions = arg('--impressions', 8);
const keep = process.argv.includes('--keep');
const out = await mkdtemp(join(os.tmpdir(), 'bk-fpsynth-bench-'));
try {
  const r = await synthesizeFingerprintDataset({ out, fingers, impressions, seed: 1 });
  const images = r.files.length;
  process.stdout.write(
    JSON.stringify({
      bench: 'fingerprint-synth',
      fingers,
      impressions,
      images,
      width: 256,
      height: 288,
      workers: r.workers,
      wallMs: Math.round(r.ms.total),
      masterMs: +(r.ms.masters / fingers).toFixed(1),
      impressionMs: +(r.ms.impressions / images).toFixed(1),
      imagesPerSecond: +((images * 1000) / r.ms.total).toFixed(1),
      classes: r.classes,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.availableParallelism(),
      ...(keep ? { out } : {}),
    }) + '\n',
  );
} finally {
  if (!keep) await rm(out, { recursive: true, force: true });
}
