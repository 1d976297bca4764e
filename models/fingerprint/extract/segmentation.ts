/**
 * Segmentation: which part of the image is finger. Per block, two features:
 *  - ridge score = clarity (correlation of the normalised image with its Gabor-enhanced version: how much of the
 *    block is a clean oriented wave at a ridge frequency) + orientation certainty. It does not depend on contrast, so
 *    faint dry prints and low-contrast capacitive images count as finger where their ridges are regular;
 *  - gray-level deviation, which only has to reach a low floor relative to the image's own contrast: the faint
 *    latent ridges a previous finger leaves on an optical platen, and flat backgrounds, stay out.
 * The ridge-score threshold adapts to the image (Otsu's split between finger and background blocks) when the image
 * shows two clearly different populations, and never falls below a floor that sensor noise does not reach. Then
 * morphological cleanup on the block grid: closing, filling of enclosed holes (cores and deltas have low certainty),
 * keeping the largest component, and an opening against thin appendages. The pixel mask interpolates the block mask
 * bilinearly, then loses the flat pixels that a border block holds beyond the print's edge (trimFlatMargin).
 */
import { blockColumns, blockDeviation, blockGrid, type BlockGrid } from './fields.ts';
import { PARAMS } from './params.ts';

export interface Segmentation {
  grid: BlockGrid;
  /** 1 per foreground block. */
  blocks: Uint8Array;
  /** 1 per foreground pixel. */
  mask: Uint8Array;
  /** Per-block gray deviation, certainty and ridge score (the features), for quality and tests. */
  blockStd: Float32Array;
  blockCoherence: Float32Array;
  ridgeScore: Float32Array;
  /** The ridge-score threshold used for this image. */
  threshold: number;
}

/**
 * `clarity`: per block of PARAMS.block, over every block (see quality.ts blockClarity); `contrast`: the gray
 * deviation a finger block needs (from the whole image, before any crop: see the extractor); `sums`: graySums of
 * `gray` (fields.ts).
 */
export function segment(gray: Float32Array, certainty: Float32Array, clarity: Float32Array, width: number, height: number, contrast: number, sums: Float64Array): Segmentation {
  const grid = blockGrid(width, height, PARAMS.block);
  const n = grid.cols * grid.rows;
  const blockStd = blockDeviation(gray, width, height, grid);
  const blockCoherence = new Float32Array(n);
  for (let by = 0; by < grid.rows; by++) {
    const y1 = Math.min(height, (by + 1) * grid.block);
    for (let bx = 0; bx < grid.cols; bx++) {
      const x1 = Math.min(width, (bx + 1) * grid.block);
      let c = 0;
      for (let y = by * grid.block; y < y1; y++) for (let x = bx * grid.block; x < x1; x++) c += certainty[y * width + x]!;
      blockCoherence[by * grid.cols + bx] = c / ((y1 - by * grid.block) * (x1 - bx * grid.block));
    }
  }
  const ridgeScore = new Float32Array(n);
  for (let i = 0; i < n; i++) ridgeScore[i] = clarity[i]! + blockCoherence[i]!;
  const split = otsu(ridgeScore, 2);
  const threshold = split.separation >= PARAMS.minSeparation ? Math.max(PARAMS.minRidgeScore, split.threshold) : PARAMS.minRidgeScore;
  let blocks: Uint8Array = new Uint8Array(n);
  for (let i = 0; i < n; i++) blocks[i] = ridgeScore[i]! >= threshold && blockStd[i]! >= contrast ? 1 : 0;
  const closed = erode(dilate(blocks, grid), grid);
  // Closing must not creep along the grid's edge (erosion ignores outside cells): edge cells keep their own value.
  for (let y = 0; y < grid.rows; y++) {
    for (let x = 0; x < grid.cols; x++) {
      const i = y * grid.cols + x;
      if ((x === 0 || y === 0 || x === grid.cols - 1 || y === grid.rows - 1) && !blocks[i]) closed[i] = 0;
    }
  }
  blocks = closed;
  fillHoles(blocks, grid);
  keepLargest(blocks, grid);
  blocks = dilate(erode(blocks, grid), grid);
  keepLargest(blocks, grid);
  const mask = blocksToMask(blocks, grid, width, height);
  trimFlatMargin(mask, sums, width, height, contrast);
  return { grid, blocks, mask, blockStd, blockCoherence, ridgeScore, threshold };
}

/**
 * Pixel mask: the block mask interpolated bilinearly between block centres (the arithmetic of blocksToPixels, rounded
 * to float32 as its plane is), at least 0.5; where the four blocks around a pixel agree, their value is the answer.
 */
function blocksToMask(blocks: Uint8Array, grid: BlockGrid, width: number, height: number): Uint8Array {
  const mask = new Uint8Array(width * height);
  const c = grid.cols;
  const { x0s, x1s, axs } = blockColumns(grid, width);
  for (let y = 0; y < height; y++) {
    const fy = Math.min(grid.rows - 1, Math.max(0, (y + 0.5) / grid.block - 0.5));
    const y0 = Math.floor(fy);
    const r0 = y0 * c, r1 = Math.min(grid.rows - 1, y0 + 1) * c;
    const ay = fy - y0;
    for (let x = 0, i = y * width; x < width; x++, i++) {
      const x0 = x0s[x]!, x1 = x1s[x]!;
      const a = blocks[r0 + x0]!, b = blocks[r0 + x1]!, d = blocks[r1 + x0]!, e = blocks[r1 + x1]!;
      if (a === b && a === d && a === e) {
        mask[i] = a;
        continue;
      }
      const ax = axs[x]!;
      const top = a + ax * (b - a);
      const bottom = d + ax * (e - d);
      mask[i] = Math.fround(top + ay * (bottom - top)) >= 0.5 ? 1 : 0;
    }
  }
  return mask;
}

/**
 * Removes from `mask` the flat pixels (local gray deviation under a floor, see PARAMS.flatRadius) that are connected to
 * the background or the image edge through flat mask pixels, and the pixels within PARAMS.flatGrowBack of them. A
 * block straddling the print's edge is finger as a whole; without this, the ridges that stop at a sensor's frame or a
 * saturated margin would end inside the mask and give a row of false endings.
 */
function trimFlatMargin(mask: Uint8Array, sums: Float64Array, width: number, height: number, contrast: number): void {
  const isFlat = flatTest(sums, width, height, PARAMS.flatRadius, PARAMS.flatContrast * contrast);
  // Flatness is only looked at where the flood can go: mask pixels on the mask's border, then their flat neighbours.
  const removed = new Uint8Array(mask.length);
  const stack: number[] = [];
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  const take = (i: number) => {
    mask[i] = 0;
    removed[i] = 1;
    stack.push(i);
    const x = i % width, y = (i - x) / width;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0, i = y * width; x < width; x++, i++) {
      if (!mask[i]) continue;
      const onEdge = x === 0 || y === 0 || x === width - 1 || y === height - 1 || !mask[i - 1] || !mask[i + 1] || !mask[i - width] || !mask[i + width];
      if (onEdge && isFlat(x, y)) take(i);
    }
  }
  while (stack.length) {
    const i = stack.pop()!;
    const x = i % width, y = (i - x) / width;
    if (x > 0 && mask[i - 1] && isFlat(x - 1, y)) take(i - 1);
    if (x < width - 1 && mask[i + 1] && isFlat(x + 1, y)) take(i + 1);
    if (y > 0 && mask[i - width] && isFlat(x, y - 1)) take(i - width);
    if (y < height - 1 && mask[i + width] && isFlat(x, y + 1)) take(i + width);
  }
  if (x1 < 0) return;
  // A window is flat only once it has (nearly) left the texture: at a sharp frame the flat region found starts up to
  // flatRadius pixels beyond the print's edge, so it is grown back towards the edge (within the mask, never from the
  // block mask's own border).
  const r = PARAMS.flatGrowBack;
  const bx0 = Math.max(0, x0 - r), bx1 = Math.min(width - 1, x1 + r), by0 = Math.max(0, y0 - r), by1 = Math.min(height - 1, y1 + r);
  const grown = boxDilate(removed, width, bx0, bx1, by0, by1, r);
  for (let y = by0; y <= by1; y++) for (let x = bx0, i = y * width + bx0; x <= bx1; x++, i++) if (grown[i]) mask[i] = 0;
}

/**
 * Whether the gray deviation over the (2r+1)^2 window around (x, y), clipped at the image edge, is below `floor`, from
 * the plane's summed-area table (graySums) in constant time.
 */
function flatTest(sums: Float64Array, width: number, height: number, r: number, floor: number): (x: number, y: number) => boolean {
  const W = width + 1;
  const floor2 = floor * floor;
  return (x, y) => {
    const ya = Math.max(0, y - r), yb = Math.min(height, y + r + 1);
    const top = 2 * ya * W, bottom = 2 * yb * W;
    const xa = 2 * Math.max(0, x - r), xb = 2 * Math.min(width, x + r + 1);
    const n = (yb - ya) * ((xb - xa) >> 1);
    const m = (sums[bottom + xb]! - sums[top + xb]! - sums[bottom + xa]! + sums[top + xa]!) / n;
    const m2 = (sums[bottom + xb + 1]! - sums[top + xb + 1]! - sums[bottom + xa + 1]! + sums[top + xa + 1]!) / n;
    return m2 - m * m < floor2;
  };
}

/** Square (Chebyshev) dilation by r pixels of a 0/1 plane, computed over the box [x0, x1] x [y0, y1] only: rows, then columns. */
function boxDilate(plane: Uint8Array, width: number, x0: number, x1: number, y0: number, y1: number, r: number): Uint8Array {
  const rows = new Uint8Array(plane.length);
  for (let y = y0; y <= y1; y++) dilateLine(plane, rows, y * width + x0, x1 - x0 + 1, 1, r);
  const out = new Uint8Array(plane.length);
  for (let x = x0; x <= x1; x++) dilateLine(rows, out, y0 * width + x, y1 - y0 + 1, width, r);
  return out;
}

/** 1-D dilation by r of `count` cells `stride` apart from `start`: a cell is set within r of a set one, either way. */
function dilateLine(src: Uint8Array, dst: Uint8Array, start: number, count: number, stride: number, r: number): void {
  let last = -Infinity;
  for (let k = 0, i = start; k < count; k++, i += stride) {
    if (src[i]) last = k;
    if (k - last <= r) dst[i] = 1;
  }
  last = Infinity;
  for (let k = count - 1, i = start + (count - 1) * stride; k >= 0; k--, i -= stride) {
    if (src[i]) last = k;
    if (last - k <= r) dst[i] = 1;
  }
}

/**
 * Otsu's threshold of values in [0, max] (64 bins): the split maximising the between-class variance, with the
 * distance between the two class means (small when the values form one population, e.g. a print filling the image).
 */
export function otsu(values: Float32Array, max: number): { threshold: number; separation: number } {
  const bins = 64;
  const hist = new Float64Array(bins);
  for (const v of values) hist[Math.max(0, Math.min(bins - 1, Math.floor((v / max) * bins)))]!++;
  let sumAll = 0;
  for (let b = 0; b < bins; b++) sumAll += b * hist[b]!;
  let w0 = 0;
  let sum0 = 0;
  let best = -1;
  let cut = 0;
  let separation = 0;
  for (let b = 0; b < bins - 1; b++) {
    w0 += hist[b]!;
    sum0 += b * hist[b]!;
    const w1 = values.length - w0;
    if (w0 === 0 || w1 === 0) continue;
    const m0 = sum0 / w0;
    const m1 = (sumAll - sum0) / w1;
    const between = w0 * w1 * (m0 - m1) ** 2;
    if (between > best) {
      best = between;
      cut = b + 1;
      separation = ((m1 - m0) / bins) * max;
    }
  }
  return { threshold: (cut / bins) * max, separation };
}

function dilate(m: Uint8Array, g: BlockGrid): Uint8Array {
  return morph(m, g, true);
}
function erode(m: Uint8Array, g: BlockGrid): Uint8Array {
  return morph(m, g, false);
}

/** 3x3 dilation or erosion; outside the grid counts as the neutral value (no erosion from the image edge). */
function morph(m: Uint8Array, g: BlockGrid, grow: boolean): Uint8Array {
  const out = new Uint8Array(m.length);
  for (let y = 0; y < g.rows; y++) {
    for (let x = 0; x < g.cols; x++) {
      let v = grow ? 0 : 1;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          const yy = y + dy;
          if (xx < 0 || yy < 0 || xx >= g.cols || yy >= g.rows) continue;
          const b = m[yy * g.cols + xx]!;
          if (grow && b) v = 1;
          if (!grow && !b) v = 0;
        }
      }
      out[y * g.cols + x] = v;
    }
  }
  return out;
}

/** Background blocks not 4-connected to the grid's edge become foreground. */
function fillHoles(m: Uint8Array, g: BlockGrid): void {
  const outside = new Uint8Array(m.length);
  const stack: number[] = [];
  for (let y = 0; y < g.rows; y++) {
    for (let x = 0; x < g.cols; x++) {
      if ((x === 0 || y === 0 || x === g.cols - 1 || y === g.rows - 1) && !m[y * g.cols + x]) {
        outside[y * g.cols + x] = 1;
        stack.push(y * g.cols + x);
      }
    }
  }
  flood(stack, outside, (i) => !m[i], g);
  for (let i = 0; i < m.length; i++) if (!outside[i]) m[i] = 1;
}

function keepLargest(m: Uint8Array, g: BlockGrid): void {
  const label = new Int32Array(m.length);
  let best = 0;
  let bestSize = 0;
  let next = 0;
  for (let i = 0; i < m.length; i++) {
    if (!m[i] || label[i]) continue;
    next++;
    const seen = new Uint8Array(m.length);
    seen[i] = 1;
    const size = flood([i], seen, (j) => m[j] === 1, g);
    for (let j = 0; j < m.length; j++) if (seen[j]) label[j] = next;
    if (size > bestSize) {
      bestSize = size;
      best = next;
    }
  }
  for (let i = 0; i < m.length; i++) m[i] = label[i] === best && best > 0 ? 1 : 0;
}

/** 4-connected flood from the seeds (already marked in `seen`) over cells passing `ok`; returns the region size. */
function flood(stack: number[], seen: Uint8Array, ok: (i: number) => boolean, g: BlockGrid): number {
  let size = stack.length;
  while (stack.length) {
    const i = stack.pop()!;
    const x = i % g.cols;
    const y = (i - x) / g.cols;
    const nbrs = [x > 0 ? i - 1 : -1, x < g.cols - 1 ? i + 1 : -1, y > 0 ? i - g.cols : -1, y < g.rows - 1 ? i + g.cols : -1];
    for (const j of nbrs) {
      if (j < 0 || seen[j] || !ok(j)) continue;
      seen[j] = 1;
      size++;
      stack.push(j);
    }
  }
  return size;
}

