/**
 * The face pipeline, as named stages:
 *   decode (sharp; EXIF orientation) -> detect (tiny detector) -> landmarks (68 points) -> align (similarity
 *   transform to canonical eye/nose/mouth positions, 150x150 chip) -> embed (ResNet-29) -> L2-normalise.
 * Several faces: the largest is used and the count reported. No face: NoFaceDetected.
 */
import { BiokioskError } from '../../protocol/errors.ts';
import { decodeImage, type DecodeOptions } from '../common/image.ts';
import type { Raster } from '../common/raster.ts';
import type { QualityReport } from '../modality.ts';
import { alignFace, CHIP_SIZE } from './align.ts';
import { decodeDetections, detectorInput, type FaceBox } from './detect.ts';
import { LANDMARK_INPUT, landmarkCrop, landmarksToImage, type Point } from './landmarks.ts';
import { loadNet, runNet, type LoadedNet } from './models.ts';
import { assessFaceQuality } from './quality.ts';

export class NoFaceDetectedError extends BiokioskError {
  constructor(details?: Record<string, unknown>) {
    super('NoFaceDetected', 'no face was found in the image', { kind: 'input', details });
  }
}

export interface FacePipelineOptions {
  modelsDir?: string;
  /** ONNX Runtime intra-op threads (0: one per core). */
  threads?: number;
  /** Detector input side, a multiple of 32 (default 416). */
  detectorSize?: number;
  /**
   * Sides to try, in order, when the first finds no face (default [224, 320]): the tiny detector's anchors cover
   * a band of face sizes relative to its input, and at a kiosk the face often fills much of the frame.
   */
  fallbackSizes?: number[];
  /** Minimum detector confidence (default 0.5). */
  minDetectionScore?: number;
  decode?: DecodeOptions;
}

export interface FaceResult {
  embedding: Float32Array;
  faceCount: number;
  /** The face used, in original image pixels. */
  box: FaceBox;
  landmarks: Point[];
  quality: QualityReport;
  rollDegrees: number;
  image: { width: number; height: number; format: string };
  timings: { decode: number; detect: number; landmarks: number; align: number; embed: number; total: number };
  model: { name: string; sha256: string };
}

export class FacePipeline {
  private constructor(
    private readonly detector: LoadedNet,
    private readonly landmarker: LoadedNet,
    private readonly embedder: LoadedNet,
    private readonly options: Required<Pick<FacePipelineOptions, 'detectorSize' | 'minDetectionScore'>> & FacePipelineOptions,
  ) {}

  static async load(options: FacePipelineOptions = {}): Promise<FacePipeline> {
    const detectorSize = options.detectorSize ?? 416;
    if (!Number.isInteger(detectorSize) || detectorSize % 32 !== 0 || detectorSize < 64 || detectorSize > 1024) {
      throw new BiokioskError('BadConfig', `detector size must be a multiple of 32 between 64 and 1024, got ${detectorSize}`);
    }
    const minDetectionScore = options.minDetectionScore ?? 0.5;
    if (!(minDetectionScore > 0 && minDetectionScore < 1)) throw new BiokioskError('BadConfig', `minimum detection score must be in (0, 1), got ${minDetectionScore}`);
    // Pool threads that spin between runs take the cores from everything the kiosk does between frames (and from
    // the graphs' own JavaScript stages): measured slower with it, not faster.
    const o = { modelsDir: options.modelsDir, threads: options.threads, spinning: false };
    const [d, l, e] = await Promise.all([loadNet('face_detector_tiny', o), loadNet('face_landmarks_68', o), loadNet('face_descriptor_resnet29', o)]);
    return new FacePipeline(d, l, e, { ...options, detectorSize, minDetectionScore });
  }

  get model(): { name: string; sha256: string } {
    return { name: this.embedder.name, sha256: this.embedder.sha256 };
  }

  /** Faces at the configured detector size, else at each fallback size in turn. */
  private async detect(img: Raster): Promise<FaceBox[]> {
    for (const size of [this.options.detectorSize, ...(this.options.fallbackSizes ?? [224, 320])]) {
      const dIn = detectorInput(img, size);
      const dOut = await runNet(this.detector, dIn.pixels, size, size);
      const faces = decodeDetections(dOut.data, dOut.dims[1]!, dIn, img.width, img.height, this.options.minDetectionScore, 0.4);
      if (faces.length > 0) return faces;
    }
    return [];
  }

  /** Every face in the image with its landmarks, in decoded-image pixels (for tools such as derive-template). */
  async detectAll(bytes: Uint8Array): Promise<Array<{ box: FaceBox; landmarks: Point[] }>> {
    const img = await decodeImage(bytes, this.options.decode);
    const faces = await this.detect(img);
    const out: Array<{ box: FaceBox; landmarks: Point[] }> = [];
    for (const box of faces) {
      const crop = landmarkCrop(img, box);
      const lOut = await runNet(this.landmarker, crop.pixels, LANDMARK_INPUT, LANDMARK_INPUT);
      out.push({ box, landmarks: landmarksToImage(lOut.data, crop) });
    }
    return out;
  }

  async extract(bytes: Uint8Array): Promise<FaceResult> {
    const t0 = performance.now();
    const img = await decodeImage(bytes, this.options.decode);
    const t1 = performance.now();

    const faces = await this.detect(img);
    const t2 = performance.now();
    if (faces.length === 0) throw new NoFaceDetectedError({ width: img.original.width, height: img.original.height });
    const face = faces.reduce((best, f) => (f.width * f.height > best.width * best.height ? f : best));

    const crop = landmarkCrop(img, face);
    const lOut = await runNet(this.landmarker, crop.pixels, LANDMARK_INPUT, LANDMARK_INPUT);
    const landmarks = landmarksToImage(lOut.data, crop);
    const t3 = performance.now();

    const chip = alignFace(img, landmarks);
    const t4 = performance.now();

    const eOut = await runNet(this.embedder, chip.pixels, CHIP_SIZE, CHIP_SIZE);
    const embedding = l2normalise(eOut.data);
    const t5 = performance.now();

    const quality = assessFaceQuality({ landmarks, imageScale: img.scale, chip: chip.pixels, chipSize: CHIP_SIZE, detectionScore: face.score });
    const s = img.scale;
    return {
      embedding,
      faceCount: faces.length,
      box: { x: face.x * s, y: face.y * s, width: face.width * s, height: face.height * s, score: face.score },
      landmarks: landmarks.map((p) => ({ x: p.x * s, y: p.y * s })),
      quality,
      rollDegrees: chip.rollDegrees,
      image: img.original,
      timings: { decode: t1 - t0, detect: t2 - t1, landmarks: t3 - t2, align: t4 - t3, embed: t5 - t4, total: t5 - t0 },
      model: this.model,
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.detector.session.release(), this.landmarker.session.release(), this.embedder.session.release()]);
  }
}

export function l2normalise(v: Float32Array): Float32Array {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n);
  const out = new Float32Array(v.length);
  if (n === 0) return out;
  for (let i = 0; i < v.length; i++) out[i] = v[i]! / n;
  return out;
}
