/**
 * The verifier's audit log: an append-only Merkle tree (RFC 9162 hashing) whose leaves are decision records,
 * with signed tree heads, inclusion proofs (the receipt every verdict carries) and consistency proofs.
 *
 * Appends are cheap: the log keeps the tree's frontier (the roots of its perfect subtrees, at most log2(n)+1
 * hashes) in memory, so an append costs one leaf hash plus, amortised, one node hash, and writes the leaf and
 * the perfect subtrees it completes; the root of the current tree costs O(log n) hashes. The store is the source
 * of truth: before each write the log checks the store's last leaf against its frontier and reloads the frontier
 * (O(log n) lookups) when they differ, which is what happens after the caller rolls back a transaction, or when
 * the file is reopened. One writer per log.
 *
 * Tree heads are signed per batch, not per leaf: `append`/`appendBatch` (synchronous, inside the caller's
 * transaction when there is one) then `sealBatch()` (one signature for the new size). `appendWithReceipt` and
 * `appendBatchWithReceipts` do both and return receipts.
 *
 * Idempotency: each record has a key (the verifier uses its attestation key); appending a key already in the
 * log appends nothing and returns the original entry, `duplicate: true`.
 */
import { BiokioskError } from '../../protocol/errors.ts';
import { canonicalBytes } from '../../protocol/canonical.ts';
import {
  consistencyPath,
  HASH_BYTES,
  inclusionPath,
  leafHash,
  MerkleFrontier,
  perfectSubtrees,
  subtreeHasher,
  type SubtreeHash,
  type SubtreeId,
} from '../../protocol/merkle.ts';
import type { AuditStore, LeafAppend, TreeHeadRow } from './store.ts';
import { treeHeadSigningInput, type SignedTreeHead, type TreeHead, type TreeHeadSign } from '../../protocol/tree-head.ts';

export interface AuditLogOptions {
  /** Signs tree heads (the verifier's ES256 key). */
  sign: TreeHeadSign;
  /** Clock for tree head timestamps, in milliseconds. */
  now?: () => number;
}

export interface AuditEntry {
  /** Idempotency key: one log entry per key. */
  key: string;
  /** The decision record; stored and hashed as canonical JSON. */
  record: object;
}

export interface AppendResult {
  leafIndex: number;
  /** True when the key was already in the log: nothing was appended and leafIndex is the original entry's. */
  duplicate: boolean;
}

/** What sealBatch returns: the new tree head, hashes and signature base64url. */
export interface SealedTreeHead {
  treeSize: number;
  rootHash: string;
  signature: string;
  timestamp: number;
}

/** The receipt a verdict carries: the entry's place, the proof, and the signed tree head the proof leads to. */
export interface AuditReceipt {
  leafIndex: number;
  treeSize: number;
  /** base64url root of the tree of treeSize leaves (= signedTreeHead.root_hash). */
  rootHash: string;
  /** base64url hashes, leaf's sibling first (RFC 9162 2.1.3.1). */
  inclusionProof: string[];
  signedTreeHead: SignedTreeHead;
  /** True when the record's key was already logged and this is the original entry's receipt. */
  duplicate: boolean;
}

/** Perfect-subtree hashes kept in memory (about 100 bytes each): recent appends and recent proof lookups. */
const CACHE_ENTRIES = 1 << 16;

export class AuditLog {
  private frontier: MerkleFrontier | undefined;
  private frontierLast: Buffer | undefined;
  /**
   * Perfect subtrees never change once complete, so their hashes can be cached, keyed index * 64 + level. The
   * one hazard is a rolled-back transaction: what it wrote is gone. The cache is emptied whenever `current()`
   * finds the store is not where the log left it, which a rollback of any append always causes.
   */
  private readonly cache = new Map<number, Buffer>();
  private readonly now: () => number;

  constructor(
    readonly store: AuditStore,
    private readonly options: AuditLogOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Number of entries. */
  get size(): number {
    return this.store.size();
  }

  /**
   * Appends one record (or finds its key already logged). Synchronous, so it can run inside the caller's open
   * transaction; the leaf and the nodes it completes are written atomically either way.
   */
  append(key: string, record: object): AppendResult {
    return this.appendBatch([{ key, record }])[0]!;
  }

  /** Appends records atomically (one transaction, or a savepoint inside the caller's). A key repeated within the batch is logged once. */
  appendBatch(entries: readonly AuditEntry[]): AppendResult[] {
    // Reads first, then one atomic write (the store's transaction, a savepoint inside the caller's): nothing runs
    // in between, this being synchronous, and a failed write leaves the frontier as it was.
    const f = this.current().clone();
    const out: AppendResult[] = [];
    const writes: LeafAppend[] = [];
    const inBatch = new Map<string, number>();
    for (const { key, record } of entries) {
      if (typeof key !== 'string' || key.length === 0) throw new BiokioskError('BadAuditRecord', 'an audit record needs a non-empty key', { kind: 'internal' });
      const earlier = inBatch.get(key) ?? this.store.leafByKey(key)?.index;
      if (earlier !== undefined) {
        out.push({ leafIndex: earlier, duplicate: true });
        continue;
      }
      const bytes = canonicalBytes(record);
      const hash = leafHash(bytes);
      const index = f.size;
      const nodes = f.append(hash);
      writes.push({ leaf: { index, key, leafHash: hash, record: bytes }, nodes });
      inBatch.set(key, index);
      out.push({ leafIndex: index, duplicate: false });
    }
    if (writes.length === 1) this.store.append(writes[0]!);
    else if (writes.length > 1) this.store.appendBatch(writes);
    if (writes.length > 0) {
      this.frontier = f;
      this.frontierLast = writes[writes.length - 1]!.leaf.leafHash;
      for (const w of writes) {
        this.remember(w.leaf.index * 64, w.leaf.leafHash);
        for (const n of w.nodes) this.remember(n.index * 64 + n.level, n.hash);
      }
    }
    return out;
  }

  /**
   * Signs and stores the tree head for the current size (runs in the caller's transaction if one is open). No new
   * signature when that size already has a head. Timestamps never go backwards.
   */
  async sealBatch(): Promise<SealedTreeHead> {
    const f = this.current();
    const size = f.size;
    const root = f.root();
    const existing = this.store.treeHead(size);
    if (existing) return sealed(this.checkedHead(existing, root));
    const latest = this.store.latestTreeHead();
    if (latest && latest.treeSize > size) {
      throw corrupt(`the log has ${size} entries but a signed tree head for ${latest.treeSize}: entries were removed`);
    }
    const head: TreeHead = { tree_size: size, root_hash: root.toString('base64url'), timestamp: Math.max(Math.floor(this.now()), latest?.timestamp ?? 0) };
    const signature = Buffer.from(await this.options.sign(treeHeadSigningInput(head)));
    const row: TreeHeadRow = { treeSize: size, rootHash: root, timestamp: head.timestamp, signature };
    if (!this.store.putTreeHead(row)) {
      // Another seal of the same size got there first (concurrent callers): theirs stands.
      return sealed(this.checkedHead(this.store.treeHead(size)!, root));
    }
    return sealed(row);
  }

  /** append + sealBatch + receipt. One signature per call: batch with appendBatchWithReceipts when you can. */
  async appendWithReceipt(key: string, record: object): Promise<AuditReceipt> {
    return (await this.appendBatchWithReceipts([{ key, record }]))[0]!;
  }

  /** appendBatch (one transaction), then one signed tree head, then a receipt for each entry against it. */
  async appendBatchWithReceipts(entries: readonly AuditEntry[]): Promise<AuditReceipt[]> {
    const results = this.appendBatch(entries);
    const head = await this.sealBatch();
    const row = this.store.treeHead(head.treeSize)!;
    return results.map((r) => this.receiptAgainst(r.leafIndex, row, r.duplicate));
  }

  /** The receipt of an entry against the tree head of `treeSize` (default: the latest signed one). */
  receipt(leafIndex: number, treeSize?: number): AuditReceipt {
    const head = treeSize === undefined ? this.store.latestTreeHead() : this.store.treeHead(treeSize);
    if (!head) {
      throw new BiokioskError('NoTreeHead', treeSize === undefined ? 'the audit log has no signed tree head yet' : `the audit log has no signed tree head for size ${treeSize}`);
    }
    return this.receiptAgainst(leafIndex, head, false);
  }

  /** The receipt of the entry logged under `key`, or undefined when there is none. */
  receiptForKey(key: string, treeSize?: number): AuditReceipt | undefined {
    const leaf = this.store.leafByKey(key);
    return leaf ? this.receipt(leaf.index, treeSize) : undefined;
  }

  /** Inclusion proof (base64url hashes) of an entry in the tree of the first treeSize entries; O(log n) lookups. */
  inclusionProof(leafIndex: number, treeSize: number): string[] {
    return inclusionPath(leafIndex, treeSize, this.hasherFor(treeSize)).map(b64);
  }

  /** Consistency proof (base64url hashes) between the trees of the first m and first n entries. */
  consistencyProof(m: number, n: number): string[] {
    return consistencyPath(m, n, this.hasherFor(n)).map(b64);
  }

  /** MTH (base64url) of the first `size` entries. */
  rootAt(size: number): string {
    const f = this.current();
    if (size === f.size) return b64(f.root());
    if (!Number.isSafeInteger(size) || size < 0 || size > f.size) throw new BiokioskError('BadProofRequest', `the log has ${f.size} entries, not ${size}`);
    if (size === 0) return b64(MerkleFrontier.empty().root());
    return b64(this.hasherFor(size)(0, size));
  }

  latestTreeHead(): SignedTreeHead | undefined {
    const h = this.store.latestTreeHead();
    return h ? toSignedTreeHead(h) : undefined;
  }

  treeHead(size: number): SignedTreeHead | undefined {
    const h = this.store.treeHead(size);
    return h ? toSignedTreeHead(h) : undefined;
  }

  /** An entry: its key, the parsed record, and the exact bytes that were hashed. */
  entry(leafIndex: number): { key: string; record: unknown; bytes: Buffer } | undefined {
    const leaf = this.store.leaf(leafIndex);
    return leaf ? { key: leaf.key, record: JSON.parse(leaf.record.toString('utf8')) as unknown, bytes: leaf.record } : undefined;
  }

  private receiptAgainst(leafIndex: number, head: TreeHeadRow, duplicate: boolean): AuditReceipt {
    if (leafIndex >= head.treeSize) throw new BiokioskError('NotYetSealed', `entry ${leafIndex} is not in the signed tree of ${head.treeSize} entries; seal first`);
    return {
      leafIndex,
      treeSize: head.treeSize,
      rootHash: b64(head.rootHash),
      inclusionProof: this.inclusionProof(leafIndex, head.treeSize),
      signedTreeHead: toSignedTreeHead(head),
      duplicate,
    };
  }

  /** A stored head for the current size must have the current root; anything else means the log was rewritten. */
  private checkedHead(head: TreeHeadRow, root: Buffer): TreeHeadRow {
    if (!head.rootHash.equals(root)) throw corrupt(`the signed tree head for size ${head.treeSize} has a different root than the stored entries`);
    return head;
  }

  /** The frontier matching the store's current contents (reloaded when the store moved under us). */
  private current(): MerkleFrontier {
    const last = this.store.lastLeaf();
    const size = last ? last.index + 1 : 0;
    const f = this.frontier;
    if (f && f.size === size && (size === 0 || (this.frontierLast !== undefined && last!.leafHash.equals(this.frontierLast)))) return f;
    this.cache.clear();
    const roots = perfectSubtrees(size).map((id) => perfectFromStore(this.store, id));
    this.frontier = MerkleFrontier.fromRoots(size, roots);
    this.frontierLast = last?.leafHash;
    return this.frontier;
  }

  private hasherFor(treeSize: number): SubtreeHash {
    const f = this.current();
    if (!Number.isSafeInteger(treeSize) || treeSize > f.size) throw new BiokioskError('BadProofRequest', `the log has ${f.size} entries; no tree of ${treeSize}`);
    // Perfect subtrees never change once complete, so the in-memory frontier answers for any tree size.
    return subtreeHasher((id) => f.subtree(id) ?? this.perfect(id));
  }

  private perfect(id: SubtreeId): Buffer {
    const k = id.index * 64 + id.level;
    let h = this.cache.get(k);
    if (!h) {
      h = perfectFromStore(this.store, id);
      this.remember(k, h);
    }
    return h;
  }

  private remember(k: number, h: Buffer): void {
    if (this.cache.size >= CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(k, h);
  }
}

/** MTH(D[start:end]) from a store's leaf hashes and perfect-subtree nodes: O(log n) lookups per call. */
export function storeSubtreeHash(store: AuditStore): SubtreeHash {
  return subtreeHasher((id) => perfectFromStore(store, id));
}

function perfectFromStore(store: AuditStore, id: SubtreeId): Buffer {
  const h = id.level === 0 ? store.leafHash(id.index) : store.node(id.level, id.index);
  if (!h) throw corrupt(id.level === 0 ? `leaf ${id.index} is missing` : `the hash of subtree ${id.index} at level ${id.level} is missing`);
  if (h.length !== HASH_BYTES) throw corrupt(`the stored hash of subtree ${id.index} at level ${id.level} has ${h.length} bytes`);
  return h;
}

export function toSignedTreeHead(h: TreeHeadRow): SignedTreeHead {
  return { tree_size: h.treeSize, root_hash: b64(h.rootHash), timestamp: h.timestamp, signature: b64(h.signature) };
}

function sealed(h: TreeHeadRow): SealedTreeHead {
  return { treeSize: h.treeSize, rootHash: b64(h.rootHash), signature: b64(h.signature), timestamp: h.timestamp };
}

function b64(b: Buffer): string {
  return b.toString('base64url');
}

function corrupt(message: string): BiokioskError {
  return new BiokioskError('AuditLogCorrupt', `${message}; run \`biokiosk verifier audit\``, { kind: 'internal' });
}
