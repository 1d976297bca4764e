/**
 * Converts face-api's TF.js face models into ONNX files. Pure of side effects apart from reading the weights;
 * `models/build.ts` writes the files and the manifest.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { GraphBuilder } from '../onnx/graph.ts';
import { buildLandmarkNet, buildRecognitionNet, buildTinyFaceDetector } from './nets.ts';
import { readTfjsWeights } from './tfjs-weights.ts';

export const SOURCE_PACKAGE = '@vladmandic/face-api';

export interface FaceNetSpec {
  /** Our name for the net; also the ONNX file's base name. */
  name: 'face_detector_tiny' | 'face_landmarks_68' | 'face_descriptor_resnet29';
  /** The TF.js manifest in face-api's model folder. */
  sourceManifest: string;
  build: (w: Awaited<ReturnType<typeof readTfjsWeights>>) => GraphBuilder;
  inputs: Record<string, Array<number | string>>;
  outputs: Record<string, Array<number | string>>;
  description: string;
}

export const FACE_NETS: FaceNetSpec[] = [
  {
    name: 'face_detector_tiny',
    sourceManifest: 'tiny_face_detector_model-weights_manifest.json',
    build: buildTinyFaceDetector,
    inputs: { pixels: [1, 'height', 'width', 3] },
    outputs: { boxes: [1, 'grid_h', 'grid_w', 25] },
    description: 'Tiny-YOLOv2-style face detector; 5 anchors x (x, y, w, h, objectness) per cell of a 32-pixel grid.',
  },
  {
    name: 'face_landmarks_68',
    sourceManifest: 'face_landmark_68_model-weights_manifest.json',
    build: buildLandmarkNet,
    inputs: { pixels: [1, 112, 112, 3] },
    outputs: { landmarks: [1, 136] },
    description: '68 facial landmarks (iBUG 300-W order) as x,y pairs relative to a 112x112 face crop.',
  },
  {
    name: 'face_descriptor_resnet29',
    sourceManifest: 'face_recognition_model-weights_manifest.json',
    build: buildRecognitionNet,
    inputs: { pixels: [1, 150, 150, 3] },
    outputs: { descriptor: [1, 128] },
    description: "dlib's ResNet-29 face descriptor (face-api port): 128-D embedding of a 150x150 aligned face chip.",
  },
];

const require = createRequire(import.meta.url);

export function faceApiDir(): string {
  return dirname(require.resolve(`${SOURCE_PACKAGE}/package.json`));
}

export function faceApiVersion(): string {
  return (require(`${SOURCE_PACKAGE}/package.json`) as { version: string }).version;
}

export async function convertFaceNet(spec: FaceNetSpec): Promise<Uint8Array> {
  const weights = await readTfjsWeights(join(faceApiDir(), 'model', spec.sourceManifest));
  const graph = spec.build(weights);
  return graph.serialize({
    source: `${SOURCE_PACKAGE}@${faceApiVersion()}/model/${spec.sourceManifest}`,
    license: 'MIT (weights from @vladmandic/face-api; descriptor originally from dlib)',
    description: spec.description,
  });
}
