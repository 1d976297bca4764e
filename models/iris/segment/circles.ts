/**
 * Circle finding for the pupil and the limbus.
 *
 * - `darkDiscCandidates`: box-filter contrast (mean of a surrounding frame minus mean of an inner square) over a
 *   grid of centres and a geometric ladder of radii, from an integral image; the pupil is the darkest disc against
 *   its surroundings. This needs no painted or uniform pupil: it compares means, so glints (already filled),
 *   texture and a dark but uneven pupil all pass.
 * - `refineCircle`: Daugman's integro-differential operator: the circle (centre, radius) that maximises the
 *   radially smoothed derivative of the mean intensity along its arcs, dark inside to bright outside. Arcs can be
 *   limited to angle ranges (the limbus uses the lateral parts, clear of the eyelids).
 */
import { integral, sample, type FloatImage } from './image-ops.ts';

export interface Circle {
  x: number;
  y: number;
  r: number;
}

export interface ScoredCircle extends Circle {
  score: number;
}

export function darkDiscCandidates(img: FloatImage, rMin: number, rMax: number, keep = 5): ScoredCircle[] {
  const { width: w, height: h } = img;
  const s = integral(img);
  const W = w + 1;
  // Box sums inline (this loop runs ~100,000 times): clip, four lookups.
  const box = (x0: number, y0: number, x1: number, y1: number, out: { sum: number; n: number }): void => {
    const a = Math.max(0, Math.min(w, Math.round(x0)));
    const b = Math.max(0, Math.min(h, Math.round(y0)));
    const c = Math.max(0, Math.min(w, Math.round(x1)));
    const d = Math.max(0, Math.min(h, Math.round(y1)));
    out.n = c > a && d > b ? (c - a) * (d - b) : 0;
    out.sum = out.n ? s[d * W + c]! - s[b * W + c]! - s[d * W + a]! + s[b * W + a]! : 0;
  };
  const A = { sum: 0, n: 0 };
  const B = { sum: 0, n: 0 };
  const M = { sum: 0, n: 0 };
  // The best few hundred, kept sorted (descending); enough to pick `keep` distinct ones from.
  const cap = 256;
  const top: ScoredCircle[] = [];
  for (let r = rMin; r <= rMax; r *= 1.12) {
    const step = Math.max(1, Math.round(r / 4));
    const inner = 0.7 * r;
    const outer = 1.6 * r;
    const gap = 1.1 * r;
    for (let y = Math.ceil(r); y < h - r; y += step) {
      for (let x = Math.ceil(r); x < w - r; x += step) {
        box(x - inner, y - inner, x + inner, y + inner, A);
        if (A.n === 0) continue;
        box(x - outer, y - outer, x + outer, y + outer, B);
        box(x - gap, y - gap, x + gap, y + gap, M);
        const n = B.n - M.n;
        if (n <= 0) continue;
        const score = (B.sum - M.sum) / n - A.sum / A.n;
        if (top.length === cap && score <= top[cap - 1]!.score) continue;
        let i = top.length;
        while (i > 0 && top[i - 1]!.score < score) i--;
        top.splice(i, 0, { x, y, r, score });
        if (top.length > cap) top.pop();
      }
    }
  }
  // Keep distinct candidates: skip those whose centre lies inside a better one.
  const out: ScoredCircle[] = [];
  for (const c of top) {
    if (out.every((o) => Math.hypot(o.x - c.x, o.y - c.y) > Math.max(o.r, c.r))) out.push(c);
    if (out.length >= keep) break;
  }
  return out;
}

export interface RefineOptions {
  /** Centre search: +-range around the start, at this step. */
  centreRange: number;
  /** Vertical centre range, when it differs from the horizontal one. */
  centreRangeY?: number;
  centreStep: number;
  rMin: number;
  rMax: number;
  rStep?: number;
  /** Angle ranges in degrees (0 = right, 90 = down); default the full circle. */
  arcs?: Array<[number, number]>;
  /**
   * 'pooled' (default): one profile over all arcs, score = its derivative. 'weakest': one profile per arc, score =
   * the weakest arc's; a boundary must show on every arc (the limbus does on both sides, an eye corner on one).
   */
  combine?: 'pooled' | 'weakest';
  /**
   * 0 (default): the derivative of the smoothed profile. n > 0: a step contrast, the mean of the n radius steps
   * outside minus the n inside; it suits soft boundaries (a limbus spreads over several pixels).
   */
  stepWidth?: number;
  samples?: number;
  /** Gaussian smoothing of the radial profile, in radius steps. */
  sigma?: number;
  /** Sample points where mask = 1 are left out (glints). */
  mask?: Uint8Array;
  /**
   * 'strongest' (default): the best score anywhere. 'innermost': over the best score per radius, the smallest
   * radius whose local maximum reaches `innermostRatio` of the strongest; beyond the limbus come eye corners and
   * lid skin, whose steps can be larger than the limbus's own.
   */
  pick?: 'strongest' | 'innermost';
  innermostRatio?: number;
}

/** The best circle near `start` by the integro-differential operator; score in grey levels (per pixel). */
export function refineCircle(img: FloatImage, start: { x: number; y: number }, o: RefineOptions): ScoredCircle {
  const rStep = o.rStep ?? 1;
  const nr = Math.max(3, Math.floor((o.rMax - o.rMin) / rStep) + 1);
  const arcList = o.arcs ?? [[0, 360]];
  const samples = o.samples ?? 64;
  const span = arcList.reduce((t, [a, b]) => t + (b - a), 0);
  const groups: Array<Array<[number, number]>> = [];
  for (const [a, b] of arcList) {
    const k = Math.max(4, Math.round((samples * (b - a)) / span));
    const g: Array<[number, number]> = [];
    for (let i = 0; i < k; i++) {
      const t = ((a + ((i + 0.5) * (b - a)) / k) * Math.PI) / 180;
      g.push([Math.cos(t), Math.sin(t)]);
    }
    groups.push(g);
  }
  const profiles = o.combine === 'weakest' ? groups : [groups.flat()];
  const sigma = o.sigma ?? 1.2;
  const kr = Math.max(1, Math.ceil(2 * sigma));
  const kernel: number[] = [];
  let ks = 0;
  for (let i = -kr; i <= kr; i++) ks += kernel[i + kr] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < kernel.length; i++) kernel[i]! /= ks;
  const step = o.stepWidth ?? 0;
  const profile = new Float64Array(nr);
  const smooth = new Float64Array(nr);
  const scores = new Float64Array(nr);
  let best: ScoredCircle = { x: start.x, y: start.y, r: o.rMin, score: -Infinity };
  const byRadius: ScoredCircle[] = Array.from({ length: nr }, (_, k) => ({ x: start.x, y: start.y, r: o.rMin + k * rStep, score: -Infinity }));
  const w = img.width;
  const mask = o.mask;
  const ry = o.centreRangeY ?? o.centreRange;
  for (let cy = start.y - ry; cy <= start.y + ry + 1e-9; cy += o.centreStep) {
    for (let cx = start.x - o.centreRange; cx <= start.x + o.centreRange + 1e-9; cx += o.centreStep) {
      scores.fill(Infinity);
      for (const angles of profiles) {
        for (let k = 0; k < nr; k++) {
          const r = o.rMin + k * rStep;
          let acc = 0;
          let n = 0;
          for (const [c, s] of angles) {
            const x = cx + r * c;
            const y = cy + r * s;
            if (mask) {
              const xi = Math.round(x);
              const yi = Math.round(y);
              if (xi >= 0 && yi >= 0 && xi < w && yi < img.height && mask[yi * w + xi]) continue;
            }
            const v = sample(img, x, y);
            if (v === v) {
              acc += v;
              n++;
            }
          }
          profile[k] = n >= angles.length / 3 ? acc / n : NaN;
        }
        for (let k = 0; k < nr; k++) {
          let acc = 0;
          let wsum = 0;
          for (let j = -kr; j <= kr; j++) {
            const v = profile[Math.max(0, Math.min(nr - 1, k + j))]!;
            if (v === v) {
              acc += kernel[j + kr]! * v;
              wsum += kernel[j + kr]!;
            }
          }
          smooth[k] = wsum > 0 ? acc / wsum : NaN;
        }
        for (let k = 0; k < nr; k++) {
          let d: number;
          if (step === 0) d = k > 0 && k < nr - 1 ? (smooth[k + 1]! - smooth[k - 1]!) / (2 * rStep) : NaN;
          else {
            let outside = 0;
            let inside = 0;
            for (let j = 1; j <= step; j++) {
              outside += smooth[Math.min(nr - 1, k + j)]!;
              inside += smooth[Math.max(0, k - j)]!;
            }
            d = (outside - inside) / step;
          }
          // NaN (no samples) loses: a comparison with NaN is false.
          scores[k] = d < scores[k]! ? d : d === d ? scores[k]! : -Infinity;
        }
      }
      for (let k = 0; k < nr; k++) {
        const d = scores[k]!;
        if (d > best.score) best = { x: cx, y: cy, r: o.rMin + k * rStep, score: d };
        if (d > byRadius[k]!.score) byRadius[k] = { x: cx, y: cy, r: o.rMin + k * rStep, score: d };
      }
    }
  }
  if (o.pick !== 'innermost') return best;
  const floor = (o.innermostRatio ?? 0.55) * best.score;
  for (let k = 1; k < nr - 1; k++) {
    const c = byRadius[k]!;
    if (c.score >= floor && c.score >= byRadius[k - 1]!.score && c.score >= byRadius[k + 1]!.score) return c;
  }
  return best;
}

/**
 * A dark region's circle: from the darkest pixel near the candidate, the connected pixels darker than halfway
 * between the candidate's inside and its surroundings, within 1.4 candidate radii. Lashes joined to the pupil leak
 * into such a region from above, rarely from the sides or below: radius = half the widest row, centre = that row's
 * middle horizontally and one radius above the lowest row vertically.
 */
export function darkRegionCircle(img: FloatImage, c: Circle, inside: number, outside: number): Circle | null {
  const { width: w, height: h, data } = img;
  const x0 = Math.max(0, Math.floor(c.x - 2 * c.r));
  const x1 = Math.min(w - 1, Math.ceil(c.x + 2 * c.r));
  const y0 = Math.max(0, Math.floor(c.y - 2 * c.r));
  const y1 = Math.min(h - 1, Math.ceil(c.y + 2 * c.r));
  let seed = -1;
  let darkest = Infinity;
  const rr = 0.5 * c.r;
  for (let y = Math.max(y0, Math.round(c.y - rr)); y <= Math.min(y1, Math.round(c.y + rr)); y++) {
    for (let x = Math.max(x0, Math.round(c.x - rr)); x <= Math.min(x1, Math.round(c.x + rr)); x++) {
      if (data[y * w + x]! < darkest) {
        darkest = data[y * w + x]!;
        seed = y * w + x;
      }
    }
  }
  if (seed < 0) return null;
  const t = Math.min(inside, darkest) + 0.3 * (outside - Math.min(inside, darkest));
  const limit2 = (1.4 * c.r) ** 2;
  const seen = new Uint8Array((x1 - x0 + 1) * (y1 - y0 + 1));
  const bw = x1 - x0 + 1;
  const stack = [seed];
  seen[(Math.floor(seed / w) - y0) * bw + (seed % w) - x0] = 1;
  let n = 0;
  let sx = 0;
  const rowMin = new Map<number, number>();
  const rowMax = new Map<number, number>();
  while (stack.length) {
    const p = stack.pop()!;
    const x = p % w;
    const y = (p - x) / w;
    n++;
    sx += x;
    rowMin.set(y, Math.min(rowMin.get(y) ?? x, x));
    rowMax.set(y, Math.max(rowMax.get(y) ?? x, x));
    for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]] as const) {
      const xx = x + dx;
      const yy = y + dy;
      if (xx < x0 || xx > x1 || yy < y0 || yy > y1) continue;
      const k = (yy - y0) * bw + xx - x0;
      if (seen[k] || data[yy * w + xx]! > t || (xx - c.x) ** 2 + (yy - c.y) ** 2 > limit2) continue;
      seen[k] = 1;
      stack.push(yy * w + xx);
    }
  }
  if (n < 12) return null;
  let widest = 0;
  let mid = sx / n;
  let lowest = 0;
  for (const [y, a] of rowMin) {
    const b = rowMax.get(y)!;
    if (b - a + 1 > widest) {
      widest = b - a + 1;
      mid = (a + b) / 2;
    }
    lowest = Math.max(lowest, y);
  }
  const r = widest / 2;
  return { x: mid, y: lowest + 0.5 - r, r };
}
