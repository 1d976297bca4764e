/**
 * Orientation field from the `fp_orientation` graph's output. The graph smooths the structure tensor as doubled-angle
 * vectors (so opposite gradients reinforce instead of cancelling); here each pixel gets the ridge-normal angle
 * 0.5 * atan2(V, U) (image coordinates, y down, modulo pi) and the certainty |(U, V)| in [0, 1].
 */
import { atan2, atan2Approx } from './atan2.ts';
export interface OrientationField {
  /** Ridge-normal angle, radians in (-pi/2, pi/2]. The ridge itself runs at normal + pi/2. */
  normal: Float32Array;
  /** Orientation certainty 0-1 (coherence of the gradients, smoothed). */
  certainty: Float32Array;
}

/**
 * Full-resolution field from the graph's half-resolution [U, V, Uc, Vc]: at each half-resolution pixel the scale
 * with the longer vector (the more certain one) is kept, then the doubled-angle vectors are interpolated
 * bilinearly (pixel centres: full x sits at half (x + 0.5) / 2 - 0.5) and turned into an angle and a length.
 * Interpolating the vectors, not the angles, keeps the wrap-around at +-pi/2 harmless.
 */
export function orientationFromGraph(half: { data: Float32Array; width: number; height: number }, width: number, height: number): OrientationField {
  const normal = new Float32Array(width * height);
  const certainty = new Float32Array(width * height);
  interpolateField(half, width, height, normal, certainty);
  return { normal, certainty };
}

/**
 * The ridge-normal angle alone, as orientationFromGraph gives it but with atan2Approx (within 1e-6 rad) and no
 * certainty: the refinement's field, which only selects filters.
 */
export function normalFromGraph(half: { data: Float32Array; width: number; height: number }, width: number, height: number): Float32Array {
  const normal = new Float32Array(width * height);
  interpolateField(half, width, height, normal, null);
  return normal;
}

/** Fills `normal` (and `certainty` when given: then with the exact atan2) from the graph's half-resolution output. */
function interpolateField(half: { data: Float32Array; width: number; height: number }, width: number, height: number, normal: Float32Array, certainty: Float32Array | null): void {
  const { width: hw, height: hh } = half;
  const plane = hw * hh;
  const data = pickScale(half.data, plane);
  // Per column: the two half-resolution columns and the weight of the right one (edges clamp).
  const x0s = new Int32Array(width);
  const x1s = new Int32Array(width);
  const fxs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const s = Math.min(hw - 1, Math.max(0, (x + 0.5) / 2 - 0.5));
    const x0 = Math.floor(s);
    x0s[x] = x0;
    x1s[x] = Math.min(hw - 1, x0 + 1);
    fxs[x] = s - x0;
  }
  for (let y = 0; y < height; y++) {
    const s = Math.min(hh - 1, Math.max(0, (y + 0.5) / 2 - 0.5));
    const y0 = Math.floor(s);
    const fy = s - y0;
    const r0 = y0 * hw;
    const r1 = Math.min(hh - 1, y0 + 1) * hw;
    for (let x = 0; x < width; x++) {
      const x0 = x0s[x]!;
      const x1 = x1s[x]!;
      const fx = fxs[x]!;
      const u0 = data[r0 + x0]! + fx * (data[r0 + x1]! - data[r0 + x0]!);
      const u1 = data[r1 + x0]! + fx * (data[r1 + x1]! - data[r1 + x0]!);
      const v0 = data[plane + r0 + x0]! + fx * (data[plane + r0 + x1]! - data[plane + r0 + x0]!);
      const v1 = data[plane + r1 + x0]! + fx * (data[plane + r1 + x1]! - data[plane + r1 + x0]!);
      const u = u0 + fy * (u1 - u0);
      const v = v0 + fy * (v1 - v0);
      const i = y * width + x;
      if (certainty) {
        normal[i] = 0.5 * atan2(v, u);
        certainty[i] = Math.min(1, Math.sqrt(u * u + v * v));
      } else normal[i] = 0.5 * atan2Approx(v, u);
    }
  }
}

/** [U, V] planes of the more certain scale per pixel, from the four planes [U, V, Uc, Vc]. */
export function pickScale(field: Float32Array, plane: number): Float32Array {
  if (field.length !== 4 * plane) throw new Error(`orientation field has ${field.length / plane} planes, expected 4`);
  const out = new Float32Array(2 * plane);
  for (let i = 0; i < plane; i++) {
    const u = field[i]!, v = field[plane + i]!, uc = field[2 * plane + i]!, vc = field[3 * plane + i]!;
    const coarse = uc * uc + vc * vc > u * u + v * v;
    out[i] = coarse ? uc : u;
    out[plane + i] = coarse ? vc : v;
  }
  return out;
}

/** Smallest difference between two axial angles (modulo pi), in [0, pi/2]. */
export function axialDifference(a: number, b: number): number {
  let d = Math.abs(a - b) % Math.PI;
  if (d > Math.PI / 2) d = Math.PI - d;
  return d;
}
