/** Smooth random fields for impressions: value noise (skin texture, dryness, wetness) on a coarse lattice. */
import type { Rng } from './random.ts';

/** Value noise in [0, 1]: random lattice values every `cell` pixels, smoothstep-interpolated. */
export function valueNoise(r: Rng, width: number, height: number, cell: number): Float32Array {
  const gw = Math.ceil(width / cell) + 2;
  const gh = Math.ceil(height / cell) + 2;
  const lattice = new Float32Array(gw * gh);
  for (let i = 0; i < lattice.length; i++) lattice[i] = r.next();
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const gy = y / cell;
    const y0 = Math.floor(gy);
    let fy = gy - y0;
    fy = fy * fy * (3 - 2 * fy);
    for (let x = 0; x < width; x++) {
      const gx = x / cell;
      const x0 = Math.floor(gx);
      let fx = gx - x0;
      fx = fx * fx * (3 - 2 * fx);
      const i = y0 * gw + x0;
      const top = lattice[i]! + (lattice[i + 1]! - lattice[i]!) * fx;
      const bottom = lattice[i + gw]! + (lattice[i + gw + 1]! - lattice[i + gw]!) * fx;
      out[y * width + x] = top + (bottom - top) * fy;
    }
  }
  return out;
}
