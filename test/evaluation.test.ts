import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { loadDataset, parseCsvLine, parseName } from '../models/evaluation/dataset.ts';
import { probit } from '../models/evaluation/det-plot.ts';
import { errorRates, operatingPoints } from '../models/evaluation/metrics.ts';
import { countImpostorPairs, genuinePairs, impostorPairs } from '../models/evaluation/pairs.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', 'bin', 'biokiosk.js');
const F = (a: number[]) => Float64Array.from(a);

describe('error rates', () => {
  it('perfect separation gives EER 0 and FNMR 0 at every measurable FMR', () => {
    const r = errorRates(F([0.9, 0.95, 0.99]), F(Array.from({ length: 200 }, (_, i) => i / 1000)), [1e-2, 1e-3]);
    expect(r.eer.value).toBe(0);
    expect(r.fnmrAt[0]).toMatchObject({ measurable: true, fnmr: 0 });
    expect(r.fnmrAt[1]).toMatchObject({ measurable: false, fnmr: null });
  });

  it('identical distributions give an EER of one half', () => {
    const s = Array.from({ length: 1000 }, (_, i) => i / 1000);
    expect(errorRates(F(s), F(s)).eer.value).toBeCloseTo(0.5, 2);
  });

  it('a small hand-computed case', () => {
    // genuine 0.2 0.6 0.8 0.9; impostor 0.1 0.3 0.5 0.7. At t=0.6: FNMR 1/4, FMR 1/4 -> EER 0.25.
    const r = errorRates(F([0.2, 0.6, 0.8, 0.9]), F([0.1, 0.3, 0.5, 0.7]), [0.25]);
    expect(r.eer.value).toBeCloseTo(0.25, 10);
    expect(r.fnmrAt[0]).toMatchObject({ fnmr: 0.25, fmr: 0.25, threshold: 0.6 });
    const pts = operatingPoints(F([0.2, 0.6, 0.8, 0.9]), F([0.1, 0.3, 0.5, 0.7]));
    expect(pts[0]).toEqual({ threshold: 0.1, fmr: 1, fnmr: 0 });
    expect(pts.at(-1)).toEqual({ threshold: Infinity, fmr: 0, fnmr: 1 });
  });

  it('counts ties as matches at the threshold', () => {
    const pts = operatingPoints(F([0.5, 0.5]), F([0.5]));
    expect(pts[0]).toEqual({ threshold: 0.5, fmr: 1, fnmr: 0 });
  });

  it('probit inverts the normal CDF', () => {
    expect(probit(0.5)).toBeCloseTo(0, 9);
    expect(probit(0.975)).toBeCloseTo(1.959963985, 6);
    expect(probit(0.001)).toBeCloseTo(-3.090232306, 6);
    expect(probit(1e-6)).toBeCloseTo(-4.753424309, 5);
  });
});

describe('pairs and datasets', () => {
  it('makes every genuine pair once and the impostor pairs of each mode', () => {
    const ids = ['a', 'a', 'a', 'b', 'b', 'c'];
    expect(genuinePairs(ids).a.length).toBe(3 + 1);
    expect(countImpostorPairs(ids)).toBe(15 - 4);
    expect(impostorPairs(ids, { kind: 'all' }).a.length).toBe(11);
    const fvc = impostorPairs(ids, { kind: 'fvc' });
    expect(Array.from(fvc.a)).toEqual([0, 0, 3]);
    expect(Array.from(fvc.b)).toEqual([3, 5, 5]);
    const s1 = impostorPairs(ids, { kind: 'sample', count: 5, seed: 9 });
    const s2 = impostorPairs(ids, { kind: 'sample', count: 5, seed: 9 });
    expect(Array.from(s1.a)).toEqual(Array.from(s2.a));
    for (let k = 0; k < 5; k++) expect(ids[s1.a[k]!]).not.toBe(ids[s1.b[k]!]);
  });

  it('parses names and CSV lines', () => {
    expect(parseName('alice_smith_03.jpg')).toEqual({ identity: 'alice_smith', sample: '03' });
    expect(parseName('1_1.tif')).toEqual({ identity: '1', sample: '1' });
    expect(parseName('noseparator.png')).toBeNull();
    expect(parseCsvLine('"a, b.jpg","x ""y"""', 1, 'f')).toEqual(['a, b.jpg', 'x "y"']);
  });

  it('reads a CSV dataset relative to its folder and refuses bad ones with the line number', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bk-ds-'));
    await writeFile(join(dir, 'set.csv'), 'path,identity\nimg/1.png,alice\nimg/2.png,bob\n');
    const ds = await loadDataset(join(dir, 'set.csv'));
    expect(ds.items.map((i) => i.identity)).toEqual(['alice', 'bob']);
    expect(ds.items[0]!.path).toBe(join(dir, 'img', '1.png'));
    await writeFile(join(dir, 'bad.csv'), 'a.png,alice\nb.png\n');
    await expect(loadDataset(join(dir, 'bad.csv'))).rejects.toThrow(/line 2: expected 2 fields/);
    await writeFile(join(dir, 'one.csv'), 'a.png,alice\nb.png,alice\n');
    await expect(loadDataset(join(dir, 'one.csv'))).rejects.toThrow(/at least 2/);
    await expect(loadDataset(join(dir, 'nope'))).rejects.toThrow(/does not exist/);
  });
});

describe('biokiosk eval (face)', () => {
  it('evaluates a regenerated face set end to end: failures listed, pairs counted, DET curve drawn', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bk-eval-'));
    const set = join(dir, 'faces');
    await run(process.execPath, [BIN, 'synth', 'face', '--out', set, '--impressions', '3', '--seed', '5'], { timeout: 120_000 });
    const files = await readdir(set);
    expect(files.length).toBeGreaterThanOrEqual(30);
    // A corrupt image is a listed failure; a misnamed one is skipped, and said so.
    await writeFile(join(set, 'broken_1.jpg'), Buffer.from('not really a jpeg'));
    await copyFile(join(set, files[0]!), join(set, 'misnamed.jpg'));
    const plot = join(dir, 'det.png');
    const { stdout } = await run(process.execPath, [BIN, 'eval', '--modality', 'face', '--dataset', set, '--json', '--plot', plot], { timeout: 180_000 });
    const r = JSON.parse(stdout);
    expect(r.ok).toBe(true);
    expect(r.dataset.skipped.map((s: { path: string }) => s.path)).toEqual([join(set, 'misnamed.jpg')]);
    expect(r.failures).toContainEqual(expect.objectContaining({ path: join(set, 'broken_1.jpg'), code: 'BadImage' }));
    expect(r.genuine.pairs).toBeGreaterThan(20);
    expect(r.impostor.pairs).toBeGreaterThan(300);
    expect(r.impostor.mode).toBe('all');
    expect(r.eer.value).toBeGreaterThanOrEqual(0);
    expect(r.eer.value).toBeLessThan(0.2);
    expect(r.fnmrAt.map((f: { targetFmr: number }) => f.targetFmr)).toEqual([0.01, 0.001, 0.0001]);
    expect(r.fnmrAt[2].measurable).toBe(false);
    const meta = await sharp(plot).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 640, 640]);
  });
});
