/**
 * Removal of spurious minutiae. Structural rules first, on all candidates, each removing the minutiae that a known
 * artefact creates in pairs; then the location rules:
 * - spur: an ending whose ridge reaches a junction within `spurPeriods` (a hair on a ridge: ending + bifurcation);
 * - short ridge / dot: an ending whose ridge ends again within `shortRidgePeriods` (two endings);
 * - bridge / lake: a bifurcation whose branch meets another junction within `bridgePeriods` (two bifurcations);
 * - broken ridge: two endings within `brokenRidgePeriods` pointing away from each other along the ridge line;
 * - border: closer than `borderPeriods` to the background or the image edge (the print's edge makes false endings);
 * - duplicates of the same type within `duplicatePixels`; clusters (more than `clusterMax` others within
 *   `clusterPeriods`), which only noise produces; and minutiae below `minMinutiaQuality`.
 */
import type { Candidate } from './minutiae.ts';
import { PARAMS } from './params.ts';

export interface FilterContext {
  width: number;
  /** Ridge period at a pixel. */
  periodAt: (x: number, y: number) => number;
  /** Distance (pixels) to the nearest background pixel or image edge. */
  borderDistance: Float32Array;
}

export function removeSpurious(cands: Candidate[], ctx: FilterContext): Candidate[] {
  const { width } = ctx;
  const byPixel = new Map<number, Candidate[]>();
  for (const c of cands) {
    const k = c.y * width + c.x;
    byPixel.set(k, [...(byPixel.get(k) ?? []), c]);
  }
  const near = (at: number, type: Candidate['type'], radius: number): Candidate[] => {
    const x = at % width;
    const y = Math.floor(at / width);
    const found: Candidate[] = [];
    for (let dy = -radius; dy <= radius; dy++) for (let dx = -radius; dx <= radius; dx++) for (const c of byPixel.get((y + dy) * width + x + dx) ?? []) if (c.type === type) found.push(c);
    return found;
  };
  const T = (c: Candidate) => ctx.periodAt(c.x, c.y);
  const kill: Candidate[] = [];
  for (const c of cands) {
    const p = T(c);
    if (c.type === 'ending') {
      const t = c.traces[0];
      if (!t) continue;
      if (t.stop === 'junction' && t.steps <= PARAMS.spurPeriods * p) kill.push(c, ...near(t.at, 'bifurcation', 2));
      if (t.stop === 'end' && t.steps <= PARAMS.shortRidgePeriods * p) kill.push(c, ...near(t.at, 'ending', 1));
    } else {
      for (const t of c.traces) if (t.stop === 'junction' && t.steps <= PARAMS.bridgePeriods * p) kill.push(c, ...near(t.at, 'bifurcation', 2));
    }
  }
  const endings = cands.filter((c) => c.type === 'ending');
  for (let a = 0; a < endings.length; a++) {
    const A = endings[a]!;
    for (let b = a + 1; b < endings.length; b++) {
      const B = endings[b]!;
      const dx = B.x - A.x;
      const dy = B.y - A.y;
      const d = Math.hypot(dx, dy);
      if (d === 0 || d > PARAMS.brokenRidgePeriods * T(A)) continue;
      const opposite = A.dx * B.dx + A.dy * B.dy < -Math.cos(Math.PI / 4);
      // A points into its own ridge, away from the gap: the gap direction A->B is opposite to A's direction.
      const aligned = -(A.dx * dx + A.dy * dy) / d > Math.cos((40 * Math.PI) / 180);
      if (opposite && aligned) kill.push(A, B);
    }
  }
  for (const c of kill) c.removed = true;

  let kept = cands.filter((c) => !c.removed && ctx.borderDistance[c.y * width + c.x]! >= PARAMS.borderPeriods * T(c));
  // Duplicates: keep the first (scan order) of same-type detections a few pixels apart.
  const dup = PARAMS.duplicatePixels;
  kept = kept.filter((c, i) => !kept.slice(0, i).some((o) => o.type === c.type && Math.abs(o.x - c.x) <= dup && Math.abs(o.y - c.y) <= dup));
  const crowded = kept.filter((c) => {
    const r = PARAMS.clusterPeriods * T(c);
    let n = 0;
    for (const o of kept) if (o !== c && Math.hypot(o.x - c.x, o.y - c.y) <= r) n++;
    return n > PARAMS.clusterMax;
  });
  return kept.filter((c) => !crowded.includes(c) && c.quality >= PARAMS.minMinutiaQuality);
}
