/** `biokiosk eval`: accuracy of a modality on a dataset (EER, FNMR at FMR 1e-2 / 1e-3 / 1e-4, DET curve). */
import { access, constants } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../protocol/errors.ts';
import { createEngine, parseModality } from '../models/engines.ts';
import { loadDataset } from '../models/evaluation/dataset.ts';
import { writeDetPng } from '../models/evaluation/det-plot.ts';
import { countImpostorPairs, type ImpostorMode } from '../models/evaluation/pairs.ts';
import { ProgressBar } from '../models/evaluation/progress.ts';
import { runEval, type EvalReport } from '../models/evaluation/run.ts';
import { checkDpi, parseNumber, printJson } from './options.ts';

interface EvalOptions {
  modality: string;
  dataset: string;
  json?: boolean;
  plot?: string;
  impostors: string;
  seed: number;
  maxImpostors: number;
  dpi?: number;
}

export function parseImpostorMode(value: string, seed: number): ImpostorMode {
  if (value === 'all') return { kind: 'all' };
  if (value === 'fvc') return { kind: 'fvc' };
  const m = /^sample:(\d+)$/.exec(value);
  if (m && Number(m[1]) > 0) return { kind: 'sample', count: Number(m[1]), seed };
  throw new UsageError(`--impostors must be all, fvc or sample:N, got "${value}"`);
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('Evaluate a modality on a dataset: EER, FNMR at FMR 1e-2/1e-3/1e-4, and a DET curve.')
    .requiredOption('--modality <name>', 'face | fingerprint | iris')
    .requiredOption('--dataset <path>', 'folder of {identity}_{sample}.{jpg,png,bmp,tif,pgm,ppm} images, or a CSV of path,identity')
    .option('--json', 'print one JSON object')
    .option('--plot <png>', 'write the DET curve to this PNG file')
    .option('--impostors <mode>', 'all | fvc (first samples against each other) | sample:N (seeded)', 'all')
    .option('--seed <n>', 'seed for sampled impostor pairs', parseNumber('--seed', 0, 2 ** 32 - 1, true), 1)
    .option('--max-impostors <n>', 'with --impostors all, sample this many when there are more pairs', parseNumber('--max-impostors', 1, 1e9, true), 2_000_000)
    .option('--dpi <n>', 'fingerprint only: resolution of the images, dots per inch (default 500; 250-1500)', parseNumber('--dpi', 250, 1500))
    .action(async (o: EvalOptions) => {
      const modality = parseModality(o.modality);
      checkDpi(modality, o.dpi);
      // Fail now, not after an hour of extraction, when the plot cannot be written.
      if (o.plot) await access(dirname(resolve(o.plot)), constants.W_OK).catch(() => {
        throw new UsageError(`--plot: folder ${dirname(resolve(o.plot!))} does not exist or is not writable`);
      });
      const ds = await loadDataset(o.dataset);
      let mode = parseImpostorMode(o.impostors, o.seed);
      if (mode.kind === 'all' && countImpostorPairs(ds.items.map((x) => x.identity)) > o.maxImpostors) mode = { kind: 'sample', count: o.maxImpostors, seed: o.seed };
      const engine = await createEngine(modality, o.dpi === undefined ? {} : { dpi: o.dpi });
      let report: EvalReport;
      try {
        const bars = { extract: new ProgressBar('extract', ds.items.length, !o.json && Boolean(process.stderr.isTTY)), compare: null as ProgressBar | null };
        report = await runEval(engine, ds, {
          impostors: mode,
          onProgress: (stage, done, total) => {
            if (stage === 'extract') bars.extract.update(done);
            else (bars.compare ??= new ProgressBar('compare', total, !o.json && Boolean(process.stderr.isTTY))).update(done);
          },
        });
      } finally {
        await engine.close();
      }
      if (o.plot) await writeDetPng(report.rates, `${modality}: ${ds.name}`, o.plot);
      const { rates, ...rest } = report;
      if (o.json) printJson({ ok: true, ...rest, plot: o.plot ?? null, det: rates.det.length });
      else printHuman(report, o.plot);
    });
}

function printHuman(r: EvalReport, plot?: string): void {
  const pct = (v: number | null) => (v === null ? 'n/a' : `${(v * 100).toFixed(3)}%`);
  const lines = [
    `dataset     ${r.dataset.name}: ${r.dataset.images} images, ${r.dataset.identities} identities${r.dataset.skipped.length ? `, ${r.dataset.skipped.length} files skipped` : ''}`,
    `failures    ${r.failures.length} images could not be extracted`,
    ...r.failures.slice(0, 10).map((f) => `  ${f.path}: ${f.code}: ${f.message}`),
    `genuine     ${r.genuine.pairs} pairs${r.genuine.excluded ? ` (${r.genuine.excluded} excluded: failed images)` : ''}; scores median ${r.genuine.scores.median.toFixed(4)}`,
    `impostor    ${r.impostor.pairs} pairs, ${r.impostor.mode}${r.impostor.seed !== undefined ? ` (seed ${r.impostor.seed}, of ${r.impostor.ofAll})` : ''}${r.impostor.excluded ? ` (${r.impostor.excluded} excluded)` : ''}; scores median ${r.impostor.scores.median.toFixed(4)}`,
    `EER         ${pct(r.eer.value)} at score ${r.eer.threshold.toFixed(4)}`,
    ...r.fnmrAt.map((f) => `FNMR        ${pct(f.fnmr)} at FMR ${f.targetFmr}${f.measurable ? ` (score threshold ${f.threshold!.toFixed(4)}, FMR ${pct(f.fmr)})` : ' (not measurable: too few impostor pairs)'}`),
    `default     threshold ${r.atDefaultThreshold.threshold.toFixed(4)}: FMR ${r.atDefaultThreshold.fmr.toExponential(2)} (${r.atDefaultThreshold.falseMatches} of ${r.impostor.pairs}), FNMR ${pct(r.atDefaultThreshold.fnmr)} (${r.atDefaultThreshold.falseNonMatches} of ${r.genuine.pairs})`,
    `time        extract ${(r.timings.extractMs / 1000).toFixed(1)} s (${r.timings.extractPerImageMs.toFixed(1)} ms/image), compare ${(r.timings.compareMs / 1000).toFixed(1)} s`,
  ];
  if (plot) lines.push(`DET curve   ${plot}`);
  process.stdout.write(lines.join('\n') + '\n');
}
