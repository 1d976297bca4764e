/**
 * Global consolidation: Local Similarity Sort with Relaxation (LSS-R, MCC paper section 5).
 *
 * 1. Take the nR = min(nA, nB, maxRelaxPairs) pairs of highest local similarity (optionally one per minutia).
 * 2. Relaxation: each pair's value is pulled towards the values of the pairs that are geometrically compatible with
 *    it (same distance between the two minutiae on both sides, same relative directions, same radial angle), so
 *    pairs that agree with a consistent global arrangement reinforce each other and isolated lucky pairs fade.
 * 3. Keep the nP pairs whose value held up best (efficiency = final / initial), each minutia used at most once, and
 *    average their final values: the score, in [0, 1].
 *
 * Compatibility uses per-template tables precomputed at prepare time (pairwise distances and relative angles in
 * 1/256 turns), so a comparison needs no trigonometry.
 */
import { sigmoid, type MccParams } from './params.ts';
import { descriptorWeight, type DescriptorPair, type SimilarityList } from './similarity.ts';

export interface GeometrySide {
  /** Number of minutiae with a valid cylinder. */
  count: number;
  /** count x count distances (px). */
  dist: Float32Array;
  /** count x count: direction of minutia k minus direction of t, in 1/256 turns. */
  dirRel: Uint8Array;
  /** count x count: direction of the segment t -> k minus direction of t, in 1/256 turns. */
  radRel: Uint8Array;
}

/** Sigmoid tables for one parameter set. */
export interface CompatTables {
  /** Z(d1) sampled every 1/D1_SCALE px. */
  d1: Float32Array;
  /** The index (in 1/D1_SCALE px) from which every sample of Z(d1) is below RHO_EPSILON: pairs of pairs whose distances differ by that much are incompatible. */
  d1Cut: number;
  /** Z(d2), Z(d3) for 0..128 units of 1/256 turn. */
  d2: Float32Array;
  d3: Float32Array;
}

const D1_SCALE = 4;
const D1_MAX = 256; // px; beyond it the sigmoid is 0 for any sane tau1.

export function compatTables(p: MccParams): CompatTables {
  const d1 = new Float32Array(D1_MAX * D1_SCALE + 1);
  for (let i = 0; i < d1.length; i++) d1[i] = sigmoid(i / D1_SCALE, p.mu1, p.tau1);
  const d2 = new Float32Array(129);
  const d3 = new Float32Array(129);
  for (let i = 0; i <= 128; i++) {
    const a = (i * 2 * Math.PI) / 256;
    d2[i] = sigmoid(a, p.mu2, p.tau2);
    d3[i] = sigmoid(a, p.mu3, p.tau3);
  }
  // From d1Cut on every sample is below RHO_EPSILON (none such: no cut).
  let d1Cut = d1.length;
  while (d1Cut > 0 && d1[d1Cut - 1]! < RHO_EPSILON) d1Cut--;
  return { d1, d2, d3, d1Cut: d1Cut === d1.length ? Infinity : d1Cut };
}

/** nP of the paper: between minNP and maxNP, growing with the smaller template. */
export function pairsToAverage(nA: number, nB: number, p: MccParams): number {
  return p.minNP + Math.round(sigmoid(Math.min(nA, nB), p.muP, p.tauP) * (p.maxNP - p.minNP));
}

// Scratch buffers, grown on demand: consolidation runs tens of thousands of times a second and must not allocate.
interface Scratch {
  cap: number;
  cand: Int32Array;
  r: Int32Array; c: Int32Array;
  l0: Float64Array; l: Float64Array; l2: Float64Array;
  /** Compatible pairs of pairs (k < h) and their rho. */
  eu: Int32Array; ev: Int32Array; ew: Float64Array;
  order: Int32Array; eff: Float64Array;
  /** Candidates' similarities weighted by their descriptors (indexed like the list). */
  key: Float64Array;
  cand2: Int32Array;
  usedA: Uint8Array; usedB: Uint8Array;
}
let scratch: Scratch | undefined;
const hist = new Int32Array(1025);
const binStart = new Int32Array(1025);
/** Compatibilities below this are treated as 0 (they change no ranking) so relaxation can skip them. */
const RHO_EPSILON = 1e-3;

function ensure(n: number, listLength: number, na: number, nb: number): Scratch {
  if (scratch && scratch.cap >= n && scratch.cand.length >= listLength && scratch.key.length >= listLength && scratch.cand2.length >= listLength && scratch.usedA.length >= na && scratch.usedB.length >= nb) return scratch;
  const cap = Math.max(n, 64);
  const m = Math.max(na, nb, 64);
  scratch = {
    cap, cand: new Int32Array(Math.max(listLength, 4096)), key: new Float64Array(Math.max(listLength, 4096)), cand2: new Int32Array(Math.max(listLength, 4096)),
    r: new Int32Array(cap), c: new Int32Array(cap), l0: new Float64Array(cap), l: new Float64Array(cap), l2: new Float64Array(cap),
    eu: new Int32Array(cap * cap), ev: new Int32Array(cap * cap), ew: new Float64Array(cap * cap),
    order: new Int32Array(cap), eff: new Float64Array(cap),
    usedA: new Uint8Array(m), usedB: new Uint8Array(m),
  };
  return scratch;
}

/** Sorts idx[0..n) by key[idx] descending (ties: smaller value first); n is small (tens): insertion sort. */
function sortDesc(idx: Int32Array, n: number, key: ArrayLike<number>): void {
  for (let i = 1; i < n; i++) {
    const v = idx[i]!;
    const kv = key[v]!;
    let j = i - 1;
    while (j >= 0) {
      const u = idx[j]!;
      const ku = key[u]!;
      if (ku > kv || (ku === kv && u < v)) break;
      idx[j + 1] = u;
      j--;
    }
    idx[j + 1] = v;
  }
}

/** The pairs that entered the relaxation, most similar first (cylinder indices, local similarity), as consolidate leaves them. */
export interface TopPairs {
  a: Int32Array;
  b: Int32Array;
  similarity: Float64Array;
  /** Their values after the relaxation (high when the pair agrees with many others). */
  relaxed: Float64Array;
  count: number;
}

/**
 * The entries whose key falls in the highest histogram bins (1/1024 wide) that together hold at least `want` of them,
 * written to `out` best bin first, so that an insertion sort of them only reorders within bins; returns how many.
 * `entries` lists the entries to consider (null: 0 .. n - 1). The walk down the bins starts at the highest in use
 * (local similarities rarely come near 1).
 */
function bucketBest(key: ArrayLike<number>, entries: Int32Array | null, n: number, want: number, out: Int32Array): number {
  hist.fill(0);
  let top = 0;
  for (let q = 0; q < n; q++) {
    const b = (key[entries ? entries[q]! : q]! * 1024) | 0;
    hist[b]!++;
    if (b > top) top = b;
  }
  let cut = top, acc = 0;
  while (cut > 0 && acc + hist[cut]! < want) acc += hist[cut--]!;
  binStart[top] = 0;
  for (let b = top; b > cut; b--) binStart[b - 1] = binStart[b]! + hist[b]!;
  const count = binStart[cut]! + hist[cut]!;
  for (let q = 0; q < n; q++) {
    const e = entries ? entries[q]! : q;
    const b = (key[e]! * 1024) | 0;
    if (b >= cut) out[binStart[b]!++] = e;
  }
  return count;
}

/**
 * Score in [0, 1] from the pairs of positive local similarity (`list`, indices i * b.count + j). When `top` is given,
 * it receives the pairs selected for the relaxation (the pairing stage anchors on them).
 */
export function consolidate(a: GeometrySide, b: GeometrySide, list: SimilarityList, p: MccParams, t: CompatTables, top?: TopPairs, descriptors?: DescriptorPair | null): number {
  const na = a.count, nb = b.count;
  const len = list.length;
  if (top) top.count = 0;
  if (na === 0 || nb === 0 || len === 0) return 0;
  const nR = Math.min(na, nb, p.maxRelaxPairs);
  const s = ensure(nR, len, na, nb);
  const vals = list.value, idxs = list.index;

  // Top nR pairs by local similarity, each minutia used at most once (greedy, best first): a histogram cut leaves a
  // few times nR candidates, sorted exactly, then taken in order. With descriptors more candidates are taken, weighted
  // by them, and the best of those by weight cut again the same way.
  const want = (p.uniquePairs ? 3 : 1) * nR;
  const cand = s.cand;
  const nc = bucketBest(vals, null, len, descriptors ? p.descriptorCandidates * nR : want, cand);
  let key: ArrayLike<number> = vals;
  let ranked = cand, count = nc;
  if (descriptors) {
    const k = s.key;
    for (let q = 0; q < nc; q++) {
      const e = cand[q]!;
      const idx = idxs[e]!;
      const r = (idx / nb) | 0;
      k[e] = vals[e]! * descriptorWeight(descriptors, r, idx - r * nb, vals[e]!, p);
    }
    ranked = s.cand2;
    count = bucketBest(k, cand, nc, want, ranked);
    key = k;
  }
  sortDesc(ranked, count, key);
  const usedA = s.usedA, usedB = s.usedB;
  let n = 0;
  for (let q = 0; q < count && n < nR; q++) {
    const e = ranked[q]!;
    const idx = idxs[e]!;
    const r = (idx / nb) | 0, c = idx - r * nb;
    if (p.uniquePairs) {
      if (usedA[r] || usedB[c]) continue;
      usedA[r] = 1;
      usedB[c] = 1;
    }
    s.r[n] = r;
    s.c[n] = c;
    s.l0[n] = key[e]!;
    s.l[n] = key[e]!;
    n++;
  }
  if (p.uniquePairs) for (let k = 0; k < n; k++) { usedA[s.r[k]!] = 0; usedB[s.c[k]!] = 0; }
  if (top) {
    top.a.set(s.r.subarray(0, n));
    top.b.set(s.c.subarray(0, n));
    top.similarity.set(s.l0.subarray(0, n));
    top.count = n;
  }

  // Pairwise compatibility rho(k, h) = rho(h, k) of the selected pairs, kept as an edge list: most pairs of pairs
  // are incompatible, so relaxation only visits the few that support each other.
  const { d1, d2, d3 } = t;
  const d1Max = d1.length - 1, d1Cut = t.d1Cut;
  const eu = s.eu, ev = s.ev, ew = s.ew;
  const sr = s.r, sc = s.c;
  const aDist = a.dist, bDist = b.dist, aDir = a.dirRel, bDir = b.dirRel, aRad = a.radRel, bRad = b.radRel;
  let e = 0;
  for (let k = 0; k < n; k++) {
    const rk = sr[k]!, ck = sc[k]!;
    const rowA = rk * na, rowB = ck * nb;
    for (let h = k + 1; h < n; h++) {
      const rh = sr[h]!, ch = sc[h]!;
      if (rk === rh || ck === ch) continue;
      const ia = rowA + rh, ib = rowB + ch;
      // Most pairs of pairs fail on distance alone: the cut (where Z(d1) falls below RHO_EPSILON) spares the lookup.
      const dd = Math.abs(aDist[ia]! - bDist[ib]!) * D1_SCALE;
      if (dd >= d1Cut) continue;
      const z1 = d1[dd < d1Max ? dd | 0 : d1Max]!;
      if (z1 < RHO_EPSILON) continue;
      let q2 = (aDir[ia]! - bDir[ib]!) & 255;
      if (q2 > 128) q2 = 256 - q2;
      const z2 = z1 * d2[q2]!;
      if (z2 < RHO_EPSILON) continue;
      let q3 = (aRad[ia]! - bRad[ib]!) & 255;
      if (q3 > 128) q3 = 256 - q3;
      const rho = z2 * d3[q3]!;
      if (rho < RHO_EPSILON) continue;
      eu[e] = k;
      ev[e] = h;
      ew[e] = rho;
      e++;
    }
  }

  // Relaxation: lambda_k <- w lambda_k + (1 - w) / (n - 1) * sum_h rho(k, h) lambda_h.
  const w = p.relaxWeight;
  const norm = n > 1 ? (1 - w) / (n - 1) : 0;
  let cur = s.l, next = s.l2;
  for (let it = 0; it < p.relaxIterations; it++) {
    for (let k = 0; k < n; k++) next[k] = 0;
    for (let q = 0; q < e; q++) {
      const u = eu[q]!, v = ev[q]!, wt = ew[q]!;
      next[u]! += wt * cur[v]!;
      next[v]! += wt * cur[u]!;
    }
    for (let k = 0; k < n; k++) next[k] = w * cur[k]! + norm * next[k]!;
    const tmp = cur; cur = next; next = tmp;
  }

  if (top) top.relaxed.set(cur.subarray(0, n));

  // Most efficient pairs (final / initial value), one use per minutia, averaged over nP.
  const nP = pairsToAverage(na, nb, p);
  const order = s.order, eff = s.eff;
  for (let k = 0; k < n; k++) { order[k] = k; eff[k] = cur[k]! / s.l0[k]!; }
  sortDesc(order, n, eff);
  let sum = 0, taken = 0;
  for (let i = 0; i < n && taken < nP; i++) {
    const k = order[i]!;
    const r = s.r[k]!, c = s.c[k]!;
    if (usedA[r] || usedB[c]) continue;
    usedA[r] = 1;
    usedB[c] = 1;
    sum += cur[k]!;
    taken++;
  }
  for (let k = 0; k < n; k++) { usedA[s.r[k]!] = 0; usedB[s.c[k]!] = 0; }
  return Math.max(0, Math.min(1, sum / nP));
}
