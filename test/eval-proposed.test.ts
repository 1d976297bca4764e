/** Behaviour added by the proposed patch to models/evaluation/{run,dataset,metrics,det-plot}.ts. */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../models/evaluation/dataset.ts';
import { detSvg } from '../models/evaluation/det-plot.ts';
import { errorRates } from '../models/evaluation/metrics.ts';
import { runEval } from '../models/evaluation/run.ts';
import type { ModalityEngine } from '../models/modality.ts';
import { BadImageError, BiokioskError } from '../protocol/errors.ts';

/** A modality whose template is the file's first byte; files starting with "!" make it throw a plain TypeError. */
function byteEngine(): ModalityEngine & { extracted: number } {
  return {
    name: 'iris',
    extracted: 0,
    async extract(image: Uint8Array) {
      this.extracted++;
      if (image[0] === 0x21) throw new TypeError('engine bug on this image');
      if (image[0] === 0x3f) throw new BadImageError('unreadable');
      return { template: image.slice(0, 1), quality: { score: 100, retryBelow: 0, measures: {} }, timings: {}, info: {} };
    },
    compare(a: Uint8Array, b: Uint8Array) {
      const score = 0 - Math.abs(a[0]! - b[0]!);
      return { score, native: { name: 'd', value: -score }, threshold: -5, decision: score >= -5 ? 'match' : 'no_match' };
    },
    async close() {},
  };
}

async function folder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bk-evalprop-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

describe('proposed: eval input errors and failures', () => {
  it('refuses a dataset of one image per identity before extracting anything (input error)', async () => {
    const ds = await loadDataset(await folder({ 'a_1.png': 'A', 'b_1.png': 'B', 'c_1.png': 'C' }));
    const engine = byteEngine();
    const err = await runEval(engine, ds, { impostors: { kind: 'all' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BiokioskError);
    expect(err).toMatchObject({ code: 'NoPairs', kind: 'input' });
    expect(engine.extracted).toBe(0);
  });

  it('says how many images failed when no genuine pair is left (input error)', async () => {
    const ds = await loadDataset(await folder({ 'a_1.png': '?', 'a_2.png': '?', 'b_1.png': 'B' }));
    const err = await runEval(byteEngine(), ds, { impostors: { kind: 'all' } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NoPairs', kind: 'input' });
    expect((err as Error).message).toMatch(/2 of 3 images failed to extract/);
  });

  it('lists an engine bug on one image as that image\'s failure instead of stopping the run', async () => {
    const ds = await loadDataset(await folder({ 'a_1.png': 'A', 'a_2.png': 'A', 'b_1.png': 'K', 'b_2.png': '!' }));
    const r = await runEval(byteEngine(), ds, { impostors: { kind: 'all' } });
    expect(r.failures).toEqual([{ path: ds.items[3]!.path, code: 'TypeError', message: 'engine bug on this image' }]);
    expect(r.genuine).toMatchObject({ pairs: 1, excluded: 1 });
  });

  it('reads the header of a CSV saved with a byte-order mark', async () => {
    const dir = await folder({ 'l.csv': '\uFEFFpath,identity\na.png,x\nb.png,y\n' });
    const ds = await loadDataset(join(dir, 'l.csv'));
    expect(ds.items.map((i) => i.identity)).toEqual(['x', 'y']);
  });
});

describe('proposed: DET curve keeps its tail and its top', () => {
  it('keeps the low-FMR tail of a million impostor scores', () => {
    const n = 1_000_000;
    const imp = Float64Array.from({ length: n }, (_, j) => (j + 0.5) / n);
    const gen = Float64Array.from({ length: 1000 }, (_, i) => 0.9 + (i + 0.25) * 1e-4);
    const r = errorRates(gen, imp);
    expect(r.det.length).toBeLessThanOrEqual(2000);
    expect(r.det.filter((p) => p.fmr > 0 && p.fmr < 1e-3).length).toBeGreaterThan(100);
    expect(r.det[0]).toEqual({ threshold: imp[0], fmr: 1, fnmr: 0 });
    expect(r.det.at(-1)).toEqual({ threshold: Infinity, fmr: 0, fnmr: 1 });
  });

  it('extends the axes past 50% only when the curve goes there, and groups large counts', () => {
    const good = errorRates(Float64Array.from([0.8, 0.9, 0.95]), Float64Array.from({ length: 12_345 }, (_, i) => i / 20_000));
    const weak = errorRates(Float64Array.from({ length: 100 }, (_, i) => i / 100), Float64Array.from({ length: 1000 }, (_, i) => 0.3 + i / 2000));
    expect(detSvg(good, 't')).not.toContain('>95%<');
    expect(detSvg(good, 't')).toContain('12,345 impostor');
    expect(detSvg(weak, 't')).toContain('>95%<');
  });
});
