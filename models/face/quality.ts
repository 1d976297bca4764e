/**
 * Face capture quality, 0-100, from four documented measures, each reported with its own 0-100 sub-score:
 *
 * - `interEyeDistance` (pixels in the image as captured): resolution of the face. 20 px or less scores 0;
 *   60 px or more scores 100 (the aligned 150x150 chip puts the eyes about 60 px apart, so more adds nothing).
 * - `sharpness`: variance of the 4-neighbour Laplacian of the chip's grey levels (centre 100x100). Scored on a log
 *   scale between 15 (blurred: 0) and 400 (crisp: 100).
 * - `exposure`: mean grey level of the chip centre; 70-190 scores 100, falling linearly to 0 at 20 and 240; the
 *   fraction of clipped pixels (grey < 8 or > 247) takes off up to the rest.
 * - `yaw` (degrees, estimated from the landmarks: the nose tip's position between the two cheek contours,
 *   asin of the normalised offset): 0-15 degrees scores 100, falling linearly to 0 at 45 degrees.
 *
 * The overall score is the geometric mean of the sub-scores, so one failing measure pulls it down hard.
 * Below `FACE_QUALITY_RETRY_BELOW` the capture should be retried.
 */
import { laplacianVariance, toGrey } from '../common/raster.ts';
import type { QualityReport } from '../modality.ts';
import type { Point } from './landmarks.ts';

export const FACE_QUALITY_RETRY_BELOW = 40;

const lin = (v: number, lo: number, hi: number) => Math.max(0, Math.min(100, ((v - lo) / (hi - lo)) * 100));

export function interEyeScore(px: number): number {
  return lin(px, 20, 60);
}

export function sharpnessScore(lapVar: number): number {
  if (lapVar <= 0) return 0;
  return lin(Math.log(lapVar), Math.log(15), Math.log(400));
}

export function exposureScore(meanGrey: number, clippedFraction: number): number {
  const level = meanGrey < 70 ? lin(meanGrey, 20, 70) : meanGrey > 190 ? lin(-meanGrey, -240, -190) : 100;
  return Math.max(0, level * (1 - Math.min(1, 2 * clippedFraction)));
}

export function yawScore(yawDegrees: number): number {
  return lin(-Math.abs(yawDegrees), -45, -15);
}

/** Yaw estimate from the 68 landmarks: where the nose tip sits between the left and right cheek contours. */
export function estimateYaw(l: Point[]): number {
  const nose = l[30]!;
  const left = l[2]!;
  const right = l[14]!;
  const dl = Math.hypot(nose.x - left.x, nose.y - left.y);
  const dr = Math.hypot(right.x - nose.x, right.y - nose.y);
  const r = (dl - dr) / Math.max(1e-6, dl + dr);
  return (Math.asin(Math.max(-1, Math.min(1, r))) * 180) / Math.PI;
}

export interface FaceQualityInput {
  landmarks: Point[];
  /** image pixels per landmark unit: landmarks measured on a downscaled copy are scaled back to the original */
  imageScale: number;
  chip: Float32Array;
  chipSize: number;
  detectionScore: number;
}

export function assessFaceQuality(q: FaceQualityInput): QualityReport {
  const l = q.landmarks;
  const eye = (from: number) => {
    const pts = l.slice(from, from + 6);
    return { x: pts.reduce((s, p) => s + p.x, 0) / 6, y: pts.reduce((s, p) => s + p.y, 0) / 6 };
  };
  const le = eye(36);
  const re = eye(42);
  const interEye = Math.hypot(re.x - le.x, re.y - le.y) * q.imageScale;

  const grey = toGrey(q.chip, q.chipSize * q.chipSize);
  const inner = centre(grey, q.chipSize, Math.round(q.chipSize * (2 / 3)));
  const lap = laplacianVariance(inner.data, inner.size, inner.size);
  let sum = 0;
  let clipped = 0;
  for (const v of inner.data) {
    sum += v;
    if (v < 8 || v > 247) clipped++;
  }
  const meanGrey = sum / inner.data.length;
  const clippedFraction = clipped / inner.data.length;
  const yaw = estimateYaw(l);

  const measures: QualityReport['measures'] = {
    interEyeDistance: { value: round(interEye, 1), score: round(interEyeScore(interEye)), unit: 'px' },
    sharpness: { value: round(lap, 1), score: round(sharpnessScore(lap)), note: 'variance of the Laplacian, chip centre' },
    exposure: { value: round(meanGrey, 1), score: round(exposureScore(meanGrey, clippedFraction)), unit: 'grey level', note: `${round(clippedFraction * 100, 1)}% clipped` },
    yaw: { value: round(yaw, 1), score: round(yawScore(yaw)), unit: 'degrees' },
  };
  const subs = Object.values(measures).map((m) => m.score);
  const geo = subs.some((s) => s <= 0) ? 0 : Math.exp(subs.reduce((s, v) => s + Math.log(v), 0) / subs.length);
  return { score: round(geo), retryBelow: FACE_QUALITY_RETRY_BELOW, measures: { ...measures, detection: { value: round(q.detectionScore, 3), score: round(q.detectionScore * 100), note: 'detector confidence (reported, not scored)' } } };
}

function centre(grey: Float32Array, size: number, inner: number): { data: Float32Array; size: number } {
  const off = Math.floor((size - inner) / 2);
  const out = new Float32Array(inner * inner);
  for (let y = 0; y < inner; y++) out.set(grey.subarray((y + off) * size + off, (y + off) * size + off + inner), y * inner);
  return { data: out, size: inner };
}

function round(v: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
