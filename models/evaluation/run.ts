/**
 * `biokiosk eval`, for any modality: extract every image (failures counted and listed, never fatal), compare the
 * genuine and impostor pairs, and report EER and FNMR at fixed FMRs with the pair counts.
 */
import { readFile } from 'node:fs/promises';
import { BiokioskError, isBiokioskError } from '../../protocol/errors.ts';
import type { ModalityEngine } from '../modality.ts';
import type { Dataset } from './dataset.ts';
import { errorRates, summary, type ErrorRates } from './metrics.ts';
import { countImpostorPairs, genuinePairs, impostorPairs, type ImpostorMode, type Pairs } from './pairs.ts';

export interface EvalReport {
  modality: string;
  dataset: { name: string; images: number; identities: number; skipped: Dataset['skipped'] };
  failures: Array<{ path: string; code: string; message: string }>;
  genuine: { pairs: number; excluded: number; scores: ReturnType<typeof summary> };
  impostor: { pairs: number; excluded: number; mode: string; seed?: number; ofAll: number; scores: ReturnType<typeof summary> };
  eer: ErrorRates['eer'];
  fnmrAt: ErrorRates['fnmrAt'];
  /** The engine's own decisions at its default threshold (what a verifier with default settings would do). */
  atDefaultThreshold: { threshold: number; fmr: number; falseMatches: number; fnmr: number; falseNonMatches: number };
  timings: { extractMs: number; compareMs: number; extractPerImageMs: number };
  rates: ErrorRates;
}

export interface EvalOptions {
  impostors: ImpostorMode;
  onProgress?: (stage: 'extract' | 'compare', done: number, total: number) => void;
}

export async function runEval(engine: ModalityEngine, ds: Dataset, o: EvalOptions): Promise<EvalReport> {
  const ids = ds.items.map((x) => x.identity);
  // Refuse before the (long) extraction when the dataset cannot give genuine pairs at all.
  if (new Set(ids).size === ids.length) throw new BiokioskError('NoPairs', `dataset ${ds.name} has one image per identity: no genuine pairs`);
  const templates: Array<Uint8Array | null> = [];
  const failures: EvalReport['failures'] = [];
  const t0 = performance.now();
  for (const [i, item] of ds.items.entries()) {
    try {
      templates.push((await engine.extract(await readFile(item.path))).template);
    } catch (e) {
      // Every failure is listed, never fatal: typed errors by code, file-system errors by errno name, anything
      // else (an engine bug on one image) by its class name, so it is visible without stopping the run.
      const err: Error & { code?: unknown } = e instanceof Error ? e : new Error(String(e));
      const code = isBiokioskError(err) || typeof err.code === 'string' ? String(err.code) : err.name || 'Error';
      failures.push({ path: item.path, code, message: err.message });
      templates.push(null);
    }
    o.onProgress?.('extract', i + 1, ds.items.length);
  }
  const t1 = performance.now();
  const gen = genuinePairs(ids);
  const imp = impostorPairs(ids, o.impostors);
  const total = gen.a.length + imp.a.length;
  let done = 0;
  let threshold = NaN;
  const score = (p: Pairs) => {
    const out: number[] = [];
    let excluded = 0;
    let matches = 0;
    for (let k = 0; k < p.a.length; k++) {
      const a = templates[p.a[k]!];
      const b = templates[p.b[k]!];
      if (!a || !b) excluded++;
      else {
        const r = engine.compare(a, b);
        out.push(r.score);
        threshold = r.threshold;
        if (r.decision === 'match') matches++;
      }
      if (++done % 5000 === 0) o.onProgress?.('compare', done, total);
    }
    return { scores: Float64Array.from(out), excluded, matches };
  };
  const g = score(gen);
  const im = score(imp);
  o.onProgress?.('compare', total, total);
  const t2 = performance.now();
  // The data's fault, not ours: exit code 2 with the count of failed images.
  const why = `${failures.length} of ${ds.items.length} images failed to extract${failures[0] ? `, e.g. ${failures[0].path}: ${failures[0].message}` : ''}`;
  if (g.scores.length === 0) throw new BiokioskError('NoPairs', `no genuine pair could be scored (${why})`, { details: { failures: failures.length } });
  if (im.scores.length === 0) throw new BiokioskError('NoPairs', `no impostor pair could be scored (${why})`, { details: { failures: failures.length } });
  const rates = errorRates(g.scores, im.scores);
  return {
    modality: engine.name,
    dataset: { name: ds.name, images: ds.items.length, identities: ds.identities, skipped: ds.skipped },
    failures,
    genuine: { pairs: g.scores.length, excluded: g.excluded, scores: summary(g.scores) },
    impostor: {
      pairs: im.scores.length,
      excluded: im.excluded,
      mode: o.impostors.kind,
      ...(o.impostors.kind === 'sample' ? { seed: o.impostors.seed } : {}),
      ofAll: countImpostorPairs(ids),
      scores: summary(im.scores),
    },
    eer: rates.eer,
    fnmrAt: rates.fnmrAt,
    atDefaultThreshold: {
      threshold,
      fmr: im.matches / im.scores.length,
      falseMatches: im.matches,
      fnmr: (g.scores.length - g.matches) / g.scores.length,
      falseNonMatches: g.scores.length - g.matches,
    },
    timings: { extractMs: t1 - t0, compareMs: t2 - t1, extractPerImageMs: (t1 - t0) / ds.items.length },
    rates,
  };
}
