/**
 * Parity of each converted ONNX net with face-api itself (TF.js, WASM backend) on identical inputs taken from
 * every face in face-api's sample photos: max difference <= 1e-3 of the output's scale, descriptor cosine >= 0.9999.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../models/common/image.ts';
import { alignFace, CHIP_SIZE } from '../models/face/align.ts';
import { detectorInput } from '../models/face/detect.ts';
import { LANDMARK_INPUT, landmarkCrop } from '../models/face/landmarks.ts';
import { loadNet, runNet, type LoadedNet } from '../models/face/models.ts';
import { FacePipeline } from '../models/face/pipeline.ts';
import { FACE_API_DIR, sample, SAMPLE_NUMBERS } from './helpers/fixtures.ts';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
let tf: Any;
let faceapi: Any;
let nets: Record<'detector' | 'landmarks' | 'descriptor', LoadedNet>;
let pipeline: FacePipeline;

beforeAll(async () => {
  tf = require('@tensorflow/tfjs');
  require('@tensorflow/tfjs-backend-wasm');
  faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
  await tf.setBackend('wasm');
  await tf.ready();
  const dir = join(FACE_API_DIR, 'model');
  await faceapi.nets.tinyFaceDetector.loadFromDisk(dir);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(dir);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(dir);
  nets = {
    detector: await loadNet('face_detector_tiny'),
    landmarks: await loadNet('face_landmarks_68'),
    descriptor: await loadNet('face_descriptor_resnet29'),
  };
  pipeline = await FacePipeline.load();
});

afterAll(async () => {
  await Promise.all(Object.values(nets ?? {}).map((n) => n.session.release()));
  await pipeline?.close();
});

function compare(ours: Float32Array, ref: Float32Array): { maxDiff: number; scale: number } {
  expect(ours.length).toBe(ref.length);
  let maxDiff = 0;
  let scale = 0;
  for (let i = 0; i < ours.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(ours[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return { maxDiff, scale };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

async function reference(run: (t: Any) => Promise<Any>, pixels: Float32Array, size: number): Promise<Float32Array> {
  const t = tf.tensor(pixels, [size, size, 3], 'float32');
  try {
    const out = await run(t);
    if (out instanceof Float32Array) return out;
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return data;
  } finally {
    t.dispose();
  }
}

describe('converted face nets agree with face-api (TF.js WASM)', () => {
  it('on every face of every sample photo', async () => {
    let faces = 0;
    for (const i of SAMPLE_NUMBERS) {
      const bytes = sample(i);
      const img = await decodeImage(bytes);

      const dIn = detectorInput(img, 416);
      const ours = await runNet(nets.detector, dIn.pixels, 416, 416);
      const ref = await reference((t) => faceapi.nets.tinyFaceDetector.forward(t, 416), dIn.pixels, 416);
      const d = compare(ours.data, ref);
      expect(d.maxDiff, `detector, sample ${i}`).toBeLessThanOrEqual(1e-3 * d.scale);

      for (const face of await pipeline.detectAll(bytes)) {
        faces++;
        const crop = landmarkCrop(img, face.box);
        const lOurs = await runNet(nets.landmarks, crop.pixels, LANDMARK_INPUT, LANDMARK_INPUT);
        const lRef = await reference((t) => faceapi.nets.faceLandmark68Net.forward(t), crop.pixels, LANDMARK_INPUT);
        const l = compare(lOurs.data, lRef);
        expect(l.maxDiff, `landmarks, sample ${i}`).toBeLessThanOrEqual(1e-3 * l.scale);

        const chip = alignFace(img, face.landmarks);
        const eOurs = await runNet(nets.descriptor, chip.pixels, CHIP_SIZE, CHIP_SIZE);
        const eRef = await reference((t) => faceapi.nets.faceRecognitionNet.computeFaceDescriptor(t), chip.pixels, CHIP_SIZE);
        const e = compare(eOurs.data, eRef);
        expect(e.maxDiff, `descriptor, sample ${i}`).toBeLessThanOrEqual(1e-3 * e.scale);
        expect(cosine(eOurs.data, eRef), `descriptor cosine, sample ${i}`).toBeGreaterThanOrEqual(0.9999);
      }
    }
    // face-api's samples hold about 20 faces; a drop means detection broke.
    expect(faces).toBeGreaterThanOrEqual(15);
  });
});
