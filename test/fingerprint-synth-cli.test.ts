import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../models/evaluation/dataset.ts';
import { synthesizeFingerprintDataset } from '../models/fingerprint/synth/dataset.ts';
import { biokiosk } from './helpers/cli.ts';



async function pngs(dir: string): Promise<Map<string, Buffer>> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.png')).sort();
  return new Map(await Promise.all(names.map(async (n) => [n, await readFile(join(dir, n))] as [string, Buffer])));
}

describe('biokiosk synth fingerprint', () => {
  it('writes N x K PNGs in the eval naming, with a manifest, deterministic from the seed', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bk-fpsynth-'));
    const a = join(root, 'a');
    const r = await biokiosk('synth', 'fingerprint', '--fingers', '3', '--impressions', '2', '--seed', '9', '--out', a, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ ok: true, modality: 'fingerprint', identities: 3, files: 6, seed: 9 });
    console.log(`[timing] CLI 3x2: ${j.timings.totalMs.toFixed(0)} ms wall, ${j.timings.masterMs.toFixed(0)} ms per master, ${j.timings.impressionMs.toFixed(1)} ms per impression, ${j.timings.workers} workers`);

    const files = await pngs(a);
    expect([...files.keys()]).toEqual(['f0001_1.png', 'f0001_2.png', 'f0002_1.png', 'f0002_2.png', 'f0003_1.png', 'f0003_2.png']);
    const meta = await sharp(files.get('f0001_1.png')!).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 256, height: 288, channels: 1 });
    const manifest = JSON.parse(await readFile(join(a, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ seed: 9, fingers: 3, impressions: 2, width: 256, height: 288, dpi: 500 });
    expect(await readFile(join(a, 'README.txt'), 'utf8')).toMatch(/seed 9/);

    // `biokiosk eval` reads it: identity = the part before the last `_`.
    const ds = await loadDataset(a);
    expect(ds.identities).toBe(3);
    expect(ds.items.map((i) => i.identity)).toEqual(['f0001', 'f0001', 'f0002', 'f0002', 'f0003', 'f0003']);

    // Same seed, same bytes, whether rendered on worker threads (CLI) or on this thread; another seed differs.
    const b = join(root, 'b');
    await synthesizeFingerprintDataset({ out: b, fingers: 3, impressions: 2, seed: 9, workers: 0 });
    const again = await pngs(b);
    for (const [name, bytes] of files) expect(again.get(name)!.equals(bytes), name).toBe(true);
    const c = join(root, 'c');
    await synthesizeFingerprintDataset({ out: c, fingers: 3, impressions: 2, seed: 10, workers: 0 });
    const other = await pngs(c);
    expect(other.get('f0001_1.png')!.equals(files.get('f0001_1.png')!)).toBe(false);
  });

  it('renders other sensor sizes', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'bk-fpsynth-')), 'big');
    const r = await biokiosk('synth', 'fingerprint', '--fingers', '2', '--impressions', '2', '--width', '416', '--height', '560', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^wrote 4 images of 2 fingers to .* per master, .* per impression/);
    const meta = await sharp(join(out, 'f0002_2.png')).metadata();
    expect(meta).toMatchObject({ width: 416, height: 560 });
  });

  it('exits 2 with a one-line message for bad usage', async () => {
    const out = join(tmpdir(), 'bk-fpsynth-never');
    const cases: Array<[string[], RegExp]> = [
      [['synth', 'voice', '--out', out], /synth supports: face, fingerprint, iris \(got "voice"\)/],
      [['synth', 'face', '--fingers', '3', '--out', out], /--fingers is for synth fingerprint only/],
      [['synth', 'fingerprint', '--fingers', '1', '--out', out], /--fingers must be an integer from 2/],
      [['synth', 'fingerprint', '--fingers', '2', '--width', '10', '--out', out], /--width must be an integer from 64 to 2048/],
    ];
    for (const [args, message] of cases) {
      const r = await biokiosk(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
    const missing = await biokiosk('synth', 'fingerprint', '--fingers', '2');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/required option '--out/);
  });
});
