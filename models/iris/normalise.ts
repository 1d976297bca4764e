/**
 * Daugman's rubber sheet: the annulus between the pupil and limbus circles (not concentric in general) unwrapped to
 * a rows x cols polar image. Column j is the angle 2 pi j / cols (0 = to the right, growing clockwise on screen as y
 * points down); row i is the fraction rho of the way from the pupil boundary to the limbus along that angle, over
 * params.rhoRange. Samples outside the image are NaN.
 *
 * The sampling positions come first (`sheetPoints`), so the extractor can smooth just the pixels they read
 * (`sampledPixels`) before sampling them (`sampleSheet`).
 */
import type { Circle } from './segment/circles.ts';
import { sample, type FloatImage, type PixelBox } from './segment/image-ops.ts';

export interface PolarImage {
  rows: number;
  cols: number;
  /** rows x cols, row-major; NaN outside the image. */
  data: Float32Array;
  /** 1 where the sample fell on a glint. */
  glint: Uint8Array;
}

export interface SheetOptions {
  rows: number;
  cols: number;
  rhoRange: readonly [number, number];
}

/** Where each polar sample lies in the image: rows x cols, row-major, like the polar image. */
export interface SheetPoints {
  rows: number;
  cols: number;
  x: Float64Array;
  y: Float64Array;
}

export interface GlintMask {
  mask: Uint8Array;
  width: number;
  height: number;
  /** Image pixels per mask pixel. */
  scale: number;
}

export function sheetPoints(pupil: Circle, iris: Circle, o: SheetOptions): SheetPoints {
  const { rows, cols } = o;
  const xs = new Float64Array(rows * cols);
  const ys = new Float64Array(rows * cols);
  const [r0, r1] = o.rhoRange;
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
      xs[i * cols + j] = px + rho * (lx - px);
      ys[i * cols + j] = py + rho * (ly - py);
    }
  }
  return { rows, cols, x: xs, y: ys };
}

/** The smallest box holding every pixel that bilinear sampling at `points` reads in a width x height image. */
export function sampledPixels(points: SheetPoints, width: number, height: number): PixelBox {
  const box = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
  for (let k = 0; k < points.x.length; k++) {
    const x = points.x[k]!;
    const y = points.y[k]!;
    if (!(x >= 0 && y >= 0 && x <= width - 1 && y <= height - 1)) continue;
    // As in `sample`: the 2 x 2 block from (min(w - 2, floor x), min(h - 2, floor y)).
    const x0 = Math.min(width - 2, Math.floor(x));
    const y0 = Math.min(height - 2, Math.floor(y));
    if (x0 < box.x0) box.x0 = x0;
    if (y0 < box.y0) box.y0 = y0;
    if (x0 + 1 > box.x1) box.x1 = x0 + 1;
    if (y0 + 1 > box.y1) box.y1 = y0 + 1;
  }
  return box;
}

export function sampleSheet(img: FloatImage, points: SheetPoints, glints?: GlintMask): PolarImage {
  const { rows, cols } = points;
  const data = new Float32Array(rows * cols);
  const glint = new Uint8Array(rows * cols);
  for (let k = 0; k < rows * cols; k++) {
    const x = points.x[k]!;
    const y = points.y[k]!;
    data[k] = sample(img, x, y);
    if (glints) {
      const gx = Math.round((x + 0.5) / glints.scale - 0.5);
      const gy = Math.round((y + 0.5) / glints.scale - 0.5);
      if (gx >= 0 && gy >= 0 && gx < glints.width && gy < glints.height && glints.mask[gy * glints.width + gx]) glint[k] = 1;
    }
  }
  return { rows, cols, data, glint };
}

export function rubberSheet(img: FloatImage, pupil: Circle, iris: Circle, o: SheetOptions & { glints?: GlintMask }): PolarImage {
  return sampleSheet(img, sheetPoints(pupil, iris, o), o.glints);
}
