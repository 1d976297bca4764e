/**
 * The tuning harness for fingerprint changes: the FVC protocol on the tuning sets ONLY (fingerprint-sets.ts), per set
 * and pooled, so a change can be judged without looking at the held-out sets. Templates are cached under the
 * extractor's identity and a digest of its sources as they are on disk (an edit re-extracts before the version is
 * bumped), so a matcher change is scored in seconds.
 *
 *   npx tsx bench/fingerprint-tune.ts --data ../shared/data/fingerprint [--cache DIR] [--threshold T] [--fails]
 *
 * `--fails` lists, per set, how many genuine pairs of each finger fall below the threshold. The honest evaluation,
 * held-out sets and NBIS included, is fingerprint-real.ts.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { loadDataset } from '../models/evaluation/dataset.ts';
import { errorRates } from '../models/evaluation/metrics.ts';
import { genuinePairs, impostorPairs, type Pairs } from '../models/evaluation/pairs.ts';
import { FingerprintEngine } from '../models/fingerprint/engine.ts';
import { EXTRACTOR_SOURCES } from '../models/fingerprint/extract/version.ts';
import { FINGERPRINT_DEFAULT_THRESHOLD } from '../models/fingerprint/matcher/mcc.ts';
import { TUNED_SETS } from './fingerprint-sets.ts';
import { arg, pct } from './report-helpers.ts';


interface CachedCapture {
  finger: string;
  file: string;
  /** base64 template, or null when extraction failed (scored 0 against everything, as fingerprint-real.ts does). */
  template: string | null;
}


/** The extractor's identity and its sources as they are now: what the cached templates were made by. */
async function extractorKey(engine: FingerprintEngine): Promise<string> {
  const h = createHash('sha256').update(engine.model.sha256);
  for (const p of EXTRACTOR_SOURCES) h.update(`${p}\n`).update(await readFile(join(import.meta.dirname, '..', p)));
  return h.digest('hex').slice(0, 16);
}

async function captures(engine: FingerprintEngine, key: string, root: string, set: string, cacheDir: string): Promise<CachedCapture[]> {
  const file = join(cacheDir, `${key}-${set}.json`);
  if (existsSync(file)) return JSON.parse(await readFile(file, 'utf8')) as CachedCapture[];
  const ds = await loadDataset(join(root, set));
  const out: CachedCapture[] = [];
  for (const item of ds.items) {
    const name = item.path.split('/').pop()!;
    try {
      const x = await engine.extract(await readFile(item.path));
      out.push({ finger: item.identity, file: name, template: Buffer.from(x.template).toString('base64') });
    } catch {
      out.push({ finger: item.identity, file: name, template: null });
    }
  }
  await writeFile(file, JSON.stringify(out));
  return out;
}

function line(name: string, genuine: number[], impostor: number[], threshold: number): string {
  const r = errorRates(Float64Array.from(genuine), Float64Array.from(impostor), [1e-2, 1e-3]);
  const at01 = r.fnmrAt[1]!;
  return `| ${name} | ${genuine.length} / ${impostor.length} | ${pct(r.eer.value)} | ${pct(r.fnmrAt[0]!.fnmr)} | ${at01.measurable ? `${pct(at01.fnmr)} (${at01.threshold?.toFixed(3)})` : 'n/a'} | ${impostor.filter((v) => v >= threshold).length} | ${genuine.filter((v) => v < threshold).length} |`;
}

async function main(): Promise<void> {
  const data = arg('--data');
  if (!data) throw new Error('usage: fingerprint-tune.ts --data FOLDER (holding the tuning sets: ' + TUNED_SETS.join(', ') + ')');
  const root = resolve(data);
  const missing = TUNED_SETS.filter((s) => !existsSync(join(root, s)));
  if (missing.length) throw new Error(`${root} lacks the tuning sets ${missing.join(', ')}`);
  const cacheDir = resolve(arg('--cache') ?? join(os.tmpdir(), 'biokiosk-fingerprint-tune'));
  await mkdir(cacheDir, { recursive: true });
  const threshold = Number(arg('--threshold') ?? FINGERPRINT_DEFAULT_THRESHOLD);
  const engine = await FingerprintEngine.create();
  const key = await extractorKey(engine);
  const rows: string[] = [];
  const failLines: string[] = [];
  const pooled = { genuine: [] as number[], impostor: [] as number[] };
  try {
    for (const set of TUNED_SETS) {
      const caps = await captures(engine, key, root, set, cacheDir);
      const templates = caps.map((c) => (c.template ? new Uint8Array(Buffer.from(c.template, 'base64')) : null));
      const fingers = caps.map((c) => c.finger);
      const scores = (pairs: Pairs) =>
        Array.from(pairs.a, (i, k) => {
          const a = templates[i], b = templates[pairs.b[k]!];
          return a && b ? engine.compare(a, b).score : 0;
        });
      const genuineList = genuinePairs(fingers);
      const genuine = scores(genuineList);
      const impostor = scores(impostorPairs(fingers, { kind: 'all' }));
      const failsByFinger: Record<string, number> = {};
      genuine.forEach((score, k) => {
        const f = fingers[genuineList.a[k]!]!;
        if (score < threshold) failsByFinger[f] = (failsByFinger[f] ?? 0) + 1;
      });
      pooled.genuine.push(...genuine);
      pooled.impostor.push(...impostor);
      rows.push(line(set, genuine, impostor, threshold));
      failLines.push(`- ${set}: ${Object.entries(failsByFinger).map(([f, n]) => `${f}: ${n}`).join(', ') || 'none'}`);
    }
  } finally {
    await engine.close();
  }
  const out = [
    `Tuning sets only (${TUNED_SETS.join(', ')}), extractor ${engine.model.sha256.slice(0, 16)} (sources ${key}), threshold ${threshold}.`,
    '',
    '| set | genuine / impostor pairs | EER | FNMR at FMR 1% | FNMR at FMR 0.1% (threshold) | false matches | false non-matches |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    line('**pooled**', pooled.genuine, pooled.impostor, threshold),
    ...(process.argv.includes('--fails') ? ['', 'Genuine pairs below the threshold, by finger:', ...failLines] : []),
  ];
  process.stdout.write(out.join('\n') + '\n');
}

await main();
