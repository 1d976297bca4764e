/**
 * The iris matcher: normalised fractional Hamming distance, minimum over rotations (hamming.ts for the definition,
 * hamming-wasm.ts for the inner loop). Codes are "prepared" into slots of the wasm module's memory once; a slot
 * goes back to the free list when its PreparedIris is garbage-collected (or `release`d).
 *
 * Score = 1 - HD (higher is more alike); the decision is HD <= threshold. IRIS_DEFAULT_THRESHOLD was set from real
 * data: see BENCHMARKS.md (tuning and calibration on CASIA-IrisV1 eyes 001-027, the report on eyes 028-054).
 */
import { BadTemplateError } from '../../protocol/errors.ts';
import type { ComparisonResult } from '../modality.ts';
import { CODE_BYTES } from './encode.ts';
import type { HammingResult } from './hamming.ts';
import { SLOT_BYTES, wasmMatcher, writeSlot } from './hamming-wasm.ts';
import { decodeIrisTemplate } from './template.ts';

export const IRIS_MATCH = Object.freeze({
  /** Rotation search, in code columns of 360/128 degrees: +-8 is +-22.5 degrees of head tilt. */
  maxShift: 8,
  /** Bits typically compared (median over the calibration pairs): the HD of such a comparison is left as it is. */
  typicalBits: 1100,
  /** Fewer bits than this in common: no evidence either way (HD 0.5). */
  minBits: 200,
});

export const IRIS_DEFAULT_THRESHOLD = 0.34;

export interface PreparedIris {
  readonly slot: number;
  readonly usableBits: number;
}

const free: number[] = [];
let slots = 0;
/** The scratch area for compare results sits in the first slot, never handed out. */
const SCRATCH = 0;
const registry = new FinalizationRegistry<number>((slot) => free.push(slot));

function allocate(): number {
  const m = wasmMatcher();
  if (free.length) return free.pop()!;
  const slot = ++slots;
  const need = (slot + 1) * SLOT_BYTES;
  if (need > m.memory.buffer.byteLength) m.memory.grow(Math.ceil((need - m.memory.buffer.byteLength) / 65536) + 16);
  return slot;
}

export function prepareIris(code: Uint8Array, mask: Uint8Array): PreparedIris {
  if (code.length !== CODE_BYTES || mask.length !== CODE_BYTES) throw new BadTemplateError(`an iris code and mask are ${CODE_BYTES} bytes each`);
  const slot = allocate();
  writeSlot(wasmMatcher().memory, slot * SLOT_BYTES, code, mask);
  let bits = 0;
  for (const b of mask) bits += popcount8(b);
  const p: PreparedIris = { slot, usableBits: bits };
  registry.register(p, slot, p);
  return p;
}

/** Gives the slot back now (instead of at garbage collection); the PreparedIris must not be used again. */
export function releaseIris(p: PreparedIris): void {
  if (registry.unregister(p)) free.push(p.slot);
}

export function prepareIrisTemplate(bytes: Uint8Array): PreparedIris {
  const t = decodeIrisTemplate(bytes);
  return prepareIris(t.code, t.mask);
}

/** The best rotation's normalised HD of two prepared codes (A is turned). */
let view: Int32Array | null = null;

/** The best rotation's normalised HD of two prepared codes (A is turned). */
export function irisHamming(a: PreparedIris, b: PreparedIris, o: { maxShift?: number } = {}): HammingResult {
  const m = wasmMatcher();
  const S = o.maxShift ?? IRIS_MATCH.maxShift;
  if (!Number.isInteger(S) || S < 0 || S > 63) throw new RangeError(`maxShift must be an integer 0-63, got ${S}`);
  m.compare(a.slot * SLOT_BYTES, b.slot * SLOT_BYTES, S, SCRATCH);
  // The view is remade only when memory.grow replaced the buffer.
  if (!view || view.buffer !== m.memory.buffer) view = new Int32Array(m.memory.buffer, SCRATCH, 128);
  const out = view;
  const { typicalBits, minBits } = IRIS_MATCH;
  let bestHd = 1;
  let bestK = 0;
  for (let k = 0; k <= 2 * S; k++) {
    const bits = out[2 * k + 1]!;
    const hd = bits < minBits ? 0.5 : 0.5 - (0.5 - out[2 * k]! / bits) * Math.sqrt(bits / typicalBits);
    if (hd < bestHd) {
      bestHd = hd;
      bestK = k;
    }
  }
  const bits = out[2 * bestK + 1]!;
  return { hd: bestHd, raw: bits ? out[2 * bestK]! / bits : 0.5, bits, shift: bestK - S };
}

export function compareIrises(a: PreparedIris, b: PreparedIris, o: { threshold?: number; maxShift?: number } = {}): ComparisonResult & { bits: number; shift: number } {
  const threshold = o.threshold ?? IRIS_DEFAULT_THRESHOLD;
  const r = irisHamming(a, b, o);
  return { score: 1 - r.hd, native: { name: 'hamming_distance', value: r.hd }, threshold, decision: r.hd <= threshold ? 'match' : 'no_match', bits: r.bits, shift: r.shift };
}

export function compareIrisTemplateBytes(a: Uint8Array, b: Uint8Array, o: { threshold?: number } = {}): ComparisonResult {
  const pa = prepareIrisTemplate(a);
  const pb = prepareIrisTemplate(b);
  try {
    const { bits: _b, shift: _s, ...r } = compareIrises(pa, pb, o);
    return r;
  } finally {
    releaseIris(pa);
    releaseIris(pb);
  }
}

function popcount8(b: number): number {
  let n = 0;
  for (; b; b &= b - 1) n++;
  return n;
}
