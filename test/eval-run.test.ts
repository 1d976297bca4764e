/**
 * `runEval` end to end with a tiny but real modality: the "template" of an image is its mean grey level, and two
 * templates are as similar as their grey levels are close (score = -|a - b|). Images are real files on disk in
 * every supported container (PNG, hand-built BMP, TIFF, WebP, hand-built PGM and PPM), so loading, decoding, pairing, scoring, the error
 * rates and the DET plot all run for real, and the expected rates can be computed independently from the grey levels.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../models/common/image.ts';
import { mulberry32 } from '../models/common/prng.ts';
import { loadDataset, type Dataset } from '../models/evaluation/dataset.ts';
import { detSvg, writeDetPng } from '../models/evaluation/det-plot.ts';
import { impostorPairs } from '../models/evaluation/pairs.ts';
import { runEval } from '../models/evaluation/run.ts';
import type { ComparisonResult, Extraction, ModalityEngine } from '../models/modality.ts';
import { BadTemplateError } from '../protocol/errors.ts';
import { bmp } from './helpers/bmp.ts';

class MeanGreyEngine implements ModalityEngine {
  readonly name = 'iris' as const; // any ModalityName; the report echoes it

  async extract(image: Uint8Array): Promise<Extraction> {
    const img = await decodeImage(image);
    let sum = 0;
    for (const v of img.data) sum += v;
    const mean = sum / img.data.length;
    const template = new Uint8Array(new Float64Array([mean]).buffer);
    return { template, quality: { score: 100, retryBelow: 0, measures: {} }, timings: {}, info: { mean } };
  }

  compare(a: Uint8Array, b: Uint8Array): ComparisonResult {
    const d = Math.abs(read(a) - read(b));
    const score = 0 - d; // 0 - 0 is +0, never -0
    return { score, native: { name: 'grey difference', value: d }, threshold: -10, decision: score >= -10 ? 'match' : 'no_match' };
  }

  async close(): Promise<void> {}
}

function read(t: Uint8Array): number {
  if (t.length !== 8) throw new BadTemplateError(`mean-grey template must be 8 bytes, got ${t.length}`);
  return new Float64Array(t.slice().buffer)[0]!;
}

async function flat(path: string, level: number): Promise<void> {
  const raw = sharp(Buffer.alloc(8 * 8 * 3, level), { raw: { width: 8, height: 8, channels: 3 } });
  const lower = path.toLowerCase();
  if (lower.endsWith('.bmp')) await writeFile(path, bmp(8, 8, () => [level, level, level], { bpp: 8 }));
  else if (lower.endsWith('.pgm')) await writeFile(path, Buffer.concat([Buffer.from('P5\n8 8\n255\n'), Buffer.alloc(64, level)]));
  else if (lower.endsWith('.ppm')) await writeFile(path, Buffer.from(`P3 8 8 255\n${Array(64 * 3).fill(level).join(' ')}\n`));
  else if (lower.endsWith('.tif')) await raw.tiff().toFile(path);
  else if (lower.endsWith('.webp')) await raw.webp({ lossless: true }).toFile(path);
  else await raw.png().toFile(path);
}

/** What the rates must be, by brute force over every candidate threshold (every distinct score, then +inf). */
function bruteForce(gen: number[], imp: number[]) {
  const ts = [...new Set([...gen, ...imp])].sort((a, b) => a - b);
  ts.push(Infinity);
  const at = (t: number) => ({ t, fmr: imp.filter((s) => s >= t).length / imp.length, fnmr: gen.filter((s) => s < t).length / gen.length });
  const pts = ts.map(at);
  const fnmrAt = (target: number) => pts.find((p) => p.fmr <= target)!;
  const k = pts.findIndex((p) => p.fnmr >= p.fmr);
  return { pts, fnmrAt, crossing: [pts[k - 1]!, pts[k]!] as const };
}

const IDS = ['id_0', 'id_1', 'id_2', 'id_3', 'id_4', 'id_5', 'id_6', 'id_7'];
const EXT = ['png', 'bmp', 'TIF', 'webp', 'pgm', 'ppm'];

describe('runEval with a real (tiny) modality', () => {
  let dir: string;
  let ds: Dataset;
  const levels = new Map<string, number>(); // file name -> grey level

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bk-evalrun-'));
    const rand = mulberry32(11);
    const jobs: Promise<void>[] = [];
    // 8 identities x 3 samples; identities 10 grey levels apart with +-6 noise, so neighbours overlap a little.
    IDS.forEach((id, k) => {
      for (let s = 1; s <= 3; s++) {
        const level = 100 + 10 * k + Math.floor(rand() * 13) - 6;
        const name = `${id}_${s}.${EXT[(k + s) % EXT.length]}`;
        levels.set(name, level);
        jobs.push(flat(join(dir, name), level));
      }
    });
    await Promise.all(jobs);
    await writeFile(join(dir, 'id_3_9.png'), Buffer.from('not a png at all')); // a failed sample of a real identity
    await writeFile(join(dir, 'broken_1.jpg'), Buffer.alloc(0)); // a failed identity
    await writeFile(join(dir, 'notes.txt'), 'hello');
    await flat(join(dir, 'nounderscore.png'), 50);
    ds = await loadDataset(dir);
  });

  it('loads the folder: identities by the last underscore, misfits listed as skipped', () => {
    expect(ds.items.length).toBe(26);
    expect(ds.identities).toBe(9);
    expect(ds.skipped.map((s) => s.path).sort()).toEqual([join(dir, 'notes.txt'), join(dir, 'nounderscore.png')]);
    expect(ds.items.find((i) => i.path.endsWith('id_3_9.png'))).toMatchObject({ identity: 'id_3', sample: '9' });
    expect(ds.items.some((i) => i.path.endsWith('.TIF'))).toBe(true);
  });

  it('extracts, lists failures, excludes their pairs, and computes the rates the scores imply', async () => {
    const engine = new MeanGreyEngine();
    const progress: Array<[string, number, number]> = [];
    const r = await runEval(engine, ds, { impostors: { kind: 'all' }, onProgress: (s, d, t) => progress.push([s, d, t]) });

    expect(r.modality).toBe('iris');
    expect(r.dataset).toMatchObject({ images: 26, identities: 9 });
    expect(r.failures.map((f) => [f.path, f.code])).toEqual([
      [join(dir, 'broken_1.jpg'), 'BadImage'],
      [join(dir, 'id_3_9.png'), 'BadImage'],
    ]);
    // Genuine: 8 x C(3,2) = 24 scored, plus 3 with the failed id_3 sample. Impostor: C(26,2) - 27 = 298 in all,
    // C(24,2) - 24 = 252 between extracted images.
    expect(r.genuine).toMatchObject({ pairs: 24, excluded: 3 });
    expect(r.impostor).toMatchObject({ pairs: 252, excluded: 46, mode: 'all', ofAll: 298 });
    expect(r.impostor.seed).toBeUndefined();

    // The same numbers from the grey levels alone.
    const names = [...levels.keys()];
    const gen: number[] = [];
    const imp: number[] = [];
    for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) {
      const same = names[i]!.slice(0, names[i]!.lastIndexOf('_')) === names[j]!.slice(0, names[j]!.lastIndexOf('_'));
      (same ? gen : imp).push(0 - Math.abs(levels.get(names[i]!)! - levels.get(names[j]!)!));
    }
    const bf = bruteForce(gen, imp);
    const want = bf.fnmrAt(1e-2);
    expect(r.fnmrAt[0]).toMatchObject({ targetFmr: 0.01, measurable: true, threshold: want.t, fmr: want.fmr, fnmr: want.fnmr });
    expect(r.fnmrAt.slice(1).map((f) => f.measurable)).toEqual([false, false]); // 252 impostors < 1e3, 1e4
    const [q, p] = bf.crossing;
    expect(r.eer.value).toBeGreaterThanOrEqual(Math.min(p.fmr, q.fnmr) - 1e-12);
    expect(r.eer.value).toBeLessThanOrEqual(Math.max(q.fmr, p.fnmr) + 1e-12);
    expect(r.eer.value).toBeGreaterThan(0); // the classes overlap by construction
    // The engine's own decisions at its default threshold (-10): counted from the same scores.
    const falseMatches = imp.filter((v) => v >= -10).length;
    const falseNonMatches = gen.filter((v) => v < -10).length;
    expect(r.atDefaultThreshold).toEqual({ threshold: -10, fmr: falseMatches / 252, falseMatches, fnmr: falseNonMatches / 24, falseNonMatches });
    expect(falseMatches + falseNonMatches).toBeGreaterThan(0); // the classes overlap: the count is not trivially 0
    expect(r.genuine.scores.max).toBe(Math.max(...gen));
    expect(r.impostor.scores.min).toBe(Math.min(...imp));

    // Progress: one extract tick per image, compare ends at its total.
    expect(progress.filter(([s]) => s === 'extract').map(([, d]) => d)).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    expect(progress.at(-1)).toEqual(['compare', 27 + 298, 27 + 298]);
    expect(() => JSON.stringify(r)).not.toThrow();

    // The DET curve as PNG, readable, of the promised size; the SVG names the set and the counts.
    const png = join(dir, 'det.png');
    await writeDetPng(r.rates, 'iris: evalrun', png);
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 640, 640]);
    const svg = detSvg(r.rates, 'iris: <evalrun> & co');
    expect(svg).toContain('iris: &lt;evalrun&gt; &amp; co');
    expect(svg).toContain('24 genuine, 252 impostor');
    expect(svg).toMatch(/<circle /); // the EER point
    for (const tick of ['0.01%', '0.1%', '1%', '5%', '20%', '40%']) expect(svg).toContain(`>${tick}<`);
  });

  it('samples impostors reproducibly from a seed and says so', async () => {
    const engine = new MeanGreyEngine();
    const a = await runEval(engine, ds, { impostors: { kind: 'sample', count: 60, seed: 7 } });
    const b = await runEval(engine, ds, { impostors: { kind: 'sample', count: 60, seed: 7 } });
    expect(a.impostor).toMatchObject({ mode: 'sample', seed: 7, ofAll: 298 });
    expect(a.impostor.pairs + a.impostor.excluded).toBe(60);
    expect(b.impostor).toEqual(a.impostor);
    expect(b.eer).toEqual(a.eer);
    const c = await runEval(engine, ds, { impostors: { kind: 'sample', count: 60, seed: 8 } });
    expect(c.impostor.scores).not.toEqual(a.impostor.scores);
  });
});

describe('runEval on a folder in FVC naming', () => {
  it('reads 1_1.tif ... and pairs the first impression of each finger (natural order) against each other', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bk-evalfvc-'));
    const files: Array<[string, number]> = [];
    for (let f = 1; f <= 5; f++) for (const i of f === 1 ? [10, 2, 3] : [1, 2, 3]) files.push([`${f}_${i}.tif`, 40 * f + i]);
    await Promise.all(files.map(([n, level]) => flat(join(dir, n), level)));
    const ds = await loadDataset(dir);
    expect(ds.identities).toBe(5);
    const fvc = impostorPairs(ds.items.map((x) => x.identity), { kind: 'fvc' });
    const firsts = new Set([...fvc.a, ...fvc.b].map((k) => ds.items[k]!.path));
    expect([...firsts].sort()).toEqual(['1_2.tif', '2_1.tif', '3_1.tif', '4_1.tif', '5_1.tif'].map((n) => join(dir, n)));

    const r = await runEval(new MeanGreyEngine(), ds, { impostors: { kind: 'fvc' } });
    expect(r.failures).toEqual([]);
    expect(r.genuine.pairs).toBe(15); // 5 fingers x C(3,2)
    expect(r.impostor).toMatchObject({ pairs: 10, mode: 'fvc', excluded: 0 }); // C(5,2)
    expect(r.eer.value).toBe(0); // grey levels 40 apart, impressions within 8: perfectly separated
    expect(r.fnmrAt.every((f) => !f.measurable)).toBe(true); // 10 impostor pairs measure none of the targets
  });
});
