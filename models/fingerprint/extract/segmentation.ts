/**
 * Segmentation: which part of the image is finger. Per block, the gray-level deviation (contrast), the orientation
 * certainty (ridges are locally parallel; noise and flat areas are not) and whether the block shows a plausible ridge
 * period (the finger's edge is a strong, coherent step but has no period). Then morphological cleanup on
 * the block grid: closing, filling of enclosed holes (cores and deltas have low certainty), keeping the largest
 * component, and an opening against thin appendages. The pixel mask interpolates the block mask bilinearly.
 */
import { blockGrid, blockValueAt, type BlockGrid } from './fields.ts';
import { PARAMS } from './params.ts';

export interface Segmentation {
  grid: BlockGrid;
  /** 1 per foreground block. */
  blocks: Uint8Array;
  /** 1 per foreground pixel. */
  mask: Uint8Array;
  /** Per-block gray deviation and certainty (the features), for quality. */
  blockStd: Float32Array;
  blockCoherence: Float32Array;
}

export function segment(gray: Float32Array, certainty: Float32Array, periodic: Uint8Array, width: number, height: number): Segmentation {
  const grid = blockGrid(width, height, PARAMS.block);
  const n = grid.cols * grid.rows;
  const blockStd = new Float32Array(n);
  const blockCoherence = new Float32Array(n);
  for (let by = 0; by < grid.rows; by++) {
    for (let bx = 0; bx < grid.cols; bx++) {
      let s = 0;
      let s2 = 0;
      let c = 0;
      let count = 0;
      const y1 = Math.min(height, (by + 1) * grid.block);
      const x1 = Math.min(width, (bx + 1) * grid.block);
      for (let y = by * grid.block; y < y1; y++) {
        for (let x = bx * grid.block; x < x1; x++) {
          const v = gray[y * width + x]!;
          s += v;
          s2 += v * v;
          c += certainty[y * width + x]!;
          count++;
        }
      }
      const mean = s / count;
      blockStd[by * grid.cols + bx] = Math.sqrt(Math.max(0, s2 / count - mean * mean));
      blockCoherence[by * grid.cols + bx] = c / count;
    }
  }
  const sorted = Float32Array.from(blockStd).sort();
  const p90 = sorted[Math.min(n - 1, Math.floor(0.9 * n))] ?? 0;
  const stdThreshold = Math.max(PARAMS.minStd, PARAMS.relStd * p90);
  let blocks: Uint8Array = new Uint8Array(n);
  for (let i = 0; i < n; i++) blocks[i] = blockStd[i]! >= stdThreshold && blockCoherence[i]! >= PARAMS.minCoherence && periodic[i] ? 1 : 0;
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
  const values = Float32Array.from(blocks);
  const mask = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) mask[y * width + x] = blockValueAt(values, grid, x, y) >= 0.5 ? 1 : 0;
  return { grid, blocks, mask, blockStd, blockCoherence };
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
