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
import { integral, type FloatImage, type PixelBox } from './image-ops.ts';

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
  const clampX = (v: number) => Math.max(0, Math.min(w, Math.round(v)));
  const clampY = (v: number) => Math.max(0, Math.min(h, Math.round(v)));
  // The best few hundred, kept sorted (descending, ties in the order found); enough to pick `keep` distinct ones from.
  const top = new TopScores(256);
  // Box edges depend on x alone or y alone: computed once per column and per row of the grid.
  const inA = new Int32Array(w);
  const inC = new Int32Array(w);
  const outA = new Int32Array(w);
  const outC = new Int32Array(w);
  const gapA = new Int32Array(w);
  const gapC = new Int32Array(w);
  let floor = top.floor;
  for (let r = rMin; r <= rMax; r *= 1.12) {
    const step = Math.max(1, Math.round(r / 4));
    const inner = 0.7 * r;
    const outer = 1.6 * r;
    const gap = 1.1 * r;
    const xFrom = Math.ceil(r);
    for (let x = xFrom; x < w - r; x += step) {
      inA[x] = clampX(x - inner);
      inC[x] = clampX(x + inner);
      outA[x] = clampX(x - outer);
      outC[x] = clampX(x + outer);
      gapA[x] = clampX(x - gap);
      gapC[x] = clampX(x + gap);
    }
    for (let y = Math.ceil(r); y < h - r; y += step) {
      const inB = clampY(y - inner) * W;
      const inD = clampY(y + inner) * W;
      const inH = clampY(y + inner) - clampY(y - inner);
      const outB = clampY(y - outer) * W;
      const outD = clampY(y + outer) * W;
      const outH = clampY(y + outer) - clampY(y - outer);
      const gapB = clampY(y - gap) * W;
      const gapD = clampY(y + gap) * W;
      const gapH = clampY(y + gap) - clampY(y - gap);
      for (let x = xFrom; x < w - r; x += step) {
        // Each box: its pixel count, and its sum from four corners of the summed-area table (0 when empty).
        const ia = inA[x]!;
        const ic = inC[x]!;
        const aN = ic > ia && inH > 0 ? (ic - ia) * inH : 0;
        if (aN === 0) continue;
        const aSum = s[inD + ic]! - s[inB + ic]! - s[inD + ia]! + s[inB + ia]!;
        const oa = outA[x]!;
        const oc = outC[x]!;
        const bN = oc > oa && outH > 0 ? (oc - oa) * outH : 0;
        const bSum = bN ? s[outD + oc]! - s[outB + oc]! - s[outD + oa]! + s[outB + oa]! : 0;
        const ga = gapA[x]!;
        const gc = gapC[x]!;
        const mN = gc > ga && gapH > 0 ? (gc - ga) * gapH : 0;
        const mSum = mN ? s[gapD + gc]! - s[gapB + gc]! - s[gapD + ga]! + s[gapB + ga]! : 0;
        const n = bN - mN;
        if (n <= 0) continue;
        const score = (bSum - mSum) / n - aSum / aN;
        if (score > floor) floor = top.offer(score, x, y, r);
      }
    }
  }
  // Keep distinct candidates: skip those whose centre lies inside a better one.
  const out: ScoredCircle[] = [];
  for (let i = 0; i < top.length; i++) {
    const c = top.at(i);
    if (out.every((o) => Math.hypot(o.x - c.x, o.y - c.y) > Math.max(o.r, c.r))) out.push(c);
    if (out.length >= keep) break;
  }
  return out;
}

/** The `cap` highest scores offered, sorted descending; an equal score goes after those already kept. */
class TopScores {
  length = 0;
  private readonly score: Float64Array;
  private readonly x: Float64Array;
  private readonly y: Float64Array;
  private readonly r: Float64Array;

  constructor(private readonly cap: number) {
    this.score = new Float64Array(cap);
    this.x = new Float64Array(cap);
    this.y = new Float64Array(cap);
    this.r = new Float64Array(cap);
  }

  /** Scores at or below this are not kept (-Infinity until the list is full). */
  floor = -Infinity;

  /** Keeps the score if it is high enough; returns the new floor. */
  offer(score: number, x: number, y: number, r: number): number {
    const { cap } = this;
    if (this.length === cap && score <= this.score[cap - 1]!) return this.floor;
    let i = this.length;
    while (i > 0 && this.score[i - 1]! < score) i--;
    const end = Math.min(this.length, cap - 1);
    this.score.copyWithin(i + 1, i, end);
    this.x.copyWithin(i + 1, i, end);
    this.y.copyWithin(i + 1, i, end);
    this.r.copyWithin(i + 1, i, end);
    this.score[i] = score;
    this.x[i] = x;
    this.y[i] = y;
    this.r[i] = r;
    if (this.length < cap) this.length++;
    if (this.length === cap) this.floor = this.score[cap - 1]!;
    return this.floor;
  }

  at(i: number): ScoredCircle {
    return { x: this.x[i]!, y: this.y[i]!, r: this.r[i]!, score: this.score[i]! };
  }
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
  const nr = radiusCount(o);
  const arcList = o.arcs ?? [[0, 360]];
  const samples = o.samples ?? 64;
  const span = arcList.reduce((t, [a, b]) => t + (b - a), 0);
  const groups: Array<{ cos: number[]; sin: number[] }> = [];
  for (const [a, b] of arcList) {
    const k = Math.max(4, Math.round((samples * (b - a)) / span));
    const g = { cos: [] as number[], sin: [] as number[] };
    for (let i = 0; i < k; i++) {
      const t = ((a + ((i + 0.5) * (b - a)) / k) * Math.PI) / 180;
      g.cos.push(Math.cos(t));
      g.sin.push(Math.sin(t));
    }
    groups.push(g);
  }
  const angleSets = o.combine === 'weakest' ? groups : [{ cos: groups.flatMap((g) => g.cos), sin: groups.flatMap((g) => g.sin) }];
  // The sample offsets from the centre, radius by radius: the centre search only adds the centre to them.
  const profiles = angleSets.map((g) => ringOffsets(g.cos, g.sin, nr, o.rMin, rStep));
  const sigma = o.sigma ?? 1.2;
  const kr = Math.max(1, Math.ceil(2 * sigma));
  const kernel = new Float64Array(2 * kr + 1);
  let ks = 0;
  for (let i = -kr; i <= kr; i++) ks += kernel[i + kr] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < kernel.length; i++) kernel[i]! /= ks;
  const step = o.stepWidth ?? 0;
  const profile = new Float64Array(nr);
  const smooth = new Float64Array(nr);
  const scores = new Float64Array(nr);
  let bestScore = -Infinity;
  let bestX = start.x;
  let bestY = start.y;
  let bestR = o.rMin;
  const byRadius = { score: new Float64Array(nr).fill(-Infinity), x: new Float64Array(nr).fill(start.x), y: new Float64Array(nr).fill(start.y) };
  const ry = o.centreRangeY ?? o.centreRange;
  const mask = o.mask ? maskWithBounds(o.mask, img.width) : null;
  for (let cy = start.y - ry; cy <= start.y + ry + 1e-9; cy += o.centreStep) {
    for (let cx = start.x - o.centreRange; cx <= start.x + o.centreRange + 1e-9; cx += o.centreStep) {
      scores.fill(Infinity);
      for (const ring of profiles) {
        ringProfile(img, mask, cx, cy, ring, nr, profile);
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
        if (d > bestScore) {
          bestScore = d;
          bestX = cx;
          bestY = cy;
          bestR = o.rMin + k * rStep;
        }
        if (d > byRadius.score[k]!) {
          byRadius.score[k] = d;
          byRadius.x[k] = cx;
          byRadius.y[k] = cy;
        }
      }
    }
  }
  const best: ScoredCircle = { x: bestX, y: bestY, r: bestR, score: bestScore };
  if (o.pick !== 'innermost') return best;
  const floor = (o.innermostRatio ?? 0.55) * best.score;
  const sc = byRadius.score;
  for (let k = 1; k < nr - 1; k++) {
    if (sc[k]! >= floor && sc[k]! >= sc[k - 1]! && sc[k]! >= sc[k + 1]!) return { x: byRadius.x[k]!, y: byRadius.y[k]!, r: o.rMin + k * rStep, score: sc[k]! };
  }
  return best;
}

function radiusCount(o: Pick<RefineOptions, 'rMin' | 'rMax' | 'rStep'>): number {
  return Math.max(3, Math.floor((o.rMax - o.rMin) / (o.rStep ?? 1)) + 1);
}

/** The largest radius refineCircle tries with these options (at least three radii are always tried). */
export function largestRadiusTried(o: Pick<RefineOptions, 'rMin' | 'rMax' | 'rStep'>): number {
  return o.rMin + (radiusCount(o) - 1) * (o.rStep ?? 1);
}

/**
 * Pixels that circles with centres within `centre` +- `range` and radii in `radii` read on `arcs` (degrees) with
 * bilinear sampling, one box per arc, a pixel of margin around each.
 */
export function arcReach(centre: { x: number; y: number }, range: { x: number; y: number }, radii: readonly [number, number], arcs: Array<[number, number]>): PixelBox[] {
  return arcs.map(([a, b]) => {
    // cos and sin over [a, b] are extreme at its ends or at multiples of 90 degrees inside it.
    const angles = [a, b];
    for (let q = Math.ceil(a / 90) * 90; q < b; q += 90) angles.push(q);
    let cosMin = Infinity;
    let cosMax = -Infinity;
    let sinMin = Infinity;
    let sinMax = -Infinity;
    for (const d of angles) {
      const t = (d * Math.PI) / 180;
      cosMin = Math.min(cosMin, Math.cos(t));
      cosMax = Math.max(cosMax, Math.cos(t));
      sinMin = Math.min(sinMin, Math.sin(t));
      sinMax = Math.max(sinMax, Math.sin(t));
    }
    const [r0, r1] = radii;
    const lo = (m: number) => Math.min(r0 * m, r1 * m);
    const hi = (m: number) => Math.max(r0 * m, r1 * m);
    return {
      x0: Math.floor(centre.x - range.x + lo(cosMin)) - 1,
      x1: Math.floor(centre.x + range.x + hi(cosMax)) + 2,
      y0: Math.floor(centre.y - range.y + lo(sinMin)) - 1,
      y1: Math.floor(centre.y + range.y + hi(sinMax)) + 2,
    };
  });
}

interface RingOffsets {
  /** Samples per ring. */
  n: number;
  /** nr x n offsets r cos(t), r sin(t). */
  dx: Float64Array;
  dy: Float64Array;
}

function ringOffsets(cos: number[], sin: number[], nr: number, rMin: number, rStep: number): RingOffsets {
  const n = cos.length;
  const dx = new Float64Array(nr * n);
  const dy = new Float64Array(nr * n);
  for (let k = 0; k < nr; k++) {
    const r = rMin + k * rStep;
    for (let a = 0; a < n; a++) {
      dx[k * n + a] = r * cos[a]!;
      dy[k * n + a] = r * sin[a]!;
    }
  }
  return { n, dx, dy };
}

interface BoundedMask {
  mask: Uint8Array;
  /** Where rounding a point can land on a set pixel: x in [x0, x1), y in [y0, y1); empty when none is set. */
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

function maskWithBounds(mask: Uint8Array, w: number): BoundedMask {
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const x = i % w;
    const y = (i - x) / w;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  return { mask, x0: x0 - 0.5, x1: x1 + 0.5, y0: y0 - 0.5, y1: y1 + 0.5 };
}

/**
 * Mean intensity (bilinear) on each ring around (cx, cy), leaving out samples outside the image or on the mask;
 * NaN for a ring with fewer than a third of its samples left.
 */
function ringProfile(img: FloatImage, m: BoundedMask | null, cx: number, cy: number, ring: RingOffsets, nr: number, out: Float64Array): void {
  const { width: w, height: h, data } = img;
  const { n, dx, dy } = ring;
  const mask = m ? m.mask : null;
  const mx0 = m ? m.x0 : 0;
  const mx1 = m ? m.x1 : 0;
  const my0 = m ? m.y0 : 0;
  const my1 = m ? m.y1 : 0;
  for (let k = 0, q = 0; k < nr; k++) {
    let acc = 0;
    let count = 0;
    for (let a = 0; a < n; a++, q++) {
      const x = cx + dx[q]!;
      const y = cy + dy[q]!;
      // Outside the image: no sample (and no mask pixel to test).
      if (!(x >= 0 && y >= 0 && x <= w - 1 && y <= h - 1)) continue;
      if (mask && x >= mx0 && x < mx1 && y >= my0 && y < my1 && mask[Math.round(y) * w + Math.round(x)]) continue;
      // Bilinear, as image-ops `sample`.
      const x0 = Math.min(w - 2, Math.floor(x));
      const y0 = Math.min(h - 2, Math.floor(y));
      const fx = x - x0;
      const fy = y - y0;
      const i = y0 * w + x0;
      const p = data[i]!;
      const pr = data[i + 1]!;
      const pd = data[i + w]!;
      const pdr = data[i + w + 1]!;
      const v = (p + (pr - p) * fx) * (1 - fy) + (pd + (pdr - pd) * fx) * fy;
      if (v === v) {
        acc += v;
        count++;
      }
    }
    out[k] = count >= n / 3 ? acc / count : NaN;
  }
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
