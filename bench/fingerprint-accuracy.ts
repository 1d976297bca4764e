/**
 * Fingerprint accuracy over several synthetic sets: for each seed, `biokiosk synth fingerprint` (100 fingers x 8
 * impressions) into a temporary folder, then the evaluation of `biokiosk eval --modality fingerprint` twice: FVC
 * protocol (first impressions against each other) and all cross-finger pairs. Prints one JSON line with, per seed,
 * the EERs, FNMR at FMR 1e-3 / 1e-4 and the engine's decisions at its default threshold. These synthetic sets are
 * regression checks only: the default threshold is calibrated on real captures (bench/fingerprint-real.ts).
 *   npx tsx bench/fingerprint-accuracy.ts [--seeds 1,2,3,4] [--fingers 100] [--impressions 8]
 * Each seed takes about a minute and a half here (synthesis ~30 s, extraction ~35 s, 319,600 comparisons ~15 s).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { createEngine } from '../models/engines.ts';
import { loadDataset } from '../models/evaluation/dataset.ts';
import { runEval } from '../models/evaluation/run.ts';
import { synthesizeFingerprintDataset } from '../models/fingerprint/synth/dataset.ts';
import type { Extraction, ModalityEngine } from '../models/modality.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const seeds = arg('--seeds', '1,2,3,4').split(',').map(Number);
const fingers = Number(arg('--fingers', '100'));
const impressions = Number(arg('--impressions', '8'));
const inner = await createEngine('fingerprint');
// The two evaluations of a set read the same images: extract each once (keyed by the file's bytes).
const cache = new Map<string, Extraction>();
const engine: ModalityEngine = {
  name: inner.name,
  async extract(image) {
    const key = createHash('sha256').update(image).digest('hex');
    let e = cache.get(key);
    if (!e) cache.set(key, (e = await inner.extract(image)));
    return e;
  },
  compare: (a, b) => inner.compare(a, b),
  close: () => inner.close(),
};
const results = [];
for (const seed of seeds) {
  const dir = await mkdtemp(join(os.tmpdir(), `bk-fpacc-${seed}-`));
  try {
    await synthesizeFingerprintDataset({ out: dir, fingers, impressions, seed });
    const ds = await loadDataset(dir);
    const all = await runEval(engine, ds, { impostors: { kind: 'all' } });
    // The FVC impostors are a subset of all pairs: first impressions (sample "1") of different fingers.
    const fvc = await runEval(engine, ds, { impostors: { kind: 'fvc' } });
    const pct = (v: number | null) => (v === null ? null : +(100 * v).toFixed(3));
    results.push({
      seed,
      images: ds.items.length,
      failures: all.failures.length,
      genuinePairs: all.genuine.pairs,
      impostorPairs: { all: all.impostor.pairs, fvc: fvc.impostor.pairs },
      eerPercent: { fvc: pct(fvc.eer.value), all: pct(all.eer.value) },
      fnmrPercentAt: Object.fromEntries(all.fnmrAt.map((f) => [String(f.targetFmr), pct(f.fnmr)])),
      thresholdAtFmr1e4: all.fnmrAt.find((f) => f.targetFmr === 1e-4)?.threshold ?? null,
      atDefaultThreshold: { ...all.atDefaultThreshold, fnmrPercent: pct(all.atDefaultThreshold.fnmr) },
      extractMsPerImage: +all.timings.extractPerImageMs.toFixed(1),
    });
  } finally {
    cache.clear();
    await rm(dir, { recursive: true, force: true });
  }
}
await engine.close();
process.stdout.write(JSON.stringify({ bench: 'fingerprint-accuracy', fingers, impressions, results }) + '\n');
