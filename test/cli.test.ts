import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { samplePath } from './helpers/fixtures.ts';
import { biokiosk } from './helpers/cli.ts';



describe('biokiosk CLI', () => {
  it('extract --json writes a template that match reads; same face matches, another does not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bk-cli-'));
    const a = await biokiosk('extract', '--modality', 'face', '--image', samplePath(2), '--json', '--out', join(dir, 'a.json'));
    expect(a.code).toBe(0);
    const ja = JSON.parse(a.stdout);
    expect(ja).toMatchObject({ ok: true, modality: 'face', format: 'biokiosk-face/1', faceCount: 1 });
    expect(Buffer.from(ja.template, 'base64').length).toBeGreaterThan(512);
    expect(ja.timings).toHaveProperty('embed');
    expect(JSON.parse(await readFile(join(dir, 'a.json'), 'utf8')).template).toBe(ja.template);

    const b = await biokiosk('extract', '--modality', 'face', '--image', samplePath(6), '--json');
    await writeFile(join(dir, 'b.json'), b.stdout);
    const same = JSON.parse((await biokiosk('match', '--modality', 'face', join(dir, 'a.json'), join(dir, 'a.json'), '--json')).stdout);
    expect(same).toMatchObject({ ok: true, decision: 'match' });
    expect(same.native.value).toBe(0);
    const diff = await biokiosk('match', '--modality', 'face', join(dir, 'a.json'), join(dir, 'b.json'));
    expect(diff.code).toBe(0);
    expect(diff.stdout).toMatch(/^NO MATCH {2}euclidean_distance 0\.\d{4} \(threshold 0\.41\)/);
  });

  it('prints human output with quality measures and stage timings', async () => {
    const r = await biokiosk('extract', '--modality', 'face', '--image', samplePath(1));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/faces +\d+ seen, the largest used/);
    expect(r.stdout).toMatch(/sharpness/);
    expect(r.stdout).toMatch(/decode [\d.]+ ms, detect [\d.]+ ms, landmarks [\d.]+ ms, align [\d.]+ ms, embed [\d.]+ ms/);
  });

  it('exits 2 with a one-line message for bad usage and bad input', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bk-cli-'));
    await writeFile(join(dir, 'junk.jpg'), 'not a jpeg');
    await writeFile(join(dir, 'bad.json'), '{"template": 42}');
    const cases: Array<[string[], RegExp]> = [
      [['extract', '--modality', 'face', '--image', join(dir, 'junk.jpg')], /BadImage/],
      [['extract', '--modality', 'face', '--image', join(dir, 'missing.jpg')], /no such file/],
      [['extract', '--modality', 'nose', '--image', samplePath(2)], /unknown modality "nose"/],
      [['extract', '--modality', 'face'], /required option '--image/],
      [['extract', '--modality', 'face', '--image', samplePath(2), '--detector-size', '100'], /detector size must be a multiple of 32/],
      [['extract', '--modality', 'face', '--image', samplePath(2), '--detector-size', 'big'], /--detector-size must be an integer/],
      [['match', '--modality', 'face', join(dir, 'bad.json'), join(dir, 'bad.json')], /no base64 "template" field/],
      [['frobnicate'], /unknown command/],
    ];
    for (const [args, message] of cases) {
      const r = await biokiosk(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack traces for input errors
    }
  });

  it('exits 2 with a JSON error object when --json is given', async () => {
    const r = await biokiosk('extract', '--modality', 'face', '--image', join(tmpdir(), 'definitely-missing.png'), '--json');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: { code: 'CannotRead', message: expect.stringMatching(/no such file/) } });
  });

  it('has --help for every command, exit 0', async () => {
    for (const cmd of [[], ['extract'], ['match'], ['eval']]) {
      const r = await biokiosk(...cmd, '--help');
      expect(r.code, cmd.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/Usage: biokiosk/);
    }
  });
});
