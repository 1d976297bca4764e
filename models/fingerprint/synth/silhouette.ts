/** The fingerprint area: a rounded silhouette (super-ellipse) with a soft edge. */
import type { Rng } from './random.ts';
import type { Silhouette } from './types.ts';

export function drawSilhouette(r: Rng, width: number, height: number): Silhouette {
  return {
    cx: width / 2 + r.uniform(-0.02, 0.02) * width,
    cy: height / 2 + r.uniform(-0.02, 0.02) * height,
    rx: width * r.uniform(0.4, 0.46),
    ry: height * r.uniform(0.42, 0.47),
    exponent: r.uniform(2.2, 2.8),
  };
}

/** Normalised super-ellipse radius: < 1 inside, 1 on the border. */
export function silhouetteRadius(s: Silhouette, x: number, y: number): number {
  const e = s.exponent;
  return (Math.abs((x - s.cx) / s.rx) ** e + Math.abs((y - s.cy) / s.ry) ** e) ** (1 / e);
}

/** silhouetteRadius on every pixel. */
export function silhouetteRadii(s: Silhouette, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  const e = s.exponent;
  // |u|^e per column and per row once, instead of two powers per pixel.
  const px = new Float64Array(width);
  for (let x = 0; x < width; x++) px[x] = Math.abs((x - s.cx) / s.rx) ** e;
  for (let y = 0; y < height; y++) {
    const py = Math.abs((y - s.cy) / s.ry) ** e;
    for (let x = 0; x < width; x++) out[y * width + x] = (px[x]! + py) ** (1 / e);
  }
  return out;
}

/** Foreground weight from radii: 1 inside, falling to 0 over about `edge` pixels at the border. */
export function silhouetteMask(s: Silhouette, radii: Float32Array, edge = 6): Float32Array {
  const m = new Float32Array(radii.length);
  const scale = Math.min(s.rx, s.ry);
  for (let i = 0; i < radii.length; i++) {
    const d = (1 - radii[i]!) * scale; // approx. distance inside the border, pixels
    m[i] = d >= edge ? 1 : d <= 0 ? 0 : d / edge;
  }
  return m;
}
