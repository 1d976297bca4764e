/**
 * Convex hull of the minutiae, enlarged by an offset: MCC's estimate of the fingerprint's foreground, so that cells of
 * a cylinder lying outside the captured area count as "invalid" (unknown) rather than "empty".
 */
export type Point = readonly [number, number];

/** Andrew's monotone chain; counter-clockwise, no repeated end point. Degenerate inputs give 0-2 points. */
export function convexHull(points: readonly Point[]): Point[] {
  const pts = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (pts.length < 3) return pts;
  const cross = (o: Point, a: Point, b: Point) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower: Point[] = [];
  for (const p of pts) {
    while (lower.length >= 2 && cross(lower[lower.length - 2]!, lower[lower.length - 1]!, p) <= 0) lower.pop();
    lower.push(p);
  }
  const upper: Point[] = [];
  for (let i = pts.length - 1; i >= 0; i--) {
    const p = pts[i]!;
    while (upper.length >= 2 && cross(upper[upper.length - 2]!, upper[upper.length - 1]!, p) <= 0) upper.pop();
    upper.push(p);
  }
  lower.pop();
  upper.pop();
  return lower.concat(upper);
}

/** Whether (px, py) lies within `r` of the segment a-b (the distance as Math.hypot gives it, compared with r). */
function nearSegment(px: number, py: number, a: Point, b: Point, r: number): boolean {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((px - a[0]) * dx + (py - a[1]) * dy) / len2));
  const ex = px - a[0] - t * dx;
  const ey = py - a[1] - t * dy;
  // The squared distance decides unless it is within rounding of r^2; only then is the (slow) hypot needed.
  const d2 = ex * ex + ey * ey;
  const r2 = r * r;
  if (d2 < r2 * (1 - 1e-9)) return true;
  if (d2 > r2 * (1 + 1e-9)) return false;
  return Math.hypot(ex, ey) <= r;
}

/** Whether (px, py) lies inside the counter-clockwise hull or within `offset` of it. */
export function inEnlargedHull(hull: readonly Point[], px: number, py: number, offset: number): boolean {
  const n = hull.length;
  if (n === 0) return false;
  if (n === 1) return Math.hypot(px - hull[0]![0], py - hull[0]![1]) <= offset;
  // Inside needs no distance at all (most cells of most cylinders are): the edge distances only decide the rest.
  let inside = n >= 3;
  for (let i = 0; i < n && inside; i++) {
    const a = hull[i]!;
    const b = hull[i + 1 === n ? 0 : i + 1]!;
    if ((b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0]) < 0) inside = false;
  }
  if (inside) return true;
  for (let i = 0; i < n; i++) if (nearSegment(px, py, hull[i]!, hull[i + 1 === n ? 0 : i + 1]!, offset)) return true;
  return false;
}
