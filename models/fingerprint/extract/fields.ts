/**
 * Small numeric helpers shared by the stages: block grids, block statistics, bilinear lookup of block values at pixel
 * positions and the distance to the background.
 */

export interface BlockGrid {
  block: number;
  cols: number;
  rows: number;
}

export function blockGrid(width: number, height: number, block: number): BlockGrid {
  return { block, cols: Math.ceil(width / block), rows: Math.ceil(height / block) };
}

/** Gray-level standard deviation of every block (partial blocks at the right and bottom edges included). */
export function blockDeviation(gray: Float32Array, width: number, height: number, grid: BlockGrid): Float32Array {
  const out = new Float32Array(grid.cols * grid.rows);
  for (let by = 0; by < grid.rows; by++) {
    const y1 = Math.min(height, (by + 1) * grid.block);
    for (let bx = 0; bx < grid.cols; bx++) {
      const x1 = Math.min(width, (bx + 1) * grid.block);
      let s = 0;
      let s2 = 0;
      let count = 0;
      for (let y = by * grid.block; y < y1; y++) {
        for (let x = bx * grid.block; x < x1; x++) {
          const v = gray[y * width + x]!;
          s += v;
          s2 += v * v;
          count++;
        }
      }
      const mean = s / count;
      out[by * grid.cols + bx] = Math.sqrt(Math.max(0, s2 / count - mean * mean));
    }
  }
  return out;
}

/** Bilinear interpolation of per-block values (given at block centres) at pixel (x, y). */
export function blockValueAt(values: Float32Array, grid: BlockGrid, x: number, y: number): number {
  const fx = Math.min(grid.cols - 1, Math.max(0, (x + 0.5) / grid.block - 0.5));
  const fy = Math.min(grid.rows - 1, Math.max(0, (y + 0.5) / grid.block - 0.5));
  const x0 = Math.floor(fx);
  const y0 = Math.floor(fy);
  const x1 = Math.min(grid.cols - 1, x0 + 1);
  const y1 = Math.min(grid.rows - 1, y0 + 1);
  const ax = fx - x0;
  const ay = fy - y0;
  const c = grid.cols;
  return (
    (1 - ay) * ((1 - ax) * values[y0 * c + x0]! + ax * values[y0 * c + x1]!) + ay * ((1 - ax) * values[y1 * c + x0]! + ax * values[y1 * c + x1]!)
  );
}

/**
 * The value blocksToPixels gives at pixel (x, y), for that pixel alone (same arithmetic, so the same float32 value):
 * for stages that only look a field up at a few points.
 */
export function blockFieldAt(values: Float32Array, grid: BlockGrid, x: number, y: number): number {
  const c = grid.cols;
  const fx = Math.min(c - 1, Math.max(0, (x + 0.5) / grid.block - 0.5));
  const x0 = Math.floor(fx);
  const x1 = Math.min(c - 1, x0 + 1);
  const ax = Math.fround(fx - x0);
  const fy = Math.min(grid.rows - 1, Math.max(0, (y + 0.5) / grid.block - 0.5));
  const y0 = Math.floor(fy);
  const r0 = y0 * c, r1 = Math.min(grid.rows - 1, y0 + 1) * c;
  const ay = fy - y0;
  const top = values[r0 + x0]! + ax * (values[r0 + x1]! - values[r0 + x0]!);
  const bottom = values[r1 + x0]! + ax * (values[r1 + x1]! - values[r1 + x0]!);
  return Math.fround(top + ay * (bottom - top));
}

/** For each pixel column: the block columns either side of it and the weight between them (bilinear between centres). */
export function blockColumns(grid: BlockGrid, width: number): { x0s: Int32Array; x1s: Int32Array; axs: Float32Array } {
  const c = grid.cols;
  const x0s = new Int32Array(width), x1s = new Int32Array(width), axs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const fx = Math.min(c - 1, Math.max(0, (x + 0.5) / grid.block - 0.5));
    x0s[x] = Math.floor(fx);
    x1s[x] = Math.min(c - 1, x0s[x]! + 1);
    axs[x] = fx - x0s[x]!;
  }
  return { x0s, x1s, axs };
}

/** Per-pixel field from per-block values (bilinear between block centres, as blockValueAt; columns precomputed). */
export function blocksToPixels(values: Float32Array, grid: BlockGrid, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  const c = grid.cols;
  const { x0s, x1s, axs } = blockColumns(grid, width);
  for (let y = 0; y < height; y++) {
    const fy = Math.min(grid.rows - 1, Math.max(0, (y + 0.5) / grid.block - 0.5));
    const y0 = Math.floor(fy);
    const r0 = y0 * c, r1 = Math.min(grid.rows - 1, y0 + 1) * c;
    const ay = fy - y0;
    for (let x = 0; x < width; x++) {
      const x0 = x0s[x]!, x1 = x1s[x]!, ax = axs[x]!;
      const top = values[r0 + x0]! + ax * (values[r0 + x1]! - values[r0 + x0]!);
      const bottom = values[r1 + x0]! + ax * (values[r1 + x1]! - values[r1 + x0]!);
      out[y * width + x] = top + ay * (bottom - top);
    }
  }
  return out;
}

/**
 * Summed-area table of a gray plane: sums and sums of squares interleaved, (width + 1) x (height + 1) entries of two
 * (row and column 0 are zeros), so the image is read once for any window's mean and deviation. Squares are rounded to
 * float32 (normalisation's output depends on it bit for bit). Built once per extraction, read by normalisation and
 * by the segmentation's flat-margin trim.
 */
export function graySums(gray: Float32Array, width: number, height: number): Float64Array {
  const W = width + 1;
  const sat = new Float64Array(2 * W * (height + 1));
  for (let y = 0; y < height; y++) {
    let row = 0;
    let row2 = 0;
    const up = 2 * (y * W + 1);
    const here = 2 * ((y + 1) * W + 1);
    for (let x = 0, i = y * width; x < width; x++, i++) {
      const v = gray[i]!;
      row += v;
      row2 += Math.fround(v * v);
      sat[here + 2 * x] = sat[up + 2 * x]! + row;
      sat[here + 2 * x + 1] = sat[up + 2 * x + 1]! + row2;
    }
  }
  return sat;
}

export const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/** Chamfer (3-4) distance in pixels to the nearest 0 of `mask`, with the image edge counted as background. */
export function distanceToBackground(mask: Uint8Array, width: number, height: number): Float32Array {
  // Distances in thirds of a pixel (3 per step, 4 per diagonal step), in a frame one pixel wider on every side
  // whose border is background: no bounds checks in the two passes.
  const W = width + 2;
  const H = height + 2;
  const d = new Int32Array(W * H);
  const INF = 1 << 29;
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) if (mask[y * width + x]) d[(y + 1) * W + x + 1] = INF;
  for (let y = 1; y < H - 1; y++) {
    for (let x = 1; x < W - 1; x++) {
      const i = y * W + x;
      let v = d[i]!;
      if (v === 0) continue;
      const a = d[i - 1]! + 3, b = d[i - W]! + 3, c = d[i - W - 1]! + 4, e = d[i - W + 1]! + 4;
      if (a < v) v = a;
      if (b < v) v = b;
      if (c < v) v = c;
      if (e < v) v = e;
      d[i] = v;
    }
  }
  for (let y = H - 2; y >= 1; y--) {
    for (let x = W - 2; x >= 1; x--) {
      const i = y * W + x;
      let v = d[i]!;
      if (v === 0) continue;
      const a = d[i + 1]! + 3, b = d[i + W]! + 3, c = d[i + W + 1]! + 4, e = d[i + W - 1]! + 4;
      if (a < v) v = a;
      if (b < v) v = b;
      if (c < v) v = c;
      if (e < v) v = e;
      d[i] = v;
    }
  }
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[y * width + x] = d[(y + 1) * W + x + 1]! / 3;
  return out;
}
