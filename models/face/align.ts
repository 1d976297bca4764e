/**
 * Alignment stage: a similarity transform (rotation, uniform scale, translation) that puts the eyes, nose tip and
 * mouth corners on canonical positions, then a 150x150 chip sampled through it.
 *
 * The canonical positions follow the dlib-style framing face-api uses for its descriptor net (the centroid of the
 * eye centres and the mouth centre at (0.50, 0.43) of the chip, the mean eye-to-mouth distance 0.45 of the chip
 * side), with the five points' relative geometry being the mean face measured by models/face/derive-template.ts
 * on face-api's sample photographs (9 frontal faces; symmetrised). Unlike face-api, the chip is also rotated so the eyes are level.
 */
import type { Affine } from '../common/raster.ts';
import { warpAffineToFloat, type Raster } from '../common/raster.ts';
import { referencePoints, type Point } from './landmarks.ts';

export const CHIP_SIZE = 150;

/** Mean geometry of the five points in units of the inter-ocular distance, origin between the eyes, y down. */
export const MEAN_FACE_5: Record<'leftEye' | 'rightEye' | 'nose' | 'mouthLeft' | 'mouthRight', Point> = {
  leftEye: { x: -0.5, y: 0 },
  rightEye: { x: 0.5, y: 0 },
  nose: { x: 0, y: 0.65 },
  mouthLeft: { x: -0.435, y: 1.06 },
  mouthRight: { x: 0.435, y: 1.06 },
};

const REL_X = 0.5;
const REL_Y = 0.43;
const REL_SCALE = 0.45;

/** Canonical positions of the five points in a chip of `size` pixels. */
export function canonicalPoints(size = CHIP_SIZE): Point[] {
  const f = MEAN_FACE_5;
  const mouth = { x: (f.mouthLeft.x + f.mouthRight.x) / 2, y: (f.mouthLeft.y + f.mouthRight.y) / 2 };
  const eyeToMouth = (Math.hypot(mouth.x - f.leftEye.x, mouth.y - f.leftEye.y) + Math.hypot(mouth.x - f.rightEye.x, mouth.y - f.rightEye.y)) / 2;
  const k = (REL_SCALE * size) / eyeToMouth; // chip pixels per inter-ocular unit
  const cx = (f.leftEye.x + f.rightEye.x + mouth.x) / 3;
  const cy = (f.leftEye.y + f.rightEye.y + mouth.y) / 3;
  const ox = REL_X * size - k * cx;
  const oy = REL_Y * size - k * cy;
  return [f.leftEye, f.rightEye, f.nose, f.mouthLeft, f.mouthRight].map((p) => ({ x: ox + k * p.x, y: oy + k * p.y }));
}

/**
 * Least-squares similarity transform taking `from` points onto `to` points (closed form for 2-D).
 * Returned as the affine [a, b, c, d, e, f] with to = (a*x + b*y + c, d*x + e*y + f).
 */
export function fitSimilarity(from: Point[], to: Point[]): Affine {
  const n = from.length;
  const fm = { x: from.reduce((s, p) => s + p.x, 0) / n, y: from.reduce((s, p) => s + p.y, 0) / n };
  const tm = { x: to.reduce((s, p) => s + p.x, 0) / n, y: to.reduce((s, p) => s + p.y, 0) / n };
  let dot = 0;
  let cross = 0;
  let norm = 0;
  for (let i = 0; i < n; i++) {
    const px = from[i]!.x - fm.x;
    const py = from[i]!.y - fm.y;
    const qx = to[i]!.x - tm.x;
    const qy = to[i]!.y - tm.y;
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
    norm += px * px + py * py;
  }
  const a = dot / norm; // s * cos(theta)
  const b = cross / norm; // s * sin(theta)
  return [a, -b, tm.x - (a * fm.x - b * fm.y), b, a, tm.y - (b * fm.x + a * fm.y)];
}

export interface AlignedChip {
  pixels: Float32Array;
  /** chip -> image transform */
  transform: Affine;
  /** in-plane rotation of the face in the image, degrees (positive: clockwise as displayed) */
  rollDegrees: number;
  /** image pixels per chip pixel */
  scale: number;
}

export function alignFace(img: Raster, landmarks: Point[], size = CHIP_SIZE): AlignedChip {
  const r = referencePoints(landmarks);
  const image = [r.leftEye, r.rightEye, r.nose, r.mouthLeft, r.mouthRight];
  const m = fitSimilarity(canonicalPoints(size), image);
  // The fit is in continuous coordinates (0 = the left edge of the first pixel); sampling works on pixel indices.
  const [a, b, c, d, e, f] = m;
  const byIndex: Affine = [a, b, c + 0.5 * (a + b) - 0.5, d, e, f + 0.5 * (d + e) - 0.5];
  return {
    pixels: warpAffineToFloat(img, size, size, byIndex),
    transform: m,
    rollDegrees: (Math.atan2(m[3], m[0]) * 180) / Math.PI,
    scale: Math.hypot(m[0], m[3]),
  };
}
