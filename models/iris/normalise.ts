/**
 * Daugman's rubber sheet: the annulus between the pupil and limbus circles (not concentric in general) unwrapped to
 * a rows x cols polar image. Column j is the angle 2 pi j / cols (0 = to the right, growing clockwise on screen as y
 * points down); row i is the fraction rho of the way from the pupil boundary to the limbus along that angle, over
 * params.rhoRange. Samples outside the image are NaN.
 */
import type { Circle } from './segment/circles.ts';
import { sample, type FloatImage } from './segment/image-ops.ts';

export interface PolarImage {
  rows: number;
  cols: number;
  /** rows x cols, row-major; NaN outside the image. */
  data: Float32Array;
  /** 1 where the sample fell on a glint. */
  glint: Uint8Array;
}

export function rubberSheet(
  img: FloatImage,
  pupil: Circle,
  iris: Circle,
  o: { rows: number; cols: number; rhoRange: readonly [number, number]; glints?: { mask: Uint8Array; width: number; height: number; scale: number } },
): PolarImage {
  const { rows, cols } = o;
  const data = new Float32Array(rows * cols);
  const glint = new Uint8Array(rows * cols);
  const [r0, r1] = o.rhoRange;
  const g = o.glints;
  for (let j = 0; j < cols; j++) {
    const t = (2 * Math.PI * j) / cols;
    const c = Math.cos(t);
    const s = Math.sin(t);
    const px = pupil.x + pupil.r * c;
    const py = pupil.y + pupil.r * s;
    const lx = iris.x + iris.r * c;
    const ly = iris.y + iris.r * s;
    for (let i = 0; i < rows; i++) {
      const rho = r0 + ((r1 - r0) * (i + 0.5)) / rows;
      const x = px + rho * (lx - px);
      const y = py + rho * (ly - py);
      data[i * cols + j] = sample(img, x, y);
      if (g) {
        const gx = Math.round((x + 0.5) / g.scale - 0.5);
        const gy = Math.round((y + 0.5) / g.scale - 0.5);
        if (gx >= 0 && gy >= 0 && gx < g.width && gy < g.height && g.mask[gy * g.width + gx]) glint[i * cols + j] = 1;
      }
    }
  }
  return { rows, cols, data, glint };
}
