/**
 * Landmark stage: a square crop around the detected face, resized to the landmark net's 112x112 input, and the
 * mapping of its 68 outputs back to image pixels.
 */
import { resizeToFloat, scaleTranslate, type Raster } from '../common/raster.ts';
import type { FaceBox } from './detect.ts';

export const LANDMARK_INPUT = 112;

export interface Point {
  x: number;
  y: number;
}

export interface LandmarkCrop {
  pixels: Float32Array;
  /** image x = left + u * side, image y = top + v * side, for net outputs (u, v) in 0..1 */
  left: number;
  top: number;
  side: number;
}

/** A square of side max(w, h) centred on the box, so the face keeps its aspect ratio (as face-api's centred pad). */
export function landmarkCrop(img: Raster, box: FaceBox): LandmarkCrop {
  const side = Math.max(box.width, box.height);
  const left = box.x + box.width / 2 - side / 2;
  const top = box.y + box.height / 2 - side / 2;
  const scale = LANDMARK_INPUT / side;
  return { pixels: resizeToFloat(img, LANDMARK_INPUT, LANDMARK_INPUT, scaleTranslate(scale, left, top)), left, top, side };
}

export function landmarksToImage(out: Float32Array, crop: LandmarkCrop): Point[] {
  const pts: Point[] = [];
  for (let i = 0; i < 68; i++) pts.push({ x: crop.left + out[2 * i]! * crop.side, y: crop.top + out[2 * i + 1]! * crop.side });
  return pts;
}

const mean = (pts: Point[]): Point => ({ x: pts.reduce((s, p) => s + p.x, 0) / pts.length, y: pts.reduce((s, p) => s + p.y, 0) / pts.length });

/** The reference points used for alignment and quality, from the 68-point (iBUG) layout. */
export function referencePoints(l: Point[]): { leftEye: Point; rightEye: Point; nose: Point; mouthLeft: Point; mouthRight: Point } {
  // "left"/"right" as seen in the image: points 36-41 are the eye on the image's left.
  return {
    leftEye: mean(l.slice(36, 42)),
    rightEye: mean(l.slice(42, 48)),
    nose: l[30]!,
    mouthLeft: l[48]!,
    mouthRight: l[54]!,
  };
}
