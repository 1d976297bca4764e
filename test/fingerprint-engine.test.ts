/**
 * The fingerprint modality end to end: synthetic impressions -> extractor -> biokiosk-fingerprint/1 template ->
 * MCC matcher; the same through `biokiosk extract` / `match`, and through the verifier (enrol, attest, decide).
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { FingerprintEngine } from '../models/fingerprint/engine.ts';
import { synthesizeFingerprintDataset } from '../models/fingerprint/synth/index.ts';
import { decodeFingerprintTemplate, FINGERPRINT_TEMPLATE_FORMAT, MAX_TEMPLATE_BYTES } from '../models/fingerprint/template.ts';
import { createAttestation } from '../protocol/attestation.ts';
import { openVerifier } from '../verifier/setup.ts';
import { buildClaims, message } from './helpers/attest.ts';
import { tempDir } from './helpers/e2e.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', 'bin', 'biokiosk.js');
let dir: string;
let engine: FingerprintEngine;
/** files[finger][impression] */
const files: string[][] = [];

beforeAll(async () => {
  dir = await tempDir('bk-fp-engine-');
  const r = await synthesizeFingerprintDataset({ out: dir, fingers: 4, impressions: 3, seed: 7, workers: 0 });
  for (const f of r.files.filter((p) => p.endsWith('.png')).sort()) {
    const m = /f(\d+)_(\d+)\.png$/.exec(f)!;
    ((files[Number(m[1]) - 1] ??= [])[Number(m[2]) - 1] = f.startsWith('/') ? f : join(dir, f));
  }
  engine = await FingerprintEngine.create();
}, 120_000);

afterAll(async () => {
  await engine?.close();
});

describe('fingerprint modality', () => {
  it('extracts a standard template of at most 1 KB naming the extractor, and tells genuine from impostor', async () => {
    const { readFile } = await import('node:fs/promises');
    const templates: Uint8Array[][] = [];
    for (const finger of files) templates.push(await Promise.all(finger.map(async (f) => (await engine.extract(await readFile(f))).template)));
    for (const t of templates.flat()) {
      expect(t.length).toBeLessThanOrEqual(MAX_TEMPLATE_BYTES);
      const d = decodeFingerprintTemplate(t);
      expect(d.model).toEqual(engine.model);
      expect(d.record.minutiae.length).toBeGreaterThan(12);
      expect(d.record.resolution).toEqual({ x: 500, y: 500 });
    }
    const genuine: number[] = [];
    const impostor: number[] = [];
    for (let a = 0; a < templates.length; a++) {
      for (let b = a; b < templates.length; b++) {
        for (let i = 0; i < 3; i++) for (let j = a === b ? i + 1 : 0; j < 3; j++) (a === b ? genuine : impostor).push(engine.compare(templates[a]![i]!, templates[b]![j]!).score);
      }
    }
    expect(genuine.length).toBe(12);
    expect(impostor.length).toBe(54);
    // Every genuine pair of these clean-ish impressions scores above every impostor pair.
    expect(Math.min(...genuine)).toBeGreaterThan(Math.max(...impostor));
    expect(engine.compare(templates[0]![0]!, templates[0]![1]!).decision).toBe('match');
    expect(engine.compare(templates[0]![0]!, templates[1]![0]!).decision).toBe('no_match');
  }, 120_000);

  it('works through biokiosk extract and match (one of the two images as PGM)', async () => {
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    const { default: sharp } = await import('sharp');
    const { data, info } = await sharp(files[2]![2]!).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    const pgm = join(dir, 'b.pgm');
    await writeFile(pgm, Buffer.concat([Buffer.from(`P5\n${info.width} ${info.height}\n255\n`), data.subarray(0, info.width * info.height)]));
    await writeFile(a, (await run(process.execPath, [BIN, 'extract', '--modality', 'fingerprint', '--image', files[2]![0]!, '--json'])).stdout);
    await writeFile(b, (await run(process.execPath, [BIN, 'extract', '--modality', 'fingerprint', '--image', pgm, '--json'])).stdout);
    const x = JSON.parse((await run(process.execPath, [BIN, 'match', '--modality', 'fingerprint', a, b, '--json'])).stdout);
    expect(x).toMatchObject({ ok: true, modality: 'fingerprint', decision: 'match' });
    const bad = await run(process.execPath, [BIN, 'match', '--modality', 'face', a, b]).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(bad?.code).toBe(2);
    expect(bad?.stderr).toMatch(/fingerprint template, not face/);
  }, 120_000);

  it('takes --dpi: an image at 1000 dpi gives a 1000 dpi record that matches the same finger at 500 dpi', async () => {
    const { default: sharp } = await import('sharp');
    const hi = join(dir, 'hi.png');
    const meta = await sharp(files[1]![0]!).metadata();
    await sharp(files[1]![0]!).resize(meta.width! * 2, meta.height! * 2, { kernel: 'cubic' }).png().toFile(hi);
    const a = join(dir, 'dpi500.json');
    const b = join(dir, 'dpi1000.json');
    await writeFile(a, (await run(process.execPath, [BIN, 'extract', '--modality', 'fingerprint', '--image', files[1]![1]!, '--json'])).stdout);
    await writeFile(b, (await run(process.execPath, [BIN, 'extract', '--modality', 'fingerprint', '--image', hi, '--dpi', '1000', '--json'])).stdout);
    const { readFile } = await import('node:fs/promises');
    const rec = decodeFingerprintTemplate(Buffer.from(JSON.parse(await readFile(b, 'utf8')).template, 'base64')).record;
    // ISO 19794-2 stores pixels per centimetre: 1000 dpi is 394 px/cm, read back as 1000.76 dpi.
    expect(Math.abs(rec.resolution.x - 1000)).toBeLessThanOrEqual(1);
    expect(rec.resolution.y).toBe(rec.resolution.x);
    expect([rec.width, rec.height]).toEqual([meta.width! * 2, meta.height! * 2]);
    const x = JSON.parse((await run(process.execPath, [BIN, 'match', '--modality', 'fingerprint', a, b, '--json'])).stdout);
    expect(x).toMatchObject({ ok: true, decision: 'match' });
    for (const args of [['--modality', 'fingerprint', '--dpi', '100'], ['--modality', 'face', '--dpi', '1000']]) {
      const bad = await run(process.execPath, [BIN, 'extract', ...args, '--image', hi]).then(() => null, (e: { code: number; stderr: string }) => e);
      expect(bad?.code).toBe(2);
      expect(bad?.stderr).toMatch(/--dpi/);
    }
  }, 120_000);

  it('evaluates an FVC-named folder (1_1.tif ...) of 500 dpi images of another size', async () => {
    const { default: sharp } = await import('sharp');
    const { mkdir } = await import('node:fs/promises');
    const fvc = join(dir, 'fvc');
    await mkdir(fvc);
    const big = await tempDir('bk-fp-big-');
    const r = await synthesizeFingerprintDataset({ out: big, fingers: 3, impressions: 2, seed: 11, width: 300, height: 400, workers: 0 });
    for (const f of r.files.filter((p) => p.endsWith('.png'))) {
      const m = /f(\d+)_(\d+)\.png$/.exec(f)!;
      await sharp(f.startsWith('/') ? f : join(big, f)).tiff().toFile(join(fvc, `${Number(m[1])}_${m[2]}.tif`));
    }
    const out = JSON.parse((await run(process.execPath, [BIN, 'eval', '--modality', 'fingerprint', '--dataset', fvc, '--impostors', 'fvc', '--json'], { timeout: 120_000 })).stdout);
    expect(out).toMatchObject({ ok: true, modality: 'fingerprint', dataset: { images: 6, identities: 3 }, failures: [] });
    expect(out.genuine.pairs).toBe(3);
    expect(out.impostor.pairs).toBe(3);
    expect(out.genuine.scores.min).toBeGreaterThan(out.impostor.scores.max);
  }, 120_000);

  it('is enrolled and decided by the verifier like a face', async () => {
    const { readFile } = await import('node:fs/promises');
    const v = await openVerifier(await tempDir('bk-fp-ver-'), { allowedModels: [engine.model.sha256] });
    try {
      const enrol = await engine.extract(await readFile(files[3]![0]!));
      await v.store.enroll({ subject: 'dana', modality: 'fingerprint', template: enrol.template, templateFormat: FINGERPRINT_TEMPLATE_FORMAT, modelSha256: engine.model.sha256 });
      const ks = SoftwareKeyStore.ephemeral();
      await v.store.registerDevice({ ueid: 'counter-9', kid: ks.kid, publicJwk: ks.publicJwk as never, site: 's' });
      const attempt = async (file: string, seq: number) => {
        const x = await engine.extract(await readFile(file));
        const { claims } = await buildClaims(v.keys.fleet.publicJwk, {
          ueid: 'counter-9', seq, sub: 'dana', template: x.template, quality: x.quality.score,
          overrides: { modality: 'fingerprint', template_format: FINGERPRINT_TEMPLATE_FORMAT, model: engine.model, sensor: { make: 'virtual', model: 'R307', serial: 'vs-1', firmware: '1' } },
        });
        return message('counter-9', claims.att_id, await createAttestation(claims, ks));
      };
      const out = await v.verifier.handleBatch([await attempt(files[3]![1]!, 1), await attempt(files[1]![1]!, 2)]);
      expect(out.map((o) => o.decision)).toEqual(['match', 'no_match']);
    } finally {
      await v.close();
    }
  }, 120_000);
});
