/**
 * Local similarity of every pair of cylinders (one from each template), bit-based MCC:
 *
 *   sim(a, b) = 1 - sqrt(popcount(a' xor b')) / (sqrt(popcount(a')) + sqrt(popcount(b')))
 *
 * where a' and b' keep only the cells valid in BOTH cylinders. Pairs whose directions differ by more than the
 * allowed rotation, or with too few commonly valid cells, or with no set bit, score 0.
 *
 * This is the matcher's hot loop (about 40 x 40 / 3 pairs per comparison), so it is plain 32-bit integer work: a SWAR
 * popcount whose per-byte partial sums are accumulated over several words before being folded, a mask-free path when
 * both cylinders are valid everywhere, and popcount(a') computed as popcount(a) minus the (usually zero) bits of a in
 * cells invalid in b.
 */
import { DESCRIPTOR, DESCRIPTOR_SAMPLES } from '../descriptor.ts';
import type { CylinderLayout, CylinderSet } from './cylinders.ts';
import type { MccParams } from './params.ts';

function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/**
 * Set bits of two words as four byte counters (at most 16 each): the 4-bit counts of both words (at most 4 each) are
 * added before widening to bytes, which halves the widening work.
 */
function pairBytes(v: number, u: number): number {
  v = (v - ((v >>> 1) & 0x55555555)) | 0;
  u = (u - ((u >>> 1) & 0x55555555)) | 0;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333) + (u & 0x33333333) + ((u >>> 2) & 0x33333333);
  return (v & 0x0f0f0f0f) + ((v >>> 4) & 0x0f0f0f0f);
}

/** Horizontal sum of the four byte counters of a SWAR accumulator. */
function foldBytes(acc: number): number {
  acc = (acc & 0x00ff00ff) + ((acc >>> 8) & 0x00ff00ff);
  return (acc & 0xffff) + (acc >>> 16);
}

export interface SimilaritySide {
  cyl: CylinderSet;
  /** Minutia directions quantised to 1/256 of a turn. */
  angleQ: Uint8Array;
}

/** sqrt(0..n), grown on demand: popcounts are small integers, and a lookup is cheaper than Math.sqrt here. */
let sqrtTable = new Float64Array(0);
function sqrtTableFor(bits: number): Float64Array {
  if (sqrtTable.length <= bits) sqrtTable = Float64Array.from({ length: bits + 1 }, (_, i) => Math.sqrt(i));
  return sqrtTable;
}

/** The pairs with a similarity above 0, as parallel arrays: pair index (i * b.count + j) and value. */
export interface SimilarityList {
  index: Int32Array;
  value: Float32Array;
  /** Entries in use. */
  length: number;
}

export function similarityList(capacity: number): SimilarityList {
  return { index: new Int32Array(capacity), value: new Float32Array(capacity), length: 0 };
}

/**
 * Fills `out` (capacity at least a.count * b.count) with every pair whose similarity is above 0.
 * `maxRotationQ`: largest direction difference allowed, in 1/256 turns. `minCommonCells`: absolute cell count.
 */
export function localSimilarities(a: SimilaritySide, b: SimilaritySide, layout: CylinderLayout, maxRotationQ: number, minCommonCells: number, out: SimilarityList): void {
  const na = a.cyl.index.length;
  const nb = b.cyl.index.length;
  const W = layout.words;
  const CW = layout.cellWords;
  const bitsA = a.cyl.bits, bitsB = b.cyl.bits;
  const masksA = a.cyl.masks, masksB = b.cyl.masks;
  const cmA = a.cyl.cellMasks, cmB = b.cyl.cellMasks;
  const angA = a.angleQ, angB = b.angleQ;
  const fullAs = a.cyl.full, fullBs = b.cyl.full;
  const onesAs = a.cyl.ones, onesBs = b.cyl.ones;
  const outIndex = out.index, outValue = out.value;
  const sq = sqrtTableFor(W * 32);
  let nonZero = 0;
  // Both sides are sorted by direction, so the B cylinders within maxRotationQ of A's i-th form a circular run that
  // starts at `first`, found by binary search; no pair outside the allowed rotation is even looked at.
  const everything = 2 * maxRotationQ + 1 >= 256;
  for (let i = 0; i < na; i++) {
    const oa = i * W;
    const qa = angA[i]!;
    const fullA = fullAs[i] === 1;
    const onesA = onesAs[i]!;
    const row = i * nb;
    // The default layout (8 cells across, 6 sections) has 10 words per cylinder: A's stay in registers.
    const ten = W === 10 && fullA;
    const a0 = ten ? bitsA[oa]! : 0, a1 = ten ? bitsA[oa + 1]! : 0, a2 = ten ? bitsA[oa + 2]! : 0, a3 = ten ? bitsA[oa + 3]! : 0;
    const a4 = ten ? bitsA[oa + 4]! : 0, a5 = ten ? bitsA[oa + 5]! : 0, a6 = ten ? bitsA[oa + 6]! : 0, a7 = ten ? bitsA[oa + 7]! : 0;
    const a8 = ten ? bitsA[oa + 8]! : 0, a9 = ten ? bitsA[oa + 9]! : 0;
    let first = 0, count = nb;
    if (!everything) {
      const lo = (qa - maxRotationQ) & 255;
      let l = 0, h = nb;
      while (l < h) { const m = (l + h) >> 1; if (angB[m]! < lo) l = m + 1; else h = m; }
      first = l === nb ? 0 : l;
      count = 0;
      for (let j = first; count < nb; count++) {
        let dq = (qa - angB[j]!) & 255;
        if (dq > 128) dq = 256 - dq;
        if (dq > maxRotationQ) break;
        if (++j === nb) j = 0;
      }
    }
    for (let step = 0; step < count; step++) {
      let j = first + step;
      if (j >= nb) j -= nb;
      const ob = j * W;
      let pa = onesA, pb = onesBs[j]!;
      let x = 0;
      if (fullA && fullBs[j] === 1) {
        if (ten) {
          // Five byte-count words of at most 16 per byte: their sum cannot carry from one byte into the next.
          x = foldBytes(
            pairBytes(a0 ^ bitsB[ob]!, a1 ^ bitsB[ob + 1]!) + pairBytes(a2 ^ bitsB[ob + 2]!, a3 ^ bitsB[ob + 3]!) +
              pairBytes(a4 ^ bitsB[ob + 4]!, a5 ^ bitsB[ob + 5]!) + pairBytes(a6 ^ bitsB[ob + 6]!, a7 ^ bitsB[ob + 7]!) +
              pairBytes(a8 ^ bitsB[ob + 8]!, a9 ^ bitsB[ob + 9]!),
          );
        } else {
          // Byte counters gain at most 16 per word pair: fold every 15 pairs.
          let acc = 0;
          let w = 0;
          for (let k = 0; w + 1 < W; w += 2, k++) {
            if (k === 15) { x += foldBytes(acc); acc = 0; k = 0; }
            acc = (acc + pairBytes(bitsA[oa + w]! ^ bitsB[ob + w]!, bitsA[oa + w + 1]! ^ bitsB[ob + w + 1]!)) | 0;
          }
          x += foldBytes(acc);
          if (w < W) x += popcount(bitsA[oa + w]! ^ bitsB[ob + w]!);
        }
      } else {
        let common = 0;
        const ca = i * CW, cb = j * CW;
        for (let w = 0; w < CW; w++) common += popcount(cmA[ca + w]! & cmB[cb + w]!);
        if (common < minCommonCells) continue;
        let acc = 0;
        for (let w = 0, k = 0; w < W; w++, k++) {
          if (k === 30) { x += foldBytes(acc); acc = 0; k = 0; }
          const wa = bitsA[oa + w]!, wb = bitsB[ob + w]!;
          const ma = masksA[oa + w]!, mb = masksB[ob + w]!;
          // Bits are only set in valid cells: a's bits where b is invalid (usually none) leave popcount(a').
          const outA = wa & ~mb, outB = wb & ~ma;
          if (outA !== 0) pa -= popcount(outA);
          if (outB !== 0) pb -= popcount(outB);
          let v = (wa ^ wb) & ma & mb;
          v = (v - ((v >>> 1) & 0x55555555)) | 0;
          v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
          acc = (acc + ((v + (v >>> 4)) & 0x0f0f0f0f)) | 0;
        }
        x += foldBytes(acc);
      }
      if (pa + pb === 0) continue;
      const s = 1 - sq[x]! / (sq[pa]! + sq[pb]!);
      if (s > 0) { outIndex[nonZero] = row + j; outValue[nonZero] = s; nonZero++; }
    }
  }
  out.length = nonZero;
}

/**
 * Orientation descriptors (descriptor.ts) as the matcher compares them: per minutia and sample, the doubled-angle unit
 * vector (cos 2t, sin 2t) of its bin centre t ((0, 0) off the finger), interleaved, and a bit per sample on the
 * finger. The agreement of two descriptors, the mean cos(2 (t - u)) over the samples on the finger in both, is then
 * a dot product over the popcount of the common bits.
 */
export interface DescriptorVectors {
  /** 2 x DESCRIPTOR_SAMPLES floats per minutia: cos, sin, cos, sin, ... */
  vectors: Float32Array;
  mask: Uint32Array;
}

export function descriptorVectors(codes: readonly Uint8Array[]): DescriptorVectors {
  const n = codes.length;
  const out = { vectors: new Float32Array(n * 2 * DESCRIPTOR_SAMPLES), mask: new Uint32Array(n) };
  for (let t = 0; t < n; t++) {
    for (let s = 0; s < DESCRIPTOR_SAMPLES; s++) {
      const c = codes[t]![s]!;
      if (c === 0) continue;
      const doubled = (2 * Math.PI * (c - 1)) / DESCRIPTOR.levels;
      out.vectors[(t * DESCRIPTOR_SAMPLES + s) * 2] = Math.cos(doubled);
      out.vectors[(t * DESCRIPTOR_SAMPLES + s) * 2 + 1] = Math.sin(doubled);
      out.mask[t]! |= 1 << s;
    }
  }
  return out;
}

/** The two templates' descriptors, when both have them: what consolidation and pairing weigh similarities with. */
export interface DescriptorPair {
  a: DescriptorVectors;
  b: DescriptorVectors;
}

/**
 * The weight of local similarity `v` between cylinder i of A and cylinder j of B: how well the ridge flow around the
 * two minutiae agrees, clipped at 0; `descriptorUnknown` where the two descriptors share fewer than
 * descriptorMinSamples points on the finger, and for similarities below descriptorFrom (weak cylinder matches decide
 * little: not worth a comparison). Cylinders alike in flow that disagrees are chance coincidences of minutiae, common
 * between different fingers with few of them. Consolidation and pairing ask it only for the similarities they use.
 */
export function descriptorWeight(d: DescriptorPair, i: number, j: number, v: number, p: MccParams): number {
  if (v < p.descriptorFrom) return p.descriptorUnknown;
  const common = popcount(d.a.mask[i]! & d.b.mask[j]!);
  if (common < p.descriptorMinSamples) return p.descriptorUnknown;
  const va = d.a.vectors, vb = d.b.vectors;
  const V = 2 * DESCRIPTOR_SAMPLES;
  let dot = 0;
  for (let x = i * V, y = j * V, end = x + V; x < end; x++, y++) dot += va[x]! * vb[y]!;
  return dot > 0 ? dot / common : 0;
}
