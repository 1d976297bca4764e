/** Error rates against hand-computed cases and a brute-force reference; dataset parsing details and refusals. */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../models/common/prng.ts';
import { loadDataset } from '../models/evaluation/dataset.ts';
import { probit } from '../models/evaluation/det-plot.ts';
import { errorRates, operatingPoints, summary } from '../models/evaluation/metrics.ts';
import { UsageError } from '../protocol/errors.ts';

const F = (a: number[]) => Float64Array.from(a);

/** The definition, evaluated directly: a comparison matches when its score is at or above the threshold. */
function reference(gen: number[], imp: number[]) {
  const ts = [...new Set([...gen, ...imp])].sort((a, b) => a - b);
  ts.push(Infinity);
  return ts.map((t) => ({ threshold: t, fmr: imp.filter((s) => s >= t).length / imp.length, fnmr: gen.filter((s) => s < t).length / gen.length }));
}

describe('error rates: hand-computed cases', () => {
  it('interpolates the EER between the two operating points where the curves cross', () => {
    // Thresholds 0.1 0.3 0.4 0.5 0.6 ...: at 0.5 FMR 2/4 > FNMR 1/3; at 0.6 FMR 1/4 < FNMR 1/3.
    // FMR - FNMR goes 1/6 -> -1/12, so w = 2/3: FMR = 1/2 - (2/3)(1/4) = 1/3 = FNMR, threshold 0.5 + (2/3)(0.1).
    const r = errorRates(F([0.3, 0.6, 0.8]), F([0.1, 0.4, 0.5, 0.7]), [0.25, 0.5]);
    expect(r.eer.value).toBeCloseTo(1 / 3, 12);
    expect(r.eer.threshold).toBeCloseTo(0.5 + 0.2 / 3, 12);
    expect(r.fnmrAt).toEqual([
      { targetFmr: 0.25, measurable: true, fnmr: 1 / 3, threshold: 0.6, fmr: 0.25 },
      { targetFmr: 0.5, measurable: true, fnmr: 1 / 3, threshold: 0.5, fmr: 0.5 },
    ]);
  });

  it('counts tied scores as matches on both sides', () => {
    // At t=1 the tied impostor matches (FMR 1/4) and both genuine 1s match (FNMR 0); at t=2 FMR 0, FNMR 2/3.
    // w = (1/4) / (1/4 + 2/3) = 3/11, so EER = (1/4)(8/11) = (2/3)(3/11) = 2/11.
    const gen = F([1, 1, 2]);
    const imp = F([1, 0, 0, 0]);
    expect(operatingPoints(gen, imp)).toEqual([
      { threshold: 0, fmr: 1, fnmr: 0 },
      { threshold: 1, fmr: 0.25, fnmr: 0 },
      { threshold: 2, fmr: 0, fnmr: 2 / 3 },
      { threshold: Infinity, fmr: 0, fnmr: 1 },
    ]);
    expect(errorRates(gen, imp).eer.value).toBeCloseTo(2 / 11, 12);
  });

  it('perfect separation: EER 0 at the lowest genuine score', () => {
    const r = errorRates(F([5, 6, 7]), F([1, 2, 3, 4]));
    expect(r.eer).toEqual({ value: 0, threshold: 5 });
  });

  it('a target is measurable from 1 / target impostor pairs on, and never faked below that', () => {
    const gen = F([0.5, 0.9]);
    for (const [n, target] of [[100, 1e-2], [1000, 1e-3], [10_000, 1e-4]] as const) {
      expect(errorRates(gen, new Float64Array(n), [target]).fnmrAt[0]!.measurable).toBe(true);
      expect(errorRates(gen, new Float64Array(n - 1), [target]).fnmrAt[0]).toEqual({ targetFmr: target, measurable: false, fnmr: null, threshold: null, fmr: null });
    }
  });

  it('summarises scores', () => {
    expect(summary(F([3, 1, 2, 10]))).toEqual({ min: 1, median: 3, max: 10, mean: 4 });
  });
});

describe('error rates: against the definition', () => {
  it('matches a brute-force evaluation on random scores with many ties', () => {
    const rand = mulberry32(2024);
    for (let trial = 0; trial < 25; trial++) {
      const gen = Array.from({ length: 20 + Math.floor(rand() * 40) }, () => 8 + Math.floor(rand() * 12));
      const imp = Array.from({ length: 100 + Math.floor(rand() * 300) }, () => Math.floor(rand() * 14));
      const ref = reference(gen, imp);
      expect(operatingPoints(F(gen), F(imp))).toEqual(ref);
      const targets = [0.05, 0.01];
      const r = errorRates(F(gen), F(imp), targets);
      targets.forEach((target, k) => {
        const p = ref.find((x) => x.fmr <= target)!;
        expect(r.fnmrAt[k]).toEqual({ targetFmr: target, measurable: true, fnmr: p.fnmr, threshold: p.threshold, fmr: p.fmr });
      });
      // The EER lies between the operating points that bracket the crossing.
      const i = ref.findIndex((x) => x.fnmr >= x.fmr);
      const [q, p] = [ref[i - 1]!, ref[i]!];
      expect(r.eer.value).toBeGreaterThanOrEqual(Math.min(p.fmr, q.fnmr) - 1e-12);
      expect(r.eer.value).toBeLessThanOrEqual(Math.max(q.fmr, p.fnmr) + 1e-12);
      expect(r.eer.threshold).toBeGreaterThanOrEqual(q.threshold);
      expect(r.eer.threshold).toBeLessThanOrEqual(p.threshold);
    }
  });

  it('handles a million impostor scores (shuffled) with exact FNMR at FMR 1e-2 / 1e-4', () => {
    const n = 1_000_000;
    const imp = new Float64Array(n);
    for (let j = 0; j < n; j++) imp[j] = (j + 0.5) / n;
    const rand = mulberry32(5);
    for (let j = n - 1; j > 0; j--) {
      const k = Math.floor(rand() * (j + 1));
      const t = imp[j]!;
      imp[j] = imp[k]!;
      imp[k] = t;
    }
    // Genuine scores spread evenly over (0.9, 1): FNMR(t) = 10 (t - 0.9), FMR(t) = 1 - t, crossing at t = 10/11.
    const gen = Float64Array.from({ length: 1000 }, (_, i) => 0.9 + (i + 0.25) * 1e-4);
    const r = errorRates(gen, imp);
    expect(r.impostor).toBe(n);
    // FMR <= 1e-2 first at the 990,000th impostor score (10,000 at or above it); 100 genuine scores are above.
    expect(r.fnmrAt[0]).toEqual({ targetFmr: 0.01, measurable: true, threshold: (990_000 + 0.5) / n, fmr: 0.01, fnmr: 0.9 });
    expect(r.fnmrAt[2]).toEqual({ targetFmr: 0.0001, measurable: true, threshold: (999_900 + 0.5) / n, fmr: 0.0001, fnmr: 0.999 });
    expect(r.eer.value).toBeCloseTo(1 / 11, 3);
    expect(r.eer.threshold).toBeCloseTo(10 / 11, 3);
    expect(r.det.length).toBeLessThanOrEqual(2001);
  });

  it('probit is symmetric and monotone across its three regions', () => {
    for (const p of [1e-8, 1e-4, 0.01, 0.02425, 0.1, 0.3]) expect(probit(1 - p)).toBeCloseTo(-probit(p), 7);
    const ps = [1e-9, 1e-6, 1e-4, 0.0242, 0.0243, 0.5, 0.9757, 0.9758, 0.9999];
    for (let i = 1; i < ps.length; i++) expect(probit(ps[i]!)).toBeGreaterThan(probit(ps[i - 1]!));
    expect(probit(0)).toBe(-Infinity);
    expect(probit(1)).toBe(Infinity);
  });
});

describe('datasets: CSV details and refusals', () => {
  it('reads CRLF, blank lines, quoted paths with commas and quotes, a header, paths relative to the CSV', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bk-csv-'));
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'sub', 'list.csv'), 'Path,Identity\r\n"a, b.png",alice\r\n\r\n  c.png , bob \r\n"../x ""q"".png","carol, jr"\r\n');
    const ds = await loadDataset(join(dir, 'sub', 'list.csv'));
    expect(ds.name).toBe('list.csv');
    expect(ds.items.map((i) => [i.path, i.identity])).toEqual([
      [join(dir, 'sub', 'a, b.png'), 'alice'],
      [join(dir, 'sub', 'c.png'), 'bob'],
      [join(dir, 'x "q".png'), 'carol, jr'],
    ]);
    expect(ds.identities).toBe(3);
  });

  it('names the line of a malformed CSV', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bk-csv-'));
    const bad = async (text: string, re: RegExp) => {
      await writeFile(join(dir, 'bad.csv'), text);
      const err = await loadDataset(join(dir, 'bad.csv')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(re);
    };
    await bad('a.png,x\nb.png,y\n"c.png,z\n', /line 3: unterminated quoted field/);
    await bad('a.png,x\n"b.png"y,z\n', /line 2: text after a quoted field/);
    await bad('a.png,x\n,y\n', /line 2: empty path or identity/);
    await bad('a.png,x,extra\n', /line 1: expected 2 fields/);
  });

  it('refuses folders with no usable images (saying why) or a single identity', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bk-folder-'));
    await writeFile(join(dir, 'readme.md'), 'x');
    await writeFile(join(dir, 'photo.jpg'), 'x');
    await expect(loadDataset(dir)).rejects.toThrow(/no usable images \(2 files skipped/);
    await writeFile(join(dir, 'ann_1.jpg'), 'x');
    await writeFile(join(dir, 'ann_2.JPEG'), 'x');
    await expect(loadDataset(dir)).rejects.toThrow(/1 identity; impostor pairs need at least 2/);
  });
});
