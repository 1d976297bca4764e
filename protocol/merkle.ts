/**
 * Merkle tree hashing and proofs in the manner of RFC 9162 (Certificate Transparency 2.0), section 2.1. Pure: no
 * storage, no I/O.
 *
 * - leaf hash:  SHA-256(0x00 || leaf)
 * - node hash:  SHA-256(0x01 || left || right)
 * - MTH({}) = SHA-256(""); MTH of n > 1 leaves splits at k, the largest power of two below n.
 *
 * Proof generation takes a `SubtreeHash` callback, MTH(D[start:end]), so the same code serves an in-memory array
 * of leaf hashes (tests, small trees) and a store of perfect-subtree hashes (the audit log), where each call is a
 * lookup. Tree sizes are JavaScript numbers (safe to 2^53): no 32-bit bit operations anywhere.
 */
import { createHash } from 'node:crypto';
import { BiokioskError } from './errors.ts';

export const HASH_BYTES = 32;

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);
const EMPTY_ROOT = createHash('sha256').digest();

/** SHA-256(0x00 || leaf). */
export function leafHash(leaf: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(leaf).digest();
}

/** SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** MTH of the empty tree: SHA-256 of the empty string. */
export function emptyRoot(): Buffer {
  return Buffer.from(EMPTY_ROOT);
}

export function isPowerOfTwo(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

/** k, the largest power of two strictly below n (n >= 2): where RFC 9162 splits a tree of n leaves. */
export function splitPoint(n: number): number {
  if (!Number.isSafeInteger(n) || n < 2) throw new RangeError(`splitPoint needs n >= 2, got ${n}`);
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The number of one bits of n: the number of perfect subtrees (and of frontier hashes) of a tree of n leaves. */
export function popcount(n: number): number {
  let c = 0;
  while (n > 0) {
    c += n % 2;
    n = Math.floor(n / 2);
  }
  return c;
}

/** A perfect subtree: 2^level leaves starting at index * 2^level. Level 0 is a leaf. */
export interface SubtreeId {
  level: number;
  index: number;
}

/**
 * The perfect subtrees a tree of `size` leaves decomposes into, left to right, largest first (the binary digits
 * of size). Their roots are the tree's "frontier" (the compact range [0, size)).
 */
export function perfectSubtrees(size: number): SubtreeId[] {
  checkSize(size, 'size');
  const out: SubtreeId[] = [];
  let start = 0;
  let level = 0;
  while (2 ** (level + 1) <= size) level++;
  for (; level >= 0; level--) {
    const width = 2 ** level;
    if (size - start >= width) {
      out.push({ level, index: start / width });
      start += width;
    }
  }
  return out;
}

/** MTH(D[start:end]) for a subrange of the leaves; callers only ask for 0 <= start < end. */
export type SubtreeHash = (start: number, end: number) => Buffer;

/**
 * A SubtreeHash that splits ranges the RFC way down to perfect, aligned subtrees and asks `perfect` for those.
 * Every range the proof algorithms ask for, starting from [0, n), splits into such subtrees.
 */
export function subtreeHasher(perfect: (id: SubtreeId) => Buffer): SubtreeHash {
  const mth: SubtreeHash = (start, end) => {
    const width = end - start;
    if (width < 1) throw new RangeError(`empty subtree [${start}, ${end})`);
    if (isPowerOfTwo(width) && start % width === 0) return perfect({ level: Math.log2(width), index: start / width });
    const k = splitPoint(width);
    return nodeHash(mth(start, start + k), mth(start + k, end));
  };
  return mth;
}

/** A SubtreeHash over an in-memory array of leaf hashes (computes every interior node: O(end - start)). */
export function arraySubtreeHash(leafHashes: readonly Uint8Array[]): SubtreeHash {
  const mth: SubtreeHash = (start, end) => {
    if (start < 0 || end > leafHashes.length || end <= start) throw new RangeError(`subtree [${start}, ${end}) outside 0..${leafHashes.length}`);
    if (end - start === 1) return Buffer.from(leafHashes[start]!);
    const k = splitPoint(end - start);
    return nodeHash(mth(start, start + k), mth(start + k, end));
  };
  return mth;
}

/** MTH of a list of leaf hashes (RFC 9162 2.1.1), computed directly. */
export function rootOf(leafHashes: readonly Uint8Array[]): Buffer {
  return leafHashes.length === 0 ? emptyRoot() : arraySubtreeHash(leafHashes)(0, leafHashes.length);
}

/**
 * PATH(m, D[n]) of RFC 9162 2.1.3.1: the inclusion proof of leaf `index` in the tree of the first `size` leaves,
 * ordered from the leaf's sibling up to the root's other child.
 */
export function inclusionPath(index: number, size: number, mth: SubtreeHash): Buffer[] {
  checkSize(size, 'tree size');
  checkSize(index, 'leaf index');
  if (index >= size) throw new BiokioskError('BadProofRequest', `leaf ${index} is not in a tree of ${size} leaves`);
  const topDown: Buffer[] = [];
  let start = 0;
  let end = size;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (index < start + k) {
      topDown.push(mth(start + k, end));
      end = start + k;
    } else {
      topDown.push(mth(start, start + k));
      start += k;
    }
  }
  return topDown.reverse();
}

/**
 * PROOF(m, D[n]) of RFC 9162 2.1.4.1: the consistency proof that the tree of the first `m` leaves is a prefix of
 * the tree of the first `n`. Empty when m == n or m == 0 (an empty tree is a prefix of every tree).
 */
export function consistencyPath(m: number, n: number, mth: SubtreeHash): Buffer[] {
  checkSize(m, 'first tree size');
  checkSize(n, 'second tree size');
  if (m > n) throw new BiokioskError('BadProofRequest', `cannot prove a tree of ${m} leaves consistent with a smaller one of ${n}`);
  if (m === 0 || m === n) return [];
  const topDown: Buffer[] = [];
  let start = 0;
  let end = n;
  let rel = m; // m relative to start
  let whole = true; // the b flag of SUBPROOF: the subtree at hand is still a prefix the client knows the root of
  for (;;) {
    const width = end - start;
    if (rel === width) {
      if (!whole) topDown.push(mth(start, end));
      break;
    }
    const k = splitPoint(width);
    if (rel <= k) {
      topDown.push(mth(start + k, end));
      end = start + k;
    } else {
      topDown.push(mth(start, start + k));
      start += k;
      rel -= k;
      whole = false;
    }
  }
  return topDown.reverse();
}

/** Inclusion proof from an in-memory list of leaf hashes. */
export function inclusionProof(index: number, leafHashes: readonly Uint8Array[]): Buffer[] {
  return inclusionPath(index, leafHashes.length, arraySubtreeHash(leafHashes));
}

/** Consistency proof between the first m leaves and all of `leafHashes`. */
export function consistencyProof(m: number, leafHashes: readonly Uint8Array[]): Buffer[] {
  return consistencyPath(m, leafHashes.length, arraySubtreeHash(leafHashes));
}

/**
 * RFC 9162 2.1.3.2: the root an inclusion proof leads to, or undefined when the proof cannot be one for
 * (index, size) (wrong length, index out of range, a hash of the wrong size).
 */
export function rootFromInclusionProof(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[]): Buffer | undefined {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return undefined;
  if (leaf.length !== HASH_BYTES || proof.some((p) => p.length !== HASH_BYTES)) return undefined;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : undefined;
}

/** RFC 9162 2.1.3.2: true when `proof` shows leaf hash `leaf` at `index` in the tree of `size` leaves with `root`. */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  const r = rootFromInclusionProof(index, size, leaf, proof);
  return r !== undefined && r.equals(root);
}

/**
 * RFC 9162 2.1.4.2: true when `proof` shows the tree of `first` leaves with root `firstRoot` is a prefix of the
 * tree of `second` leaves with root `secondRoot`. For first == second the proof must be empty and the roots
 * equal; for first == 0 the proof must be empty and firstRoot the empty tree's.
 */
export function verifyConsistency(first: number, second: number, firstRoot: Uint8Array, secondRoot: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 0 || first > second) return false;
  if (firstRoot.length !== HASH_BYTES || secondRoot.length !== HASH_BYTES || proof.some((p) => p.length !== HASH_BYTES)) return false;
  if (first === second) return proof.length === 0 && Buffer.from(firstRoot).equals(secondRoot);
  if (first === 0) return proof.length === 0 && EMPTY_ROOT.equals(firstRoot);
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = fr;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(firstRoot) && sr.equals(secondRoot);
}

/** A perfect subtree that became complete when a leaf was appended (level >= 1). */
export interface CompletedNode extends SubtreeId {
  hash: Buffer;
}

/**
 * The right edge of an append-only tree: the roots of its perfect subtrees (the compact range [0, size)), at
 * most log2(size)+1 hashes. Appending a leaf merges equal-sized subtrees (amortised one node hash per leaf) and
 * reports the nodes it completed, so a store can keep every perfect subtree hash; the root costs O(log n).
 */
export class MerkleFrontier {
  private constructor(
    private count: number,
    private readonly hashes: Buffer[],
  ) {}

  static empty(): MerkleFrontier {
    return new MerkleFrontier(0, []);
  }

  /** From the roots of perfectSubtrees(size), left to right. */
  static fromRoots(size: number, roots: readonly Uint8Array[]): MerkleFrontier {
    checkSize(size, 'size');
    if (roots.length !== popcount(size)) throw new BiokioskError('BadFrontier', `a tree of ${size} leaves has ${popcount(size)} frontier hashes, not ${roots.length}`, { kind: 'internal' });
    return new MerkleFrontier(size, roots.map((r) => Buffer.from(r)));
  }

  get size(): number {
    return this.count;
  }

  /** The frontier hashes, left (largest subtree) to right. */
  get roots(): readonly Buffer[] {
    return this.hashes;
  }

  clone(): MerkleFrontier {
    return new MerkleFrontier(this.count, [...this.hashes]);
  }

  /** Appends a leaf hash; returns the perfect subtrees (level >= 1) it completed, smallest first. */
  append(leaf: Uint8Array): CompletedNode[] {
    if (leaf.length !== HASH_BYTES) throw new BiokioskError('BadLeafHash', `a leaf hash has ${HASH_BYTES} bytes, not ${leaf.length}`, { kind: 'internal' });
    const completed: CompletedNode[] = [];
    const newSize = this.count + 1;
    let h: Buffer = Buffer.from(leaf);
    let level = 0;
    let s = this.count;
    while (s % 2 === 1) {
      h = nodeHash(this.hashes.pop()!, h);
      s = Math.floor(s / 2);
      level++;
      completed.push({ level, index: newSize / 2 ** level - 1, hash: h });
    }
    this.hashes.push(h);
    this.count = newSize;
    return completed;
  }

  /** MTH of the whole tree. */
  root(): Buffer {
    if (this.hashes.length === 0) return emptyRoot();
    let r = this.hashes[this.hashes.length - 1]!;
    for (let i = this.hashes.length - 2; i >= 0; i--) r = nodeHash(this.hashes[i]!, r);
    return Buffer.from(r);
  }

  /** The hash of a perfect subtree when it is one of the frontier's (else undefined). */
  subtree(id: SubtreeId): Buffer | undefined {
    const width = 2 ** id.level;
    // The frontier holds the subtree of `width` leaves iff that bit of the size is set and the subtree starts
    // where the larger frontier subtrees end; its position is the number of larger ones.
    const above = Math.floor(this.count / (2 * width)) * 2 * width;
    if (this.count - above < width || id.index * width !== above) return undefined;
    return this.hashes[popcount(above)];
  }

}

function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new BiokioskError('BadProofRequest', `${what} must be a non-negative integer, got ${n}`);
}
