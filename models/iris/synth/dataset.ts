/**
 * `biokiosk synth iris`: N eyes x K captures, PNG files `{eye}_{sample}.png` (e0001_1.png ...) for `biokiosk eval`,
 * plus manifest.json and README.txt with the seed and parameters. Every byte depends on the seed alone.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { UsageError } from '../../../protocol/errors.ts';
import { syntheticIris } from './generator.ts';

export const IRIS_GENERATOR = 'biokiosk-iris-synth/1';

export async function synthesizeIrisDataset(o: { out: string; eyes: number; samples: number; seed: number; onProgress?: (done: number, total: number) => void }): Promise<{ files: string[]; ms: number }> {
  if (!Number.isInteger(o.eyes) || o.eyes < 1) throw new UsageError(`eyes must be a positive integer, got ${o.eyes}`);
  if (!Number.isInteger(o.samples) || o.samples < 1) throw new UsageError(`samples must be a positive integer, got ${o.samples}`);
  const t0 = performance.now();
  await mkdir(o.out, { recursive: true });
  const files: string[] = [];
  const digits = Math.max(4, String(o.eyes).length);
  for (let e = 0; e < o.eyes; e++) {
    for (let k = 0; k < o.samples; k++) {
      const img = syntheticIris(o.seed >>> 0, e, k);
      const path = join(o.out, `e${String(e + 1).padStart(digits, '0')}_${k + 1}.png`);
      await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 1 } }).toColourspace('b-w').png({ compressionLevel: 6 }).toFile(path);
      files.push(path);
    }
    o.onProgress?.(e + 1, o.eyes);
  }
  await writeFile(join(o.out, 'manifest.json'), JSON.stringify({ generator: IRIS_GENERATOR, seed: o.seed >>> 0, eyes: o.eyes, samples: o.samples, width: 320, height: 280, naming: '{eye}_{sample}.png' }, null, 2) + '\n');
  await writeFile(join(o.out, 'README.txt'), `Synthetic NIR irises (${IRIS_GENERATOR}): ${o.eyes} eyes x ${o.samples} captures, 320x280, seed ${o.seed >>> 0}. Regenerate: biokiosk synth iris --eyes ${o.eyes} --samples ${o.samples} --seed ${o.seed >>> 0} --out DIR\n`);
  return { files, ms: performance.now() - t0 };
}
