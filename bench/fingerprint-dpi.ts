/**
 * Fingerprints at resolutions other than 500 dpi, on real captures: every image of every set is resampled (sharp,
 * Lanczos 3) as a sensor of another resolution would have taken it, then extracted with that resolution given
 * (`--dpi`), and compared two ways:
 *  - within: both templates at the new resolution (a fleet of such sensors);
 *  - across: the first of each genuine or impostor pair at 500 dpi, the second at the new resolution (a gallery
 *    enrolled on one sensor, probes from another).
 * FVC protocol as in fingerprint-real.ts (all genuine pairs, all cross-finger impostors within a set), pooled over the
 * sets, beside the 500 dpi originals. No parameter is chosen here: it checks that the resampling to the working
 * resolution and the matcher's scaling keep the accuracy and the default threshold's meaning.
 *
 *   npx tsx bench/fingerprint-dpi.ts --data ../shared/data/fingerprint [--dpi 350,600,1000] [--sets A,B]
 *   npm run bench -- --only=fingerprint-dpi --data ../shared/data/fingerprint
 *
 * Upsampled images (above 500 dpi) carry no detail the original lacked, so they test the scaling path, not a finer
 * sensor; downsampled ones lose detail as a coarser sensor would (ridges about 6 px apart at 350 dpi).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { loadDataset } from '../models/evaluation/dataset.ts';
import { errorRates } from '../models/evaluation/metrics.ts';
import { FingerprintEngine } from '../models/fingerprint/engine.ts';
import { FINGERPRINT_DEFAULT_THRESHOLD } from '../models/fingerprint/matcher/mcc.ts';
import { arg, pct } from './report-helpers.ts';


interface Pool {
  genuine: number[];
  impostor: number[];
}

/** The image as a sensor of `dpi` would give it (the originals are 500 dpi), PNG-encoded. */
async function resampled(bytes: Buffer, dpi: number): Promise<Uint8Array> {
  const img = sharp(bytes).grayscale();
  const { width, height } = await img.metadata();
  const f = dpi / 500;
  return new Uint8Array(await img.resize(Math.round(width! * f), Math.round(height! * f), { kernel: 'lanczos3', fit: 'fill' }).png().toBuffer());
}

function row(label: string, p: Pool, threshold: number): string {
  const r = errorRates(Float64Array.from(p.genuine), Float64Array.from(p.impostor), [1e-2]);
  const fm = p.impostor.filter((v) => v >= threshold).length, fnm = p.genuine.filter((v) => v < threshold).length;
  return `${label} | ${pct(r.eer.value)} | ${pct(r.fnmrAt[0]!.fnmr)} | ${pct(fm / p.impostor.length, 3)} (${fm}) | ${pct(fnm / p.genuine.length)} (${fnm})`;
}

async function main(): Promise<void> {
  const data = arg('--data');
  if (!data) throw new Error('usage: fingerprint-dpi.ts --data FOLDER (a folder of sets: FOLDER/SET/{finger}_{impression}.png, 500 dpi)');
  const root = resolve(data);
  const dpis = (arg('--dpi') ?? '350,600,1000').split(',').map(Number);
  for (const d of dpis) if (!Number.isFinite(d) || d < 250 || d > 1500) throw new Error(`--dpi ${d}: resolutions must be 250-1500`);
  const only = arg('--sets')?.split(',');
  const sets = (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory() && (!only || only.includes(e.name))).map((e) => e.name).sort();
  if (!sets.length) throw new Error(`${root} holds no set folders${only ? ` named ${only.join(', ')}` : ''}`);
  const threshold = FINGERPRINT_DEFAULT_THRESHOLD;
  const base = await FingerprintEngine.create();
  const engines = new Map<number, FingerprintEngine>();
  for (const d of dpis) engines.set(d, await FingerprintEngine.create({ dpi: d }));
  const original: Pool = { genuine: [], impostor: [] };
  const within = new Map(dpis.map((d) => [d, { genuine: [], impostor: [] } as Pool]));
  const across = new Map(dpis.map((d) => [d, { genuine: [], impostor: [] } as Pool]));
  const perSet: string[] = [];
  const minutiae = new Map<number, number[]>([[500, []], ...dpis.map((d) => [d, []] as [number, number[]])]);
  const failures = new Map<number, number>();
  try {
    for (const set of sets) {
      const ds = await loadDataset(join(root, set));
      const fingers = ds.items.map((i) => i.identity);
      const extractAll = async (engine: FingerprintEngine, dpi: number) => {
        const out: (Uint8Array | null)[] = [];
        for (const item of ds.items) {
          const bytes = await readFile(item.path);
          try {
            const x = await engine.extract(dpi === 500 ? bytes : await resampled(bytes, dpi));
            minutiae.get(dpi)!.push(x.info['minutiae'] as number);
            out.push(x.template);
          } catch {
            failures.set(dpi, (failures.get(dpi) ?? 0) + 1);
            out.push(null);
          }
        }
        return out;
      };
      const at500 = await extractAll(base, 500);
      const score = (a: Uint8Array | null, b: Uint8Array | null) => (a && b ? base.compare(a, b).score : 0);
      const fill = (pool: Pool, first: (Uint8Array | null)[], second: (Uint8Array | null)[]) => {
        for (let i = 0; i < fingers.length; i++) {
          for (let j = i + 1; j < fingers.length; j++) (fingers[i] === fingers[j] ? pool.genuine : pool.impostor).push(score(first[i]!, second[j]!));
        }
        return pool;
      };
      const setEer: string[] = [];
      const here = fill({ genuine: [], impostor: [] }, at500, at500);
      original.genuine.push(...here.genuine), original.impostor.push(...here.impostor);
      setEer.push(pct(errorRates(Float64Array.from(here.genuine), Float64Array.from(here.impostor), []).eer.value));
      for (const d of dpis) {
        const t = await extractAll(engines.get(d)!, d);
        const w = fill({ genuine: [], impostor: [] }, t, t);
        const x = fill({ genuine: [], impostor: [] }, at500, t);
        within.get(d)!.genuine.push(...w.genuine), within.get(d)!.impostor.push(...w.impostor);
        across.get(d)!.genuine.push(...x.genuine), across.get(d)!.impostor.push(...x.impostor);
        setEer.push(`${pct(errorRates(Float64Array.from(w.genuine), Float64Array.from(w.impostor), []).eer.value)} / ${pct(errorRates(Float64Array.from(x.genuine), Float64Array.from(x.impostor), []).eer.value)}`);
      }
      perSet.push(`| ${set} | ${setEer.join(' | ')} |`);
    }
  } finally {
    await base.close();
    for (const e of engines.values()) await e.close();
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1] ?? 0;
  const out = [
    `All sets pooled (${sets.join(', ')}), ${original.genuine.length} genuine and ${original.impostor.length} impostor pairs per row, default threshold ${threshold}.`,
    '',
    '| resolution | templates compared | EER | FNMR at FMR 1% | FMR at default | FNMR at default |',
    '| --- | --- | --- | --- | --- | --- |',
    `| ${row('500 dpi | both from the originals', original, threshold)} |`,
    ...dpis.flatMap((d) => [`| ${row(`${d} dpi | both at ${d} dpi (within)`, within.get(d)!, threshold)} |`, `| ${row(`${d} dpi | 500 dpi against ${d} dpi (across)`, across.get(d)!, threshold)} |`]),
    '',
    `Minutiae per capture (median): 500 dpi ${median(minutiae.get(500)!)}, ${dpis.map((d) => `${d} dpi ${median(minutiae.get(d)!)}`).join(', ')}; extraction failures: ${dpis.map((d) => `${d} dpi ${failures.get(d) ?? 0}`).join(', ')}, 500 dpi ${failures.get(500) ?? 0}.`,
    '',
    `EER per set (within / across):`,
    '',
    `| set | 500 dpi | ${dpis.map((d) => `${d} dpi`).join(' | ')} |`,
    `| --- | --- | ${dpis.map(() => '---').join(' | ')} |`,
    ...perSet,
  ];
  process.stdout.write(out.join('\n') + '\n');
}

await main();
