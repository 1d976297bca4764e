import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildAll, MANIFEST_PATH, MODELS_DIR } from '../models/build.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('npm run models', () => {
  it('rebuilds byte-identical ONNX files and the same manifest as committed', async () => {
    const { manifest, files } = await buildAll();
    expect(files.size).toBe(6); // 3 face nets + 2 fingerprint graphs + 1 iris graph
    for (const [file, bytes] of files) {
      const onDisk = await readFile(join(MODELS_DIR, file));
      expect(sha256(onDisk), file).toBe(sha256(bytes));
    }
    const committed = JSON.parse(await readFile(MANIFEST_PATH, 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(manifest)));
  });

  it('records source package, version, hashes and shapes for every model', async () => {
    const committed = JSON.parse(await readFile(MANIFEST_PATH, 'utf8'));
    for (const entry of Object.values(committed.models) as Array<Record<string, any>>) {
      // Face nets are converted from face-api's weights; fingerprint graphs are built from our own script.
      const face = entry.modality === 'face';
      expect(entry.source.package).toBe(face ? '@vladmandic/face-api' : 'biokiosk');
      expect(entry.source.version).toMatch(/^\d+\.\d+\.\d+$/);
      expect(entry.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(entry.source.files.length).toBeGreaterThanOrEqual(face ? 2 : 1);
      expect(Object.keys(entry.inputs)).toEqual([face ? 'pixels' : 'image']);
      expect(Object.keys(entry.outputs).length).toBe(1);
    }
  });

  it('gives the same bytes twice in one process (no timestamps, no map-order effects)', async () => {
    const a = await buildAll();
    const b = await buildAll();
    for (const [file, bytes] of a.files) expect(sha256(b.files.get(file)!)).toBe(sha256(bytes));
  });
});
