/**
 * Orientation field from the `fp_orientation` graph's output. The graph smooths the structure tensor as doubled-angle
 * vectors (so opposite gradients reinforce instead of cancelling); here each pixel gets the ridge-normal angle
 * 0.5 * atan2(V, U) (image coordinates, y down, modulo pi) and the certainty |(U, V)| in [0, 1].
 */
export interface OrientationField {
  /** Ridge-normal angle, radians in (-pi/2, pi/2]. The ridge itself runs at normal + pi/2. */
  normal: Float32Array;
  /** Orientation certainty 0-1 (coherence of the gradients, smoothed). */
  certainty: Float32Array;
}

export function orientationFromGraph(field: Float32Array, width: number, height: number): OrientationField {
  const n = width * height;
  const normal = new Float32Array(n);
  const certainty = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = field[i]!;
    const v = field[n + i]!;
    normal[i] = 0.5 * Math.atan2(v, u);
    certainty[i] = Math.min(1, Math.sqrt(u * u + v * v));
  }
  return { normal, certainty };
}

/** Smallest difference between two axial angles (modulo pi), in [0, pi/2]. */
export function axialDifference(a: number, b: number): number {
  let d = Math.abs(a - b) % Math.PI;
  if (d > Math.PI / 2) d = Math.PI - d;
  return d;
}
