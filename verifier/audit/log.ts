/**
 * The verifier's audit log: an append-only Merkle tree (RFC 9162 hashing) of decision records, appended by every
 * node of a fleet in one total order (inside the store's decision batch, under its lock), with a C2SP checkpoint
 * signed for each batch, inclusion proofs (the receipt every verdict carries) and consistency proofs.
 *
 * What is published reveals nobody: a leaf is the commitment SHA-256(salt || canonical record) with 32 random
 * bytes of salt per entry, so a subject id, site or decision cannot be guessed and checked against the published
 * tiles. The record and its salt stay in the store; a verdict's receipt gives its holder both, so they can prove
 * their own entry; an auditor with the store checks every record against its leaf.
 *
 * Appending costs one leaf hash plus, amortised, one node hash per entry: the batch starts from the stored
 * frontier (the roots of the tree's perfect subtrees, one row) and writes the leaves, the perfect subtrees they
 * complete and the new frontier. Proofs for the batch's own entries are built from what the batch computed
 * (every perfect subtree a new leaf's path needs was either completed by the batch or is a root of the old
 * frontier); other proofs read the stored subtree hashes, all of one batch's in one query.
 *
 * Idempotency: each record has a key (the verifier uses its attestation key); appending a key already in the
 * log appends nothing and returns the original entry, `duplicate: true`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { BiokioskError } from '../../protocol/errors.ts';
import { canonicalBytes } from '../../protocol/canonical.ts';
import { consistencyPath, HASH_BYTES, inclusionPath, leafHash, MerkleFrontier, perfectSubtrees, subtreeHasher, type SubtreeId } from '../../protocol/merkle.ts';
import { checkpointText, formatVkey } from '../../protocol/note.ts';
import { leafCommitment } from '../../protocol/receipt.ts';
import type { LogSigner } from '../log-key.ts';
import type { AuditReader, AuditWriter, CheckpointRow, LeafAppend, NodeRow } from './store.ts';

export const SALT_BYTES = 32;

export interface AuditEntry {
  /** Idempotency key: one log entry per key. */
  key: string;
  /** The record; stored as canonical JSON and committed to with a salt. */
  record: object;
}

export interface AppendedLeaf {
  key: string;
  index: number;
  /** True when the key was already logged: nothing was appended and this is the original entry. */
  duplicate: boolean;
  /** The canonical record bytes. */
  record: Buffer;
  salt: Buffer;
}

export interface AppendOutcome {
  leaves: AppendedLeaf[];
  /** The checkpoint of the tree after the batch (the latest stored one when nothing new was appended). */
  checkpoint: CheckpointRow;
  /** Subtree hashes the batch knows (its new leaves and nodes, and both frontiers), for its proofs. */
  known: SubtreeMemory;
}

/** The leaf hash of an entry, RFC 9162: SHA-256(0x00 || commitment). */
export function entryLeafHash(salt: Uint8Array, record: Uint8Array): Buffer {
  return leafHash(leafCommitment(salt, record));
}

/** A record logged when the set of checkpoint-signing keys changes (a rotation). */
export interface LogKeysRecord {
  v: 1;
  type: 'log_keys';
  origin: string;
  /** The vkeys signing from this entry on. */
  active: string[];
  at: number;
}

/**
 * What to record about the signing keys in a batch: nothing when they are the ones last recorded; the set (in the
 * log's meta, no entry: the first checkpoint itself says which key signs) when the log has none yet; else an
 * entry saying which keys sign from here on (a rotation, logged for everyone to see), and the new set.
 */
export async function logKeysChange(reader: Pick<AuditReader, 'meta'>, signer: LogSigner, now: number): Promise<{ entry: AuditEntry | undefined; active: string } | undefined> {
  const list = signer.verifiers.map(formatVkey).sort();
  const active = JSON.stringify(list);
  const logged = await reader.meta('log_keys');
  if (logged === active) return undefined;
  if (logged === undefined) return { entry: undefined, active };
  const record: LogKeysRecord = { v: 1, type: 'log_keys', origin: signer.origin, active: list, at: now };
  return { entry: { key: `log_keys:${createHash('sha256').update(active).digest('base64url')}:${now}`, record }, active };
}

/** Subtree hashes held in memory, keyed by id. */
export class SubtreeMemory {
  private readonly map = new Map<string, Buffer>();
  private readonly frontiers: MerkleFrontier[] = [];

  constructor(private readonly limit = Infinity) {}

  set(id: SubtreeId, hash: Buffer): void {
    const k = keyOf(id);
    if (this.map.size >= this.limit && !this.map.has(k)) this.map.delete(this.map.keys().next().value!);
    this.map.set(k, hash);
  }

  addFrontier(f: MerkleFrontier): void {
    this.frontiers.push(f);
  }

  get(id: SubtreeId): Buffer | undefined {
    const h = this.map.get(keyOf(id));
    if (h) return h;
    for (const f of this.frontiers) {
      const r = f.subtree(id);
      if (r) return r;
    }
    return undefined;
  }

  /** Copies what another memory holds (its frontiers' roots included) into this one. */
  absorb(other: SubtreeMemory): void {
    for (const [k, h] of other.map) this.set(idOf(k), h);
    for (const f of other.frontiers) for (const [i, id] of perfectSubtrees(f.size).entries()) this.set(id, f.roots[i]!);
  }
}

function keyOf(id: SubtreeId): string {
  return `${id.level}:${id.index}`;
}

function idOf(k: string): SubtreeId {
  const [level, index] = k.split(':').map(Number) as [number, number];
  return { level, index };
}

/**
 * Appends records inside a decision batch (the decision lock held, `w` on its transaction) and signs the
 * checkpoint of the new size. Keys already logged, or repeated in the batch, are not appended again.
 */
export async function appendBatch(w: AuditWriter, signer: LogSigner, entries: readonly AuditEntry[], now: number): Promise<AppendOutcome> {
  for (const e of entries) {
    if (typeof e.key !== 'string' || e.key.length === 0) throw new BiokioskError('BadAuditRecord', 'an audit record needs a non-empty key', { kind: 'internal' });
  }
  const origin = await w.meta('origin');
  if (origin === undefined) await w.setMeta('origin', signer.origin);
  else if (origin !== signer.origin) {
    throw new BiokioskError('LogOriginMismatch', `this audit log's origin is ${origin}, but the log key is for ${signer.origin}: a node is using another log's key`, { kind: 'input' });
  }
  const existing = await w.leavesByKeys([...new Set(entries.map((e) => e.key))]);
  const old = await currentFrontier(w);
  const f = old.clone();
  const known = new SubtreeMemory();
  known.addFrontier(old);
  const leaves: AppendedLeaf[] = [];
  const writes: LeafAppend[] = [];
  const inBatch = new Map<string, AppendedLeaf>();
  for (const { key, record } of entries) {
    const earlier = inBatch.get(key) ?? existing.get(key);
    if (earlier) {
      leaves.push({ key, index: earlier.index, duplicate: true, record: earlier.record, salt: earlier.salt! });
      continue;
    }
    const bytes = canonicalBytes(record);
    const salt = randomBytes(SALT_BYTES);
    const hash = entryLeafHash(salt, bytes);
    const index = f.size;
    const nodes: NodeRow[] = f.append(hash);
    known.set({ level: 0, index }, hash);
    for (const n of nodes) known.set(n, n.hash);
    writes.push({ leaf: { index, key, leafHash: hash, record: bytes, salt }, nodes });
    const leaf: AppendedLeaf = { key, index, duplicate: false, record: bytes, salt };
    inBatch.set(key, leaf);
    leaves.push(leaf);
  }
  known.addFrontier(f);
  let checkpoint: CheckpointRow | undefined;
  if (writes.length > 0) {
    await w.append(writes, { size: f.size, roots: [...f.roots] });
    checkpoint = await signAndStore(w, signer, f, now);
  } else {
    checkpoint = await w.latestCheckpoint();
    if (!checkpoint || checkpoint.treeSize !== f.size) checkpoint = await signAndStore(w, signer, f, now);
  }
  return { leaves, checkpoint, known };
}

async function signAndStore(w: AuditWriter, signer: LogSigner, f: MerkleFrontier, now: number): Promise<CheckpointRow> {
  const latest = await w.latestCheckpoint();
  if (latest && latest.treeSize > f.size) throw corrupt(`the log has ${f.size} entries but a checkpoint for ${latest.treeSize}: entries were removed`);
  const existing = await w.checkpoint(f.size);
  const rootHash = f.root();
  if (existing) {
    if (!existing.rootHash.equals(rootHash)) throw corrupt(`the stored checkpoint for size ${f.size} has a different root than the stored entries`);
    return existing;
  }
  const text = checkpointText({ origin: signer.origin, treeSize: f.size, rootHash });
  const row: CheckpointRow = { treeSize: f.size, rootHash, timestamp: Math.max(Math.floor(now), latest?.timestamp ?? 0), note: `${text}\n${signer.sign(text)}` };
  await w.putCheckpoint(row);
  return row;
}

/** The frontier as stored, checked against the leaf count (a missing row is rebuilt from the stored subtrees). */
async function currentFrontier(w: AuditWriter): Promise<MerkleFrontier> {
  const [stored, size] = await Promise.all([w.frontier(), w.size()]);
  if (stored.size === size && (size > 0 || stored.roots.length === 0)) {
    try {
      return MerkleFrontier.fromRoots(size, stored.roots);
    } catch {
      // fall through to a rebuild
    }
  }
  const ids = perfectSubtrees(size);
  const hashes = await w.nodes(ids);
  return MerkleFrontier.fromRoots(
    size,
    hashes.map((h, i) => {
      if (!h || h.length !== HASH_BYTES) throw corrupt(`the hash of subtree ${ids[i]!.index} at level ${ids[i]!.level} is missing`);
      return h;
    }),
  );
}

export type ProofJob = { kind: 'inclusion'; index: number; size: number } | { kind: 'consistency'; from: number; to: number };

/**
 * Builds proofs from memory where it can and from the store for the rest, all missing hashes of one call in one
 * query: each proof is computed once with placeholders to learn which perfect subtrees it needs (the shape of a
 * proof depends only on the sizes), then again with the hashes. Committed subtrees never change, so what was
 * read is kept (bounded) for later proofs.
 */
export class AuditProofs {
  private readonly cache: SubtreeMemory;

  constructor(
    private readonly reader: AuditReader,
    cacheEntries = 1 << 16,
  ) {
    this.cache = new SubtreeMemory(cacheEntries);
  }

  /** Keeps a committed batch's hashes for later proofs. */
  remember(known: SubtreeMemory): void {
    this.cache.absorb(known);
  }

  async prove(jobs: readonly ProofJob[], known?: SubtreeMemory): Promise<Buffer[][]> {
    const placeholder = Buffer.alloc(HASH_BYTES);
    const need = new Map<string, SubtreeId>();
    const lookup = (id: SubtreeId) => known?.get(id) ?? this.cache.get(id);
    const run = (perfect: (id: SubtreeId) => Buffer) => jobs.map((j) => compute(j, subtreeHasher(perfect)));
    const first = run((id) => {
      const h = lookup(id);
      if (h) return h;
      need.set(keyOf(id), id);
      return placeholder;
    });
    if (need.size === 0) return first;
    const ids = [...need.values()];
    const hashes = await this.reader.nodes(ids);
    hashes.forEach((h, i) => {
      const id = ids[i]!;
      if (!h || h.length !== HASH_BYTES) throw corrupt(id.level === 0 ? `leaf ${id.index} is missing` : `the hash of subtree ${id.index} at level ${id.level} is missing`);
      this.cache.set(id, h);
    });
    return run((id) => lookup(id)!);
  }
}

function compute(j: ProofJob, mth: (start: number, end: number) => Buffer): Buffer[] {
  return j.kind === 'inclusion' ? inclusionPath(j.index, j.size, mth) : consistencyPath(j.from, j.to, mth);
}

function corrupt(message: string): BiokioskError {
  return new BiokioskError('AuditLogCorrupt', `${message}; run \`biokiosk verifier audit\``, { kind: 'internal' });
}
