/**
 * Measures the mean five-point face geometry (eye centres, nose tip, mouth corners) on face-api's sample photos,
 * in units of the inter-ocular distance with the eyes levelled: the source of MEAN_FACE_5 in align.ts.
 * Run: npx tsx models/face/derive-template.ts
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { faceApiDir } from './convert.ts';
import { referencePoints } from './landmarks.ts';
import { FacePipeline } from './pipeline.ts';
import { estimateYaw } from './quality.ts';

const pipeline = await FacePipeline.load({ minDetectionScore: 0.5 });
const names = ['leftEye', 'rightEye', 'nose', 'mouthLeft', 'mouthRight'] as const;
const sums = Object.fromEntries(names.map((n) => [n, { x: 0, y: 0 }])) as Record<(typeof names)[number], { x: number; y: number }>;
let used = 0;
let seen = 0;
for (let i = 1; i <= 6; i++) {
  const faces = await pipeline.detectAll(await readFile(join(faceApiDir(), 'demo', `sample${i}.jpg`)));
  for (const f of faces) {
    seen++;
    if (Math.abs(estimateYaw(f.landmarks)) > 20) continue; // frontal faces only
    const r = referencePoints(f.landmarks);
    const mid = { x: (r.leftEye.x + r.rightEye.x) / 2, y: (r.leftEye.y + r.rightEye.y) / 2 };
    const dx = r.rightEye.x - r.leftEye.x;
    const dy = r.rightEye.y - r.leftEye.y;
    const iod = Math.hypot(dx, dy);
    const c = dx / iod;
    const s = dy / iod;
    for (const n of names) {
      const p = r[n];
      const px = p.x - mid.x;
      const py = p.y - mid.y;
      sums[n].x += (c * px + s * py) / iod;
      sums[n].y += (-s * px + c * py) / iod;
    }
    used++;
  }
}
await pipeline.close();
console.log(`faces seen ${seen}, frontal used ${used}`);
for (const n of names) console.log(`${n}: { x: ${(sums[n].x / used).toFixed(2)}, y: ${(sums[n].y / used).toFixed(2)} }`);
