import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { biokiosk } from './helpers/cli.ts';

describe('biokiosk synth|extract|match|eval --modality iris', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bk-iris-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('synthesizes a set in the eval naming, extracts, matches and evaluates it', async () => {
    const set = join(dir, 'set');
    const s = await biokiosk('synth', 'iris', '--eyes', '3', '--samples', '2', '--seed', '4', '--out', set, '--json');
    expect(s.code, s.stderr).toBe(0);
    expect((await readdir(set)).filter((f) => f.endsWith('.png')).sort()).toEqual(['e0001_1.png', 'e0001_2.png', 'e0002_1.png', 'e0002_2.png', 'e0003_1.png', 'e0003_2.png']);
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    const c = join(dir, 'c.json');
    for (const [img, out] of [['e0001_1.png', a], ['e0001_2.png', b], ['e0002_1.png', c]] as const) {
      const x = await biokiosk('extract', '--modality', 'iris', '--image', join(set, img), '--out', out, '--json');
      expect(x.code, x.stderr).toBe(0);
      expect(JSON.parse(x.stdout)).toMatchObject({ ok: true, format: 'biokiosk-iris/1', modality: 'iris' });
    }
    const same = JSON.parse((await biokiosk('match', '--modality', 'iris', a, b, '--json')).stdout);
    expect(same).toMatchObject({ decision: 'match', native: { name: 'hamming_distance' } });
    const other = JSON.parse((await biokiosk('match', '--modality', 'iris', a, c, '--json')).stdout);
    expect(other.decision).toBe('no_match');
    const e = await biokiosk('eval', '--modality', 'iris', '--dataset', set, '--json');
    expect(e.code, e.stderr).toBe(0);
    const r = JSON.parse(e.stdout);
    expect(r).toMatchObject({ modality: 'iris', genuine: { pairs: 3 }, impostor: { pairs: 12 }, failures: [] });
    // Every genuine pair scores above every impostor pair on this small set.
    expect(r.genuine.scores.min).toBeGreaterThan(r.impostor.scores.max);
  });

  it('refuses a fingerprint option and a bad image with exit code 2', async () => {
    expect((await biokiosk('synth', 'iris', '--fingers', '3', '--out', join(dir, 'x'))).code).toBe(2);
    const bad = await biokiosk('extract', '--modality', 'iris', '--image', join(dir, 'set', 'manifest.json'), '--json');
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout).error.code).toBe('BadImage');
  });
});
