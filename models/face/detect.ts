/**
 * Face detection stage: prepares the tiny detector's letterboxed input and decodes its grid output into boxes
 * (pure functions; the ONNX session is run by the pipeline).
 */
import { resizeToFloat, scaleTranslate, type Raster } from '../common/raster.ts';

/** The tiny detector's anchors, in grid cells (from face-api's TinyFaceDetector). */
const ANCHORS: Array<[number, number]> = [
  [1.603231, 2.094468],
  [6.041143, 7.080126],
  [2.882459, 3.518061],
  [4.266906, 5.178857],
  [9.041765, 10.66308],
];

export interface FaceBox {
  /** Pixels of the image the detector was given. */
  x: number;
  y: number;
  width: number;
  height: number;
  score: number;
}

export interface DetectorInput {
  pixels: Float32Array;
  size: number;
  /** detector pixels per image pixel */
  scale: number;
}

/**
 * Scales the image so its longer side is `size` and places it at the top-left of a black size x size square,
 * as face-api does (pad to square at the bottom/right, then resize).
 */
export function detectorInput(img: Raster, size: number): DetectorInput {
  const scale = size / Math.max(img.width, img.height);
  return { pixels: resizeToFloat(img, size, size, scaleTranslate(scale, 0, 0)), size, scale };
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/**
 * Decodes the [1, grid, grid, 25] output into boxes in the original image's pixels, keeps those scoring above
 * `minScore`, then suppresses overlaps (IoU above `iou`), best first.
 */
export function decodeDetections(out: Float32Array, grid: number, input: DetectorInput, imgW: number, imgH: number, minScore: number, iou: number): FaceBox[] {
  const boxes: FaceBox[] = [];
  const cell = input.size / grid; // detector pixels per grid cell
  for (let row = 0; row < grid; row++) {
    for (let col = 0; col < grid; col++) {
      for (let a = 0; a < ANCHORS.length; a++) {
        const o = ((row * grid + col) * ANCHORS.length + a) * 5;
        const score = sigmoid(out[o + 4]!);
        if (score <= minScore) continue;
        const [aw, ah] = ANCHORS[a]!;
        const cx = (col + sigmoid(out[o]!)) * cell;
        const cy = (row + sigmoid(out[o + 1]!)) * cell;
        const w = Math.exp(out[o + 2]!) * aw * cell;
        const h = Math.exp(out[o + 3]!) * ah * cell;
        const x0 = clamp((cx - w / 2) / input.scale, 0, imgW);
        const y0 = clamp((cy - h / 2) / input.scale, 0, imgH);
        const x1 = clamp((cx + w / 2) / input.scale, 0, imgW);
        const y1 = clamp((cy + h / 2) / input.scale, 0, imgH);
        if (x1 - x0 < 2 || y1 - y0 < 2) continue;
        boxes.push({ x: x0, y: y0, width: x1 - x0, height: y1 - y0, score });
      }
    }
  }
  return nonMaxSuppression(boxes, iou);
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

export function intersectionOverUnion(a: FaceBox, b: FaceBox): number {
  const ix = Math.max(0, Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x));
  const iy = Math.max(0, Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y));
  const inter = ix * iy;
  const union = a.width * a.height + b.width * b.height - inter;
  return union > 0 ? inter / union : 0;
}

export function nonMaxSuppression(boxes: FaceBox[], iou: number): FaceBox[] {
  const sorted = [...boxes].sort((p, q) => q.score - p.score);
  const kept: FaceBox[] = [];
  for (const b of sorted) if (kept.every((k) => intersectionOverUnion(k, b) <= iou)) kept.push(b);
  return kept;
}
