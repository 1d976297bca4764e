/**
 * The matcher's inner loop in WebAssembly, assembled here byte by byte (no toolchain): for each rotation s in
 * [-S, S], over the 32 64-bit words of two codes, diff = popcnt((A_s xor B) and MA_s and MB), bits = popcnt(MA_s and
 * MB). JavaScript has no 64-bit popcount; wasm's i64.popcnt is one instruction, which is what makes 500,000
 * comparisons a second with the rotation search possible on one core.
 *
 * A prepared code occupies one SLOT_BYTES slot of the module's memory:
 *   [0, 2048)     code in 4 column alignments: alignment p holds columns p, p+1, ... of the code repeated twice
 *                 (64 words each), so A turned by any s is 32 consecutive words of one alignment
 *   [2048, 4096)  the mask, likewise
 *   [4096, 4352)  the code as it is (32 words)
 *   [4352, 4608)  the mask as it is
 * compare(a, b, S, out) writes 2S + 1 pairs of i32 (diff, bits), for s = -S .. S, at out.
 */
import { CODE_BYTES, CODE_COLS } from './encode.ts';

export const SLOT_BYTES = 4608;
const WORDS = CODE_BYTES / 8; // 32
const ALIGN_WORDS = 2 * WORDS; // 64
if (WORDS !== 32 || CODE_COLS !== 128) throw new Error('the wasm matcher is laid out for 128 columns of 16 bits');

// ---- a very small assembler ------------------------------------------------------------------------------------
const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
};
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const str = (s: string): number[] => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];

const I32 = 0x7f;
const I64 = 0x7e;
const op = {
  get: (i: number) => [0x20, ...uleb(i)],
  set: (i: number) => [0x21, ...uleb(i)],
  i32: (v: number) => [0x41, ...sleb(v)],
  i64: (v: number) => [0x42, ...sleb(v)],
  load64: (offset: number) => [0x29, 3, ...uleb(offset)],
  store32: (offset: number) => [0x36, 2, ...uleb(offset)],
  add: [0x6a],
  sub: [0x6b],
  and: [0x71],
  shl: [0x74],
  shrU: [0x76],
  leS: [0x4c],
  ltU: [0x49],
  and64: [0x83],
  xor64: [0x85],
  popcnt64: [0x7b],
  add64: [0x7c],
  wrap: [0xa7],
  loop: [0x03, 0x40],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  end: [0x0b],
};

function compareBody(): number[] {
  // params: 0 a, 1 b, 2 S, 3 out; locals: 4 s, 5 t, 6 ac, 7 am, 8 i, 9 diff (i64), 10 bits (i64), 11 m (i64)
  const [a, b, S, out, s, t, ac, am, i, diff, bits, m] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const code: number[] = [
    ...op.i32(0), ...op.get(S), ...op.sub, ...op.set(s),
    ...op.loop,
    // t = (-s) & 127; ac = a + ((t & 3) * 64 + (t >> 2)) * 8; am = ac + 2048
    ...op.i32(0), ...op.get(s), ...op.sub, ...op.i32(CODE_COLS - 1), ...op.and, ...op.set(t),
    ...op.get(a),
    ...op.get(t), ...op.i32(3), ...op.and, ...op.i32(6), ...op.shl,
    ...op.get(t), ...op.i32(2), ...op.shrU, ...op.add,
    ...op.i32(3), ...op.shl, ...op.add, ...op.set(ac),
    ...op.get(ac), ...op.i32(4 * ALIGN_WORDS * 8), ...op.add, ...op.set(am),
    ...op.i64(0), ...op.set(diff), ...op.i64(0), ...op.set(bits), ...op.i32(0), ...op.set(i),
    ...op.loop,
    // m = MA_s[i] & MB[i]
    ...op.get(am), ...op.get(i), ...op.add, ...op.load64(0),
    ...op.get(b), ...op.get(i), ...op.add, ...op.load64(4352),
    ...op.and64, ...op.set(m),
    // diff += popcnt((A_s[i] ^ B[i]) & m)
    ...op.get(diff),
    ...op.get(ac), ...op.get(i), ...op.add, ...op.load64(0),
    ...op.get(b), ...op.get(i), ...op.add, ...op.load64(4096),
    ...op.xor64, ...op.get(m), ...op.and64, ...op.popcnt64, ...op.add64, ...op.set(diff),
    // bits += popcnt(m)
    ...op.get(bits), ...op.get(m), ...op.popcnt64, ...op.add64, ...op.set(bits),
    ...op.get(i), ...op.i32(8), ...op.add, ...op.set(i),
    ...op.get(i), ...op.i32(WORDS * 8), ...op.ltU, ...op.brIf(0),
    ...op.end,
    ...op.get(out), ...op.get(diff), ...op.wrap, ...op.store32(0),
    ...op.get(out), ...op.get(bits), ...op.wrap, ...op.store32(4),
    ...op.get(out), ...op.i32(8), ...op.add, ...op.set(out),
    ...op.get(s), ...op.i32(1), ...op.add, ...op.set(s),
    ...op.get(s), ...op.get(S), ...op.leS, ...op.brIf(0),
    ...op.end,
    ...op.end,
  ];
  const locals = vec([[5, I32], [3, I64]]);
  const body = [...locals, ...code];
  return [...uleb(body.length), ...body];
}

export function assembleMatcherModule(): Uint8Array {
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32]]), ...vec([])]])),
    ...section(3, vec([[0]])),
    ...section(5, vec([[0x00, ...uleb(1)]])),
    ...section(7, vec([[...str('compare'), 0x00, 0], [...str('memory'), 0x02, 0]])),
    ...section(10, vec([compareBody()])),
  ];
  return Uint8Array.from(bytes);
}

/** The little of the WebAssembly API used here (tsconfig's lib has no DOM, where its types live). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export interface WasmMatcher {
  memory: WasmMemory;
  compare(a: number, b: number, maxShift: number, out: number): void;
}

let instance: WasmMatcher | null = null;

/** The module, compiled once per process (synchronously: it is a few hundred bytes). */
export function wasmMatcher(): WasmMatcher {
  if (!instance) {
    const mod = new WA.Module(assembleMatcherModule());
    const exports = new WA.Instance(mod, {}).exports as unknown as { compare: WasmMatcher['compare']; memory: WasmMemory };
    instance = { memory: exports.memory, compare: exports.compare };
  }
  return instance;
}

/** Writes a code and mask into a slot at byte offset `base` of the module's memory, in the layout above. */
export function writeSlot(memory: WasmMemory, base: number, code: Uint8Array, mask: Uint8Array): void {
  const mem = new Uint8Array(memory.buffer, base, SLOT_BYTES);
  const column = (src: Uint8Array, c: number) => (c = c % CODE_COLS, [src[2 * c]!, src[2 * c + 1]!]);
  for (const [src, off] of [[code, 0], [mask, 2048]] as const) {
    for (let p = 0; p < 4; p++) {
      for (let k = 0; k < 4 * ALIGN_WORDS; k++) {
        const [lo, hi] = column(src, p + k);
        mem[off + p * ALIGN_WORDS * 8 + 2 * k] = lo!;
        mem[off + p * ALIGN_WORDS * 8 + 2 * k + 1] = hi!;
      }
    }
  }
  mem.set(code, 4096);
  mem.set(mask, 4352);
}
