/** The pairing stage (models/fingerprint/matcher/pairing.ts) on hand-made minutiae: what pairs, what counts as overlap. */
import { describe, expect, it } from 'vitest';
import { convexHull } from '../models/fingerprint/matcher/hull.ts';
import { MCC_DEFAULTS } from '../models/fingerprint/matcher/params.ts';
import { pairingSide, pairMinutiae, type PairingSide } from '../models/fingerprint/matcher/pairing.ts';
import { mulberry32 } from '../models/common/prng.ts';

/** A side from planar points (X right, Y up) and directions; every minutia has a cylinder (index = minutia index). */
function side(pts: Array<[number, number, number]>): PairingSide {
  const X = Float32Array.from(pts, (p) => p[0]);
  const Y = Float32Array.from(pts, (p) => p[1]);
  const T = Float32Array.from(pts, (p) => p[2]);
  return pairingSide(X, Y, T, convexHull(pts.map((p) => [p[0], p[1]] as const)), Int32Array.from(pts, (_, i) => i));
}

/** Minutiae on a 200 x 200 pad, seeded. */
function pad(seed: number, n = 30): Array<[number, number, number]> {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => [200 * r(), 200 * r(), 2 * Math.PI * r()]);
}

/** The same minutiae turned by `rot` about the origin and moved by (tx, ty). */
const moved = (pts: Array<[number, number, number]>, rot: number, tx: number, ty: number): Array<[number, number, number]> =>
  pts.map(([x, y, t]) => [Math.cos(rot) * x - Math.sin(rot) * y + tx, Math.sin(rot) * x + Math.cos(rot) * y + ty, (t + rot) % (2 * Math.PI)]);

/** pairMinutiae with the similarity matrix's columns = B's minutiae (every minutia has a cylinder here). */
const pair = (a: PairingSide, b: PairingSide, sim: Float32Array, anchorA: number[], anchorB: number[], n: number) =>
  pairMinutiae(a, b, sim, b.X.length, anchorA, anchorB, n, MCC_DEFAULTS);

/** Similarity 1 on the true correspondences (i, i), 0 elsewhere. */
const identitySim = (n: number, m = n) => Float32Array.from({ length: n * m }, (_, k) => (Math.floor(k / m) === k % m ? 1 : 0));

describe('pairing', () => {
  it('pairs every minutia of a moved copy from one correct anchor, and counts every minutia as overlapping', () => {
    const pts = pad(1);
    const a = side(pts);
    const b = side(moved(pts, 0.7, 40, -25));
    const r = pair(a, b, identitySim(30), [5], [5], 1);
    expect(r).toMatchObject({ pairs: 30, overlapA: 30, overlapB: 30 });
    expect(r.weight).toBeCloseTo(30, 5);
    expect(r.score).toBeCloseTo(1, 5);
  });

  it('keeps the better of two anchors: a wrong anchor pairs (almost) nothing', () => {
    const pts = pad(2);
    const a = side(pts);
    const b = side(moved(pts, -0.4, 10, 10));
    const wrong = pair(a, b, identitySim(30), [3], [17], 1);
    expect(wrong.weight).toBeLessThan(3);
    const both = pair(a, b, identitySim(30), [3, 8], [17, 8], 2);
    expect(both.pairs).toBe(30);
  });

  it('tolerates distortion that grows with the distance from the anchor, and not much more', () => {
    const pts = pad(3);
    const a = side(pts);
    // Points pushed away from the anchor (minutia 0) by 4% of their distance: within pairDistanceGrowth (5%).
    const [ax, ay] = pts[0]!;
    const stretch = (k: number) => side(pts.map(([x, y, t]) => [ax + k * (x - ax), ay + k * (y - ay), t]));
    expect(pair(a, stretch(1.04), identitySim(30), [0], [0], 1).pairs).toBe(30);
    expect(pair(a, stretch(1.2), identitySim(30), [0], [0], 1).pairs).toBeLessThan(15);
  });

  it('refuses pairs whose directions differ by more than pairAngle', () => {
    const pts = pad(4);
    const a = side(pts);
    // The anchor (minutia 0) keeps its direction; every odd minutia turns by 0.3 (within pairAngle 0.35) or 0.45.
    const turned = (d: number) => side(pts.map(([x, y, t], i) => [x, y, i % 2 ? t + d : t]));
    expect(pair(a, turned(0.3), identitySim(30), [0], [0], 1).pairs).toBe(30);
    // (A turned minutia may still pair with some other close one of similar direction; only true pairs weigh.)
    expect(pair(a, turned(0.45), identitySim(30), [0], [0], 1).weight).toBeCloseTo(15, 5);
  });

  it('normalises by the minutiae in the overlap: a half-overlapping copy still scores high, a small one is floored', () => {
    const pts = pad(5, 40);
    const a = side(pts);
    // B holds only A's minutiae with x < 100 (the left half), moved.
    const left = pts.map((p, i) => [p, i] as const).filter(([p]) => p[0] < 100);
    const b = side(moved(left.map(([p]) => p), 0.3, 5, 5));
    const sim = new Float32Array(40 * left.length);
    left.forEach(([, i], j) => (sim[i * left.length + j] = 1));
    const anchor = left[0]![1];
    const r = pair(a, b, sim, [anchor], [0], 1);
    expect(r.pairs).toBe(left.length);
    expect(r.overlapB).toBe(left.length);
    // A's minutiae near B's hull: the left half and a margin's worth more.
    expect(r.overlapA).toBeGreaterThanOrEqual(left.length);
    expect(r.overlapA).toBeLessThan(left.length + 8);
    expect(r.score).toBeGreaterThan(0.75);
    // Five minutiae in common, all paired: the floor (12) keeps the score low.
    const few = side(pts.slice(0, 5));
    const s = pair(a, few, identitySim(40, 5).subarray(0, 40 * 5), [0], [0], 1);
    expect(s.pairs).toBe(5);
    expect(s.score).toBeLessThanOrEqual(25 / (12 * 12) + 1e-9);
  });

  it('gives zero for empty sides or no anchors', () => {
    const a = side(pad(6));
    const empty = side([]);
    expect(pair(a, empty, new Float32Array(0), [], [], 0).score).toBe(0);
    expect(pair(a, a, identitySim(30), [0], [0], 0).pairs).toBe(0);
  });
});
