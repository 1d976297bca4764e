/**
 * Global pairing: the second opinion beside LSS-R. LSS-R only asks whether a dozen pairs of similar cylinders agree
 * with each other; pairing asks how many minutiae of the two prints actually land on each other, and how many could
 * have, which is what makes the score mean the same thing on a small capacitive sensor and a large optical one.
 *
 *  1. Anchors: the `anchors` pairs that LSS-R's relaxation supported most (each minutia in one anchor at most).
 *  2. For each anchor, B is turned and moved so that its anchor minutia lies on A's, and every minutia of B is
 *     paired greedily (closest first) with a minutia of A within pairDistance + pairDistanceGrowth x (distance to the
 *     anchor) pixels (elastic distortion grows with distance) and pairAngle radians of direction. A pair weighs its
 *     cylinders' local similarity (0 when either minutia has no cylinder), so chance coincidences of position weigh
 *     little.
 *  3. The anchor with the largest total weight w wins; the score is w^2 / (max(nA, floor) x max(nB, floor)), where
 *     nA and nB count the minutiae of each print that lie inside the other's (enlarged, aligned) convex hull: the
 *     minutiae that could have been paired. The floor keeps two tiny overlaps from looking certain.
 *
 * A's minutiae are bucketed in a grid at prepare time, so pairing one B minutia looks at a few A minutiae only.
 */
import type { Point } from './hull.ts';
import type { MccParams } from './params.ts';
import { descriptorWeight, type DescriptorPair } from './similarity.ts';

/** All minutiae of a template in the matcher's right-handed frame, and A-side lookup structures. */
export interface PairingSide {
  /** Planar coordinates (X = x, Y = -y, px at 500 dpi) and counter-clockwise directions of every minutia. */
  X: Float32Array;
  Y: Float32Array;
  T: Float32Array;
  /** cos and sin of the directions. */
  C: Float32Array;
  S: Float32Array;
  /** Each minutia's cylinder (its row or column in the similarity matrix), -1 when it has none. */
  cylinder: Int32Array;
  hull: Point[];
  /** Grid of minutia indices: cell (cx, cy) holds cellItems[cellStart[c] .. cellStart[c + 1]). */
  grid: { x0: number; y0: number; size: number; cols: number; rows: number; cellStart: Int32Array; cellItems: Int32Array };
}

const GRID_CELL = 32;

export function pairingSide(X: Float32Array, Y: Float32Array, T: Float32Array, hull: Point[], cylinder: Int32Array): PairingSide {
  const n = X.length;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) (x0 = Math.min(x0, X[i]!)), (y0 = Math.min(y0, Y[i]!)), (x1 = Math.max(x1, X[i]!)), (y1 = Math.max(y1, Y[i]!));
  if (n === 0) x0 = y0 = x1 = y1 = 0;
  const cols = Math.floor((x1 - x0) / GRID_CELL) + 1;
  const rows = Math.floor((y1 - y0) / GRID_CELL) + 1;
  const cellOf = new Int32Array(n);
  const counts = new Int32Array(cols * rows + 1);
  for (let i = 0; i < n; i++) {
    cellOf[i] = Math.floor((Y[i]! - y0) / GRID_CELL) * cols + Math.floor((X[i]! - x0) / GRID_CELL);
    counts[cellOf[i]! + 1]!++;
  }
  for (let c = 0; c < cols * rows; c++) counts[c + 1]! += counts[c]!;
  const cellItems = new Int32Array(n);
  const fill = counts.slice(0, cols * rows);
  for (let i = 0; i < n; i++) cellItems[fill[cellOf[i]!]!++] = i;
  const C = Float32Array.from(T, Math.cos);
  const S = Float32Array.from(T, Math.sin);
  return { X, Y, T, C, S, cylinder, hull, grid: { x0, y0, size: GRID_CELL, cols, rows, cellStart: counts, cellItems } };
}

export interface PairingResult {
  /** Sum of the local similarities of the paired minutiae, for the winning anchor. */
  weight: number;
  pairs: number;
  /** Minutiae of A inside B's aligned hull, and of B inside A's. */
  overlapA: number;
  overlapB: number;
  /** weight^2 / (max(overlapA, floor) * max(overlapB, floor)), in [0, 1]. */
  score: number;
}

// Scratch, grown on demand (the matcher is synchronous and runs tens of thousands of times a second).
let candA = new Int32Array(256), candB = new Int32Array(256), candBucket = new Uint8Array(256), order = new Int32Array(256);
const BUCKETS = 16;
const bucketStart = new Int32Array(BUCKETS + 1);
let hullX = new Float64Array(64), hullY = new Float64Array(64), ex = new Float64Array(64), ey = new Float64Array(64);
let usedA = new Uint8Array(64), usedB = new Uint8Array(64);

/**
 * `sim`: the local similarities of the cylinders, row-major (A's cylinders x B's, `simColumns` columns, 0 where
 * none was computed), each weighted by `descriptors` when given; `anchorA`/`anchorB`: the anchor pairs (minutia
 * indices), best first. The result is written into `out` (the matcher passes a reused object: no allocation).
 */
export function pairMinutiae(
  a: PairingSide,
  b: PairingSide,
  sim: Float32Array,
  simColumns: number,
  anchorA: ArrayLike<number>,
  anchorB: ArrayLike<number>,
  anchors: number,
  p: MccParams,
  out: PairingResult = { weight: 0, pairs: 0, overlapA: 0, overlapB: 0, score: 0 },
  descriptors: DescriptorPair | null = null,
): PairingResult {
  const nA = a.X.length, nB = b.X.length;
  out.weight = out.pairs = out.overlapA = out.overlapB = out.score = 0;
  if (nA === 0 || nB === 0 || anchors === 0) return out;
  // Every (A, B) pair is a candidate at most once per anchor.
  if (candA.length < nA * nB) (candA = new Int32Array(nA * nB)), (candB = new Int32Array(nA * nB)), (candBucket = new Uint8Array(nA * nB)), (order = new Int32Array(nA * nB));
  if (usedA.length < nA) usedA = new Uint8Array(2 * nA);
  if (usedB.length < nB) usedB = new Uint8Array(2 * nB);
  const cA = candA, cB = candB, cBucket = candBucket, ord = order, uA = usedA, uB = usedB;
  const aX = a.X, aY = a.Y, aC = a.C, aS = a.S, bX = b.X, bY = b.Y, bC = b.C, bS = b.S, cylA = a.cylinder, cylB = b.cylinder;
  const { x0: gx0, y0: gy0, cols, rows, cellStart, cellItems } = a.grid;
  const inv = 1 / a.grid.size;
  const d0 = p.pairDistance, dk = p.pairDistanceGrowth, minCos = Math.cos(p.pairAngle);
  let best = -1, bestPairs = 0, bestAnchor = -1;
  for (let k = 0; k < anchors; k++) {
    const i = anchorA[k]!, j = anchorB[k]!;
    // The rotation taking B's anchor direction onto A's, as cos and sin of the difference of the two directions.
    const c = aC[i]! * bC[j]! + aS[i]! * bS[j]!, s = aS[i]! * bC[j]! - aC[i]! * bS[j]!;
    const ax = aX[i]!, ay = aY[i]!, bx = bX[j]!, by = bY[j]!;
    let nc = 0;
    for (let q = 0; q < nB; q++) {
      const dx = bX[q]! - bx, dy = bY[q]! - by;
      const ex = c * dx - s * dy, ey = s * dx + c * dy;
      const x = ax + ex, y = ay + ey;
      // B's direction turned by the anchor's rotation, as a unit vector: the direction test is a dot product.
      const ux = bC[q]! * c - bS[q]! * s, uy = bS[q]! * c + bC[q]! * s;
      const tol = d0 + dk * Math.sqrt(ex * ex + ey * ey);
      const tol2 = tol * tol;
      const cx0 = Math.max(0, ((x - tol - gx0) * inv) | 0), cx1 = Math.min(cols - 1, ((x + tol - gx0) * inv) | 0);
      const cy0 = Math.max(0, ((y - tol - gy0) * inv) | 0), cy1 = Math.min(rows - 1, ((y + tol - gy0) * inv) | 0);
      for (let cy = cy0; cy <= cy1; cy++) {
        for (let cx = cx0; cx <= cx1; cx++) {
          const cell = cy * cols + cx;
          const end = cellStart[cell + 1]!;
          for (let e = cellStart[cell]!; e < end; e++) {
            const pIdx = cellItems[e]!;
            const fx = aX[pIdx]! - x, fy = aY[pIdx]! - y;
            const d2 = fx * fx + fy * fy;
            if (d2 > tol2 || aC[pIdx]! * ux + aS[pIdx]! * uy < minCos) continue;
            cA[nc] = pIdx;
            cB[nc] = q;
            cBucket[nc] = ((d2 / tol2) * BUCKETS) | 0;
            nc++;
          }
        }
      }
    }
    // Greedy one-to-one assignment, closest (relative to its tolerance) first: a bucket sort on the relative squared
    // distance (order within a bucket does not matter at this resolution).
    bucketStart.fill(0);
    for (let e = 0; e < nc; e++) bucketStart[Math.min(BUCKETS - 1, cBucket[e]!) + 1]!++;
    for (let u = 0; u < BUCKETS; u++) bucketStart[u + 1]! += bucketStart[u]!;
    for (let e = 0; e < nc; e++) ord[bucketStart[Math.min(BUCKETS - 1, cBucket[e]!)]!++] = e;
    let weight = 0, pairs = 0;
    for (let e = 0; e < nc; e++) {
      const o = ord[e]!;
      const pa = cA[o]!, qb = cB[o]!;
      if (uA[pa] || uB[qb]) continue;
      uA[pa] = 1;
      uB[qb] = 1;
      const ca = cylA[pa]!, cb = cylB[qb]!;
      if (ca >= 0 && cb >= 0) {
        const v = sim[ca * simColumns + cb]!;
        if (v > 0) weight += descriptors ? v * descriptorWeight(descriptors, ca, cb, v, p) : v;
      }
      pairs++;
    }
    for (let e = 0; e < nc; e++) (uA[cA[e]!] = 0), (uB[cB[e]!] = 0);
    if (weight > best) (best = weight), (bestPairs = pairs), (bestAnchor = k);
  }
  if (bestAnchor < 0 || best <= 0) return out;
  // Overlap for the winning anchor: B's hull vertices moved into A's frame (a rigid motion keeps it convex), and A's
  // hull moved into B's.
  const i = anchorA[bestAnchor]!, j = anchorB[bestAnchor]!;
  const c = aC[i]! * bC[j]! + aS[i]! * bS[j]!, s = aS[i]! * bC[j]! - aC[i]! * bS[j]!;
  const ax = a.X[i]!, ay = a.Y[i]!, bx = b.X[j]!, by = b.Y[j]!;
  const nh = Math.max(a.hull.length, b.hull.length);
  if (hullX.length < nh) (hullX = new Float64Array(2 * nh)), (hullY = new Float64Array(2 * nh));
  for (let e = 0; e < b.hull.length; e++) {
    const [x, y] = b.hull[e]!;
    hullX[e] = ax + c * (x - bx) - s * (y - by);
    hullY[e] = ay + s * (x - bx) + c * (y - by);
  }
  const overlapA = countNear(hullX, hullY, b.hull.length, a.X, a.Y, p.overlapMargin);
  for (let e = 0; e < a.hull.length; e++) {
    const [x, y] = a.hull[e]!;
    hullX[e] = bx + c * (x - ax) + s * (y - ay);
    hullY[e] = by - s * (x - ax) + c * (y - ay);
  }
  const overlapB = countNear(hullX, hullY, a.hull.length, b.X, b.Y, p.overlapMargin);
  const score = Math.min(1, (best * best) / (Math.max(overlapA, p.overlapFloor) * Math.max(overlapB, p.overlapFloor)));
  out.weight = best;
  out.pairs = bestPairs;
  out.overlapA = overlapA;
  out.overlapB = overlapB;
  out.score = score;
  return out;
}

/**
 * How many of the points lie inside the counter-clockwise convex hull (hx, hy; n vertices) enlarged by `margin`: every
 * edge's line must have the point on its inner side or at most `margin` outside. (That offset polygon has sharp
 * corners where hull.ts's inEnlargedHull rounds them; for a margin of a few pixels the difference does not matter,
 * and this runs for every comparison.) Fewer than three vertices: within `margin` of the points or the segment.
 */
function countNear(hx: Float64Array, hy: Float64Array, n: number, X: Float32Array, Y: Float32Array, margin: number): number {
  let count = 0;
  if (n < 3) {
    for (let q = 0; q < X.length; q++) {
      let best = Infinity;
      for (let e = 0; e < n; e++) best = Math.min(best, Math.hypot(X[q]! - hx[e]!, Y[q]! - hy[e]!));
      if (n === 2) {
        const dx = hx[1]! - hx[0]!, dy = hy[1]! - hy[0]!;
        const len2 = dx * dx + dy * dy;
        const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((X[q]! - hx[0]!) * dx + (Y[q]! - hy[0]!) * dy) / len2));
        best = Math.min(best, Math.hypot(X[q]! - hx[0]! - t * dx, Y[q]! - hy[0]! - t * dy));
      }
      if (best <= margin) count++;
    }
    return count;
  }
  if (ex.length < n) (ex = new Float64Array(2 * n)), (ey = new Float64Array(2 * n));
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let e = 0; e < n; e++) {
    const f = e + 1 === n ? 0 : e + 1;
    const dx = hx[f]! - hx[e]!, dy = hy[f]! - hy[e]!;
    const len = Math.sqrt(dx * dx + dy * dy) || 1;
    ex[e] = dx / len;
    ey[e] = dy / len;
    if (hx[e]! < x0) x0 = hx[e]!;
    if (hx[e]! > x1) x1 = hx[e]!;
    if (hy[e]! < y0) y0 = hy[e]!;
    if (hy[e]! > y1) y1 = hy[e]!;
  }
  // A disc around the vertices' mean that every edge line keeps on its inner side (radius: the least distance from
  // the mean to an edge line): a point within that radius + margin of the mean passes every edge test, so most
  // points inside are counted without the edge loop (the small slack keeps rounding from deciding otherwise).
  let mx = 0, my = 0;
  for (let e = 0; e < n; e++) (mx += hx[e]!), (my += hy[e]!);
  (mx /= n), (my /= n);
  let inner = Infinity;
  for (let e = 0; e < n; e++) inner = Math.min(inner, ex[e]! * (my - hy[e]!) - ey[e]! * (mx - hx[e]!));
  const quick = inner > 0 ? (inner + margin - 1e-6) ** 2 : -1;
  (x0 -= margin), (y0 -= margin), (x1 += margin), (y1 += margin);
  for (let q = 0; q < X.length; q++) {
    const px = X[q]!, py = Y[q]!;
    if (px < x0 || px > x1 || py < y0 || py > y1) continue;
    if ((px - mx) * (px - mx) + (py - my) * (py - my) <= quick) {
      count++;
      continue;
    }
    let near = true;
    for (let e = 0; e < n; e++) {
      if (ex[e]! * (py - hy[e]!) - ey[e]! * (px - hx[e]!) < -margin) {
        near = false;
        break;
      }
    }
    if (near) count++;
  }
  return count;
}
