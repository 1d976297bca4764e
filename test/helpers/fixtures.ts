import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
export const FACE_API_DIR = dirname(require.resolve('@vladmandic/face-api/package.json'));

/** face-api's sample photographs (1920 px wide JPEGs with EXIF), the faces every face test uses. */
export function samplePath(i: number): string {
  return join(FACE_API_DIR, 'demo', `sample${i}.jpg`);
}

export function sample(i: number): Buffer {
  return readFileSync(samplePath(i));
}

export const SAMPLE_NUMBERS = [1, 2, 3, 4, 5, 6];
