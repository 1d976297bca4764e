/**
 * Geometry of an impression: a rigid placement of the finger on the sensor, and an elastic (non-linear) skin
 * distortion after Cappelli, Maio and Maltoni's model: no distortion inside the contact centre, where friction
 * holds the skin, a full small rigid motion (rotation + translation) far out, and a smooth "brake" in between.
 * A faint low-frequency wobble is added so no two distortions share one shape.
 */
import type { Rng } from './random.ts';
import type { Point } from './types.ts';

/** Master point (cx, cy) goes to impression point (tx, ty), turned by `rotation`. */
export interface RigidPlacement {
  rotation: number;
  tx: number;
  ty: number;
  cx: number;
  cy: number;
}

export function masterToImpression(t: RigidPlacement, x: number, y: number): Point {
  const c = Math.cos(t.rotation);
  const s = Math.sin(t.rotation);
  const dx = x - t.cx;
  const dy = y - t.cy;
  return { x: t.tx + c * dx - s * dy, y: t.ty + s * dx + c * dy };
}

export function impressionToMaster(t: RigidPlacement, x: number, y: number): Point {
  const c = Math.cos(t.rotation);
  const s = Math.sin(t.rotation);
  const dx = x - t.tx;
  const dy = y - t.ty;
  return { x: t.cx + c * dx + s * dy, y: t.cy - s * dx + c * dy };
}

export interface ElasticDistortion {
  /** Centre of the undistorted contact area (impression coordinates) and the brake radii. */
  cx: number;
  cy: number;
  r1: number;
  r2: number;
  /** The rigid motion reached outside r2. */
  rotation: number;
  dx: number;
  dy: number;
  wobble: Array<{ ax: number; ay: number; kx: number; ky: number; phase: number }>;
}

/** `strength`: displacement (pixels) reached at the outer radius; `size`: typical finger radius in pixels. */
export function drawElastic(r: Rng, strength: number, centre: Point, size: number): ElasticDistortion {
  const dir = r.uniform(0, 2 * Math.PI);
  const shift = strength * r.uniform(0.4, 0.9);
  const r2 = size * r.uniform(0.8, 1.1);
  const wobble = [];
  for (let i = 0; i < 3; i++) {
    const d = r.uniform(0, Math.PI);
    const wl = r.uniform(80, 200);
    wobble.push({ ax: r.normal() * 0.12 * strength, ay: r.normal() * 0.12 * strength, kx: (Math.cos(d) * 2 * Math.PI) / wl, ky: (Math.sin(d) * 2 * Math.PI) / wl, phase: r.uniform(0, 2 * Math.PI) });
  }
  return {
    cx: centre.x + r.uniform(-0.15, 0.15) * size,
    cy: centre.y + r.uniform(-0.15, 0.15) * size,
    r1: size * r.uniform(0.25, 0.4),
    r2,
    rotation: ((r.uniform(-1, 1) * strength) / r2) * 0.6,
    dx: Math.cos(dir) * shift,
    dy: Math.sin(dir) * shift,
    wobble,
  };
}

/** Displacement to add to an impression point before mapping it back to the master (backward sampling). */
export function elasticOffset(e: ElasticDistortion, x: number, y: number, out: { x: number; y: number }): void {
  const ux = x - e.cx;
  const uy = y - e.cy;
  const d = Math.sqrt(ux * ux + uy * uy);
  let b = (d - e.r1) / (e.r2 - e.r1);
  b = b <= 0 ? 0 : b >= 1 ? 1 : b * b * (3 - 2 * b);
  // Small-angle rotation: cos ~ 1 - a^2/2, sin ~ a (|a| is a few degrees at most).
  const a = e.rotation;
  const c1 = -0.5 * a * a;
  let ox = (c1 * ux - a * uy + e.dx) * b;
  let oy = (a * ux + c1 * uy + e.dy) * b;
  for (const w of e.wobble) {
    const v = Math.sin(w.kx * x + w.ky * y + w.phase);
    ox += w.ax * v;
    oy += w.ay * v;
  }
  out.x = ox;
  out.y = oy;
}
