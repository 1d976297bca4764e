/**
 * Error rates from genuine and impostor similarity scores (higher = more alike; a comparison matches when its
 * score is at or above the threshold). FMR(t) = impostor scores >= t / impostors; FNMR(t) = genuine scores < t /
 * genuines. Sort-based, O(n log n), typed arrays throughout (millions of impostor scores are fine).
 */
export interface OperatingPoint {
  threshold: number;
  fmr: number;
  fnmr: number;
}

export interface FnmrAtFmr {
  targetFmr: number;
  /** False when there are too few impostor pairs for the target to mean anything (fewer than 1 / target). */
  measurable: boolean;
  fnmr: number | null;
  threshold: number | null;
  fmr: number | null;
}

export interface ErrorRates {
  genuine: number;
  impostor: number;
  eer: { value: number; threshold: number };
  fnmrAt: FnmrAtFmr[];
  /** The curve, at most `maxPoints` points, FMR decreasing. */
  det: OperatingPoint[];
}

/** Every distinct threshold's operating point, in increasing threshold order (FMR falls, FNMR rises). */
export function operatingPoints(genuine: Float64Array, impostor: Float64Array): OperatingPoint[] {
  const g = Float64Array.from(genuine).sort();
  const im = Float64Array.from(impostor).sort();
  const points: OperatingPoint[] = [];
  let gi = 0; // genuine scores below the threshold
  let ii = 0; // impostor scores below the threshold
  // Threshold at the lowest score: everything matches.
  const all = mergeUnique(g, im);
  for (const t of all) {
    while (gi < g.length && g[gi]! < t) gi++;
    while (ii < im.length && im[ii]! < t) ii++;
    points.push({ threshold: t, fmr: (im.length - ii) / im.length, fnmr: gi / g.length });
  }
  // Above the highest score: nothing matches.
  points.push({ threshold: Infinity, fmr: 0, fnmr: 1 });
  return points;
}

function mergeUnique(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length || j < b.length) {
    const v = j >= b.length || (i < a.length && a[i]! <= b[j]!) ? a[i++]! : b[j++]!;
    if (k === 0 || out[k - 1] !== v) out[k++] = v;
  }
  return out.subarray(0, k);
}

export function errorRates(genuine: Float64Array, impostor: Float64Array, targets = [1e-2, 1e-3, 1e-4], maxPoints = 2000): ErrorRates {
  if (genuine.length === 0 || impostor.length === 0) throw new Error('error rates need genuine and impostor scores');
  const pts = operatingPoints(genuine, impostor);
  // EER: where FNMR - FMR changes sign, interpolated linearly between the two bracketing points.
  let eer = { value: 0.5, threshold: pts[0]!.threshold };
  for (let k = 0; k < pts.length; k++) {
    const p = pts[k]!;
    if (p.fnmr >= p.fmr) {
      if (k === 0) eer = { value: (p.fnmr + p.fmr) / 2, threshold: p.threshold };
      else {
        const q = pts[k - 1]!;
        const d0 = q.fmr - q.fnmr; // > 0
        const d1 = p.fnmr - p.fmr; // >= 0
        const w = d0 / (d0 + d1 || 1);
        eer = { value: q.fmr + w * (p.fmr - q.fmr), threshold: q.threshold + (Number.isFinite(p.threshold) ? w * (p.threshold - q.threshold) : 0) };
        // The interpolated FMR and FNMR agree at w; report their common value.
        eer.value = (q.fmr + w * (p.fmr - q.fmr) + q.fnmr + w * (p.fnmr - q.fnmr)) / 2;
      }
      break;
    }
  }
  const fnmrAt = targets.map((target): FnmrAtFmr => {
    if (impostor.length * target < 1) return { targetFmr: target, measurable: false, fnmr: null, threshold: null, fmr: null };
    const p = pts.find((x) => x.fmr <= target)!;
    return { targetFmr: target, measurable: true, fnmr: p.fnmr, threshold: p.threshold, fmr: p.fmr };
  });
  return { genuine: genuine.length, impostor: impostor.length, eer, fnmrAt, det: thinForDet(pts, maxPoints) };
}

/**
 * At most `maxPoints` of the curve, kept where a DET plot can tell them apart. Its axes are log-like, so the
 * low-FMR tail (a few hundred of a million points) is as wide as the middle: thinning evenly by index would drop it.
 * A point is kept when FMR or FNMR moved by `gap` decades since the last kept one; `gap` doubles until it fits.
 */
function thinForDet(pts: OperatingPoint[], maxPoints: number): OperatingPoint[] {
  const lg = (p: number) => Math.log10(Math.max(p, 1e-9));
  for (let gap = 0.002; ; gap *= 2) {
    const out = [pts[0]!];
    let fmr = lg(pts[0]!.fmr);
    let fnmr = lg(pts[0]!.fnmr);
    for (let k = 1; k < pts.length - 1 && out.length < 2 * maxPoints; k++) {
      const p = pts[k]!;
      const f = lg(p.fmr);
      const n = lg(p.fnmr);
      if (Math.abs(f - fmr) >= gap || Math.abs(n - fnmr) >= gap) {
        out.push(p);
        fmr = f;
        fnmr = n;
      }
    }
    if (pts.length > 1) out.push(pts[pts.length - 1]!);
    if (out.length <= maxPoints) return out;
  }
}

export function summary(scores: Float64Array): { min: number; median: number; max: number; mean: number } {
  if (scores.length === 0) return { min: NaN, median: NaN, max: NaN, mean: NaN };
  const s = Float64Array.from(scores).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]!, mean: sum / s.length };
}
