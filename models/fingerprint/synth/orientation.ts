/**
 * Orientation field from the singular points: the Sherlock-Monro zero-pole model,
 *   theta(z) = theta0 + 1/2 [ sum_cores g_c(arg(z - c)) - sum_deltas g_d(arg(z - d)) ] + beta(z),
 * with two corrections in the spirit of Vizcaya-Gerhardt and SFinGe:
 *  - g is a smooth monotone warp of the angle around each singularity (g(-pi) = -pi, g(pi) = pi), so loops and
 *    deltas are not all the same perfect shape, yet every singularity keeps its Poincare index;
 *  - beta is a continuous real-valued "dome" bending: the zero-pole model alone gives straight parallel ridges far
 *    from the singularities (and nothing at all for arches), while real ridges arch over the fingertip. Adding a
 *    continuous scalar to theta cannot create or remove singularities.
 * Angles are measured with atan2 in image coordinates (y down); theta is the ridge direction, in [0, pi).
 */
import type { Rng } from './random.ts';
import type { Pattern, Silhouette } from './types.ts';

export interface OrientationModel {
  pattern: Pattern;
  theta0: number;
  /** Warp coefficients per core, then per delta: g(a) = a + sum_j b_j sin(j (a + pi)). */
  coreWarps: number[][];
  deltaWarps: number[][];
  dome: { cx: number; s: number; hmax: number; yFull: number; yZero: number };
}

export function drawOrientationModel(r: Rng, pattern: Pattern, s: Silhouette): OrientationModel {
  const warp = (): number[] => {
    // Keep sum_j j |b_j| < 1 so g stays monotone (no extra singularities).
    const b1 = r.uniform(-0.25, 0.25);
    const b2 = r.uniform(-0.1, 0.1);
    const b3 = r.uniform(-0.05, 0.05);
    return [b1, b2, b3];
  };
  const topCore = pattern.cores.reduce((m, c) => Math.min(m, c.y), Infinity);
  const arch = pattern.cls === 'arch';
  const dome = arch
    ? // An arch is all dome: strongest bending around the centre, flat towards the crease at the bottom.
      { cx: s.cx + r.uniform(-0.1, 0.1) * s.rx, s: s.rx * r.uniform(0.3, 0.45), hmax: s.ry * r.uniform(0.2, 0.32), yFull: s.cy - 0.1 * s.ry, yZero: s.cy + 0.75 * s.ry }
    : // Loops and whorls: ridges above the highest core follow the fingertip.
      { cx: s.cx, s: s.rx * r.uniform(0.45, 0.6), hmax: s.ry * r.uniform(0.1, 0.2), yFull: topCore - 0.55 * s.ry, yZero: topCore - 0.12 * s.ry };
  // Zero-pole loops have their legs opposite the delta's direction around the core; turning the far field by
  // part of that direction lays the legs closer to horizontal, as on real loops.
  let theta0 = r.uniform(-0.06, 0.06);
  if (pattern.cls === 'left_loop' || pattern.cls === 'right_loop') {
    const c = pattern.cores[0]!;
    const d = pattern.deltas[0]!;
    let psi = Math.atan2(d.y - c.y, d.x - c.x);
    if (psi > Math.PI / 2) psi -= Math.PI; // right loops: delta on the left, use the mirrored angle
    theta0 += (psi / 2) * r.uniform(0.4, 0.7);
  }
  return {
    pattern,
    theta0,
    coreWarps: pattern.cores.map(warp),
    deltaWarps: pattern.deltas.map(warp),
    dome,
  };
}

function warpAngle(a: number, b: number[]): number {
  let g = a;
  for (let j = 0; j < b.length; j++) g += b[j]! * Math.sin((j + 1) * (a + Math.PI));
  return g;
}

/** Orientation at one point, not reduced modulo pi (continuous except across the arg branch cuts). */
export function orientationAt(m: OrientationModel, x: number, y: number): number {
  let t = m.theta0;
  const { cores, deltas } = m.pattern;
  for (let i = 0; i < cores.length; i++) t += 0.5 * warpAngle(Math.atan2(y - cores[i]!.y, x - cores[i]!.x), m.coreWarps[i]!);
  for (let i = 0; i < deltas.length; i++) t -= 0.5 * warpAngle(Math.atan2(y - deltas[i]!.y, x - deltas[i]!.x), m.deltaWarps[i]!);
  // Dome: ridges y = y0 - h exp(-(x-cx)^2 / 2s^2) have slope h (x-cx)/s^2 exp(...); h fades with y.
  const d = m.dome;
  const ramp = Math.min(1, Math.max(0, (d.yZero - y) / (d.yZero - d.yFull)));
  if (ramp > 0) {
    const h = d.hmax * ramp * ramp * (3 - 2 * ramp);
    const u = x - d.cx;
    t += Math.atan(((h * u) / (d.s * d.s)) * Math.exp((-u * u) / (2 * d.s * d.s)));
  }
  return t;
}

/** The field on a pixel grid, reduced to [0, pi). */
export function orientationField(m: OrientationModel, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let t = orientationAt(m, x, y) % Math.PI;
      if (t < 0) t += Math.PI;
      out[y * width + x] = t;
    }
  }
  return out;
}

/**
 * Poincare index of an orientation field along the border of the box [x0, x1] x [y0, y1] (pixel coordinates,
 * traversed in the positive sense of image-coordinate angles): about +1/2 around a core (loop), -1/2 around a
 * delta, 0 where the field is regular, +1 around a whorl's centre.
 */
export function poincareIndex(theta: Float32Array, width: number, x0: number, y0: number, x1: number, y1: number): number {
  const path: number[] = [];
  for (let x = x0; x < x1; x++) path.push(y0 * width + x);
  for (let y = y0; y < y1; y++) path.push(y * width + x1);
  for (let x = x1; x > x0; x--) path.push(y1 * width + x);
  for (let y = y1; y > y0; y--) path.push(y * width + x0);
  let sum = 0;
  for (let i = 0; i < path.length; i++) {
    let d = theta[path[(i + 1) % path.length]!]! - theta[path[i]!]!;
    if (d > Math.PI / 2) d -= Math.PI;
    else if (d <= -Math.PI / 2) d += Math.PI;
    sum += d;
  }
  return sum / (2 * Math.PI);
}
