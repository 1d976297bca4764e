/**
 * A face dataset anyone can regenerate: every well-detected face in face-api's sample photos is one identity, and
 * each impression of it is a new simulated capture (re-framed, rotated, rescaled, re-lit, blurred, recompressed),
 * deterministic from a seed. Files are named `{identity}_{impression}.jpg` for `biokiosk eval`.
 *
 * What it measures: robustness of the pipeline to capture variation. What it cannot: ageing, expression or
 * session changes (every impression comes from one photo), and some sample photos may show the same person
 * twice, which would count as impostor pairs. For accuracy on people, run `biokiosk eval` on a real set (e.g. LFW).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeImage } from '../common/image.ts';
import { mulberry32, uniform } from '../common/prng.ts';
import { faceApiDir } from './convert.ts';
import { FacePipeline } from './pipeline.ts';
import { estimateYaw } from './quality.ts';

export interface FaceSynthOptions {
  out: string;
  impressions: number;
  seed: number;
  /** Faces narrower than this (pixels, in the photo) are left out: too small to be a fair identity. */
  minFaceWidth?: number;
  onProgress?: (done: number, total: number) => void;
}

export async function synthesizeFaceDataset(o: FaceSynthOptions): Promise<{ identities: number; files: string[] }> {
  await mkdir(o.out, { recursive: true });
  const rand = mulberry32(o.seed);
  const pipeline = await FacePipeline.load();
  const files: string[] = [];
  const faces: Array<{ photo: Buffer; id: string; cx: number; cy: number; size: number }> = [];
  try {
    for (let i = 1; i <= 6; i++) {
      const photo = await sharp(join(faceApiDir(), 'demo', `sample${i}.jpg`)).rotate().jpeg({ quality: 95 }).toBuffer();
      const img = await decodeImage(photo);
      const found = await pipeline.detectAll(photo);
      found.forEach((f, j) => {
        const width = f.box.width * img.scale;
        // Profile faces and tiny or false detections make unfair identities.
        if (width < (o.minFaceWidth ?? 150) || Math.abs(estimateYaw(f.landmarks)) > 25 || f.box.score < 0.6) return;
        faces.push({ photo, id: `s${i}f${j}`, cx: (f.box.x + f.box.width / 2) * img.scale, cy: (f.box.y + f.box.height / 2) * img.scale, size: Math.max(f.box.width, f.box.height) * img.scale });
      });
    }
  } finally {
    await pipeline.close();
  }
  const total = faces.length * o.impressions;
  for (const face of faces) {
    const meta = await sharp(face.photo).metadata();
    for (let k = 1; k <= o.impressions; k++) {
      const side = face.size * uniform(rand, 1.8, 2.6);
      const cx = face.cx + face.size * uniform(rand, -0.12, 0.12);
      const cy = face.cy + face.size * uniform(rand, -0.12, 0.12);
      const left = Math.round(Math.max(0, cx - side / 2));
      const top = Math.round(Math.max(0, cy - side / 2));
      const width = Math.round(Math.min(meta.width! - left, side));
      const height = Math.round(Math.min(meta.height! - top, side));
      const path = join(o.out, `${face.id}_${k}.jpg`);
      let img = sharp(face.photo)
        .extract({ left, top, width, height })
        .rotate(uniform(rand, -10, 10), { background: { r: 128, g: 128, b: 128 } })
        .resize({ width: Math.round(uniform(rand, 280, 480)) })
        .modulate({ brightness: uniform(rand, 0.75, 1.25) });
      const blur = uniform(rand, 0, 1.2);
      if (blur > 0.3) img = img.blur(blur);
      await img.jpeg({ quality: Math.round(uniform(rand, 60, 95)) }).toFile(path);
      files.push(path);
      o.onProgress?.(files.length, total);
    }
  }
  return { identities: faces.length, files };
}
