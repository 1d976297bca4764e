/**
 * Where the audit log lives: leaves (the canonical record bytes, the salt its published leaf commits with, the
 * leaf hash, keyed for idempotency), the hashes of every complete perfect subtree (so a proof is O(log n)
 * lookups for any historical tree size, and the tiles of c2sp.org/tlog-tiles are rows read as they are), the
 * frontier of the current tree (its perfect subtrees' roots, so a writer needs one read to go on), the signed
 * checkpoints and the witnesses' cosignatures.
 *
 * Storage only, asynchronous (PostgreSQL is behind it too: pg-store.ts): the Merkle logic is in log.ts. Tables are
 * prefixed `audit_`; on SQLite, triggers refuse UPDATE and DELETE of leaves, nodes and checkpoints (an honest
 * program never does either; someone with the file can drop the triggers, which is what checkpoints, witnesses
 * and the heads kiosks keep are for).
 */
import Database from 'better-sqlite3';
import { BiokioskError } from '../../protocol/errors.ts';
import type { SubtreeId } from '../../protocol/merkle.ts';

export interface LeafRow {
  index: number;
  /** The idempotency key (the attestation's hash key): one leaf per key. */
  key: string;
  /** SHA-256(0x00 || leaf data), leaf data being the commitment SHA-256(salt || record) (log.ts leafCommitment). */
  leafHash: Buffer;
  /** The canonical JSON bytes of the record. */
  record: Buffer;
  /** 32 random bytes the published leaf commits to the record with. */
  salt: Buffer;
}

/** A complete perfect subtree: 2^level leaves from index * 2^level. Level >= 1 (leaf hashes are in the leaves). */
export interface NodeRow {
  level: number;
  index: number;
  hash: Buffer;
}

/** A checkpoint the log signed (c2sp.org/tlog-checkpoint), without witnesses' cosignatures. */
export interface CheckpointRow {
  treeSize: number;
  rootHash: Buffer;
  /** When it was signed, milliseconds (not part of what the signature covers). */
  timestamp: number;
  /** The signed note. */
  note: string;
}

/** A leaf to append, with the perfect subtrees its arrival completes. */
export interface LeafAppend {
  leaf: LeafRow;
  nodes: readonly NodeRow[];
}

/** The current tree: its size and the roots of its perfect subtrees, largest first (merkle.ts perfectSubtrees). */
export interface Frontier {
  size: number;
  roots: Buffer[];
}

export interface AuditReader {
  /** One past the highest leaf index (0 when empty). */
  size(): Promise<number>;
  leaf(index: number): Promise<LeafRow | undefined>;
  leafByKey(key: string): Promise<LeafRow | undefined>;
  /** The leaves logged under these keys. */
  leavesByKeys(keys: readonly string[]): Promise<Map<string, LeafRow>>;
  /** A value about the log (its `origin`, the `log_keys` last logged). */
  meta(key: string): Promise<string | undefined>;
  /** The leaves with start <= index < end, in index order (a missing leaf is simply absent). */
  range(start: number, end: number): Promise<LeafRow[]>;
  /** Subtree hashes by id (level 0: the leaf hash); undefined for one that is not stored. */
  nodes(ids: readonly SubtreeId[]): Promise<Array<Buffer | undefined>>;
  /** Hashes at one level for start <= index < end, in order (a tile's row). */
  levelHashes(level: number, start: number, end: number): Promise<Buffer[]>;
  checkpoint(treeSize: number): Promise<CheckpointRow | undefined>;
  latestCheckpoint(): Promise<CheckpointRow | undefined>;
  /** Up to `limit` checkpoints with tree size > afterSize, by size. */
  checkpoints(afterSize: number, limit: number): Promise<CheckpointRow[]>;
  /** The witnesses' cosignature lines on the checkpoint of this size. */
  cosignatures(treeSize: number): Promise<string[]>;
  /** The largest checkpoint some witness cosigned, with the lines. */
  latestCosigned(): Promise<{ checkpoint: CheckpointRow; lines: string[] } | undefined>;
  /** Records a witness's cosignature line (outside decision batches: the publisher does it). */
  addCosignature(treeSize: number, witness: string, line: string, at: number): Promise<void>;
  /** Runs fn against one consistent view of the log (an audit of a log being appended to sees one state). */
  snapshot<T>(fn: (r: AuditReader) => Promise<T>): Promise<T>;
}

/** Writing the log, inside a decision batch (the decision lock held). */
export interface AuditWriter extends AuditReader {
  frontier(): Promise<Frontier>;
  setMeta(key: string, value: string): Promise<void>;
  /** Stores the leaves, the nodes they complete and the new frontier, in the batch's transaction. */
  append(entries: readonly LeafAppend[], frontier: Frontier): Promise<void>;
  /** False (and no change) when one for that size exists already. */
  putCheckpoint(c: CheckpointRow): Promise<boolean>;
}

export function encodeRoots(roots: readonly Buffer[]): Buffer {
  return Buffer.concat(roots);
}

export function decodeRoots(blob: Buffer | null | undefined): Buffer[] {
  const b = blob ?? Buffer.alloc(0);
  if (b.length % 32 !== 0) throw new BiokioskError('AuditLogCorrupt', 'the stored frontier is not a whole number of hashes; run `biokiosk verifier audit`', { kind: 'internal' });
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += 32) out.push(Buffer.from(b.subarray(i, i + 32)));
  return out;
}

/** Columns hold BLOBs when written by this store; whatever else someone put there still reads as bytes. */
export function asBuffer(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (v === null || v === undefined) return Buffer.alloc(0);
  return Buffer.from(String(v), 'utf8');
}

interface LeafSqlRow {
  idx: number;
  leaf_hash: Buffer;
  record: Buffer;
  record_key: string;
  salt: Buffer;
}

function toLeaf(row: unknown): LeafRow | undefined {
  if (!row) return undefined;
  const r = row as LeafSqlRow;
  return { index: Number(r.idx), key: String(r.record_key), leafHash: asBuffer(r.leaf_hash), record: asBuffer(r.record), salt: asBuffer(r.salt) };
}

interface CheckpointSqlRow {
  tree_size: number;
  root_hash: Buffer;
  timestamp: number;
  note: string;
}

function toCheckpoint(row: unknown): CheckpointRow | undefined {
  if (!row) return undefined;
  const r = row as CheckpointSqlRow;
  return { treeSize: Number(r.tree_size), rootHash: asBuffer(r.root_hash), timestamp: Number(r.timestamp), note: String(r.note) };
}

/**
 * The SQLite audit store: on the verifier store's connection (a batch's decisions and log entries commit
 * together), or a file of its own opened read-only for `biokiosk verifier audit`. The tables are created by the
 * verifier store's migrations (verifier/migrations.ts).
 */
export class SqliteAuditStore implements AuditWriter {
  readonly db: Database.Database;
  private readonly owned: boolean;
  private readonly s: Record<string, Database.Statement>;

  constructor(target: string | Database.Database, options: { readonly?: boolean } = {}) {
    if (typeof target === 'string') {
      // Read-only opens still need the WAL's shared memory file: a plain connection that only reads.
      this.db = new Database(target, { readonly: options.readonly ?? false, fileMustExist: true });
      this.db.pragma('busy_timeout = 5000');
      this.owned = true;
    } else {
      this.db = target;
      this.owned = false;
    }
    if (!this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_leaves'").get()) {
      if (this.owned) this.db.close();
      throw new BiokioskError('NoAuditLog', `${this.db.name} holds no audit log`);
    }
    const p = (sql: string) => this.db.prepare(sql);
    this.s = {
      size: p('SELECT coalesce(max(idx) + 1, 0) AS n FROM audit_leaves').pluck(),
      leaf: p('SELECT * FROM audit_leaves WHERE idx = ?'),
      byKey: p('SELECT * FROM audit_leaves WHERE record_key = ?'),
      meta: p('SELECT value FROM audit_meta WHERE key = ?').pluck(),
      setMeta: p('INSERT INTO audit_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      range: p('SELECT * FROM audit_leaves WHERE idx >= ? AND idx < ? ORDER BY idx'),
      leafHash: p('SELECT leaf_hash FROM audit_leaves WHERE idx = ?').pluck(),
      node: p('SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?').pluck(),
      leafHashes: p('SELECT leaf_hash FROM audit_leaves WHERE idx >= ? AND idx < ? ORDER BY idx').pluck(),
      levelHashes: p('SELECT hash FROM audit_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx').pluck(),
      insertLeaf: p('INSERT INTO audit_leaves (idx, leaf_hash, record, record_key, salt) VALUES (?, ?, ?, ?, ?)'),
      insertNode: p('INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)'),
      frontier: p('SELECT size, roots FROM audit_frontier WHERE id = 1'),
      setFrontier: p('INSERT INTO audit_frontier (id, size, roots) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET size = excluded.size, roots = excluded.roots'),
      putCheckpoint: p('INSERT OR IGNORE INTO audit_checkpoints (tree_size, root_hash, timestamp, note) VALUES (?, ?, ?, ?)'),
      checkpoint: p('SELECT * FROM audit_checkpoints WHERE tree_size = ?'),
      latest: p('SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1'),
      after: p('SELECT * FROM audit_checkpoints WHERE tree_size > ? ORDER BY tree_size LIMIT ?'),
      cosigs: p('SELECT line FROM audit_cosignatures WHERE tree_size = ? ORDER BY witness').pluck(),
      latestCosigned: p('SELECT max(tree_size) FROM audit_cosignatures').pluck(),
      addCosig: p('INSERT OR IGNORE INTO audit_cosignatures (tree_size, witness, line, received_at) VALUES (?, ?, ?, ?)'),
    };
  }

  async size(): Promise<number> {
    return Number(this.s['size']!.get());
  }

  async leaf(index: number): Promise<LeafRow | undefined> {
    return toLeaf(this.s['leaf']!.get(index));
  }

  async leafByKey(key: string): Promise<LeafRow | undefined> {
    return toLeaf(this.s['byKey']!.get(key));
  }

  async leavesByKeys(keys: readonly string[]): Promise<Map<string, LeafRow>> {
    const out = new Map<string, LeafRow>();
    for (const k of keys) {
      const l = toLeaf(this.s['byKey']!.get(k));
      if (l) out.set(k, l);
    }
    return out;
  }

  async meta(key: string): Promise<string | undefined> {
    const v = this.s['meta']!.get(key);
    return v === undefined ? undefined : String(v);
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.s['setMeta']!.run(key, value);
  }

  async range(start: number, end: number): Promise<LeafRow[]> {
    return this.s['range']!.all(start, end).map((r) => toLeaf(r)!);
  }

  async nodes(ids: readonly SubtreeId[]): Promise<Array<Buffer | undefined>> {
    return ids.map((id) => {
      const h = id.level === 0 ? this.s['leafHash']!.get(id.index) : this.s['node']!.get(id.level, id.index);
      return h === undefined ? undefined : asBuffer(h);
    });
  }

  async levelHashes(level: number, start: number, end: number): Promise<Buffer[]> {
    return (level === 0 ? this.s['leafHashes']!.all(start, end) : this.s['levelHashes']!.all(level, start, end)).map(asBuffer);
  }

  async checkpoint(treeSize: number): Promise<CheckpointRow | undefined> {
    return toCheckpoint(this.s['checkpoint']!.get(treeSize));
  }

  async latestCheckpoint(): Promise<CheckpointRow | undefined> {
    return toCheckpoint(this.s['latest']!.get());
  }

  async checkpoints(afterSize: number, limit: number): Promise<CheckpointRow[]> {
    return this.s['after']!.all(afterSize, limit).map((r) => toCheckpoint(r)!);
  }

  async cosignatures(treeSize: number): Promise<string[]> {
    return this.s['cosigs']!.all(treeSize) as string[];
  }

  async latestCosigned(): Promise<{ checkpoint: CheckpointRow; lines: string[] } | undefined> {
    const size = this.s['latestCosigned']!.get() as number | null;
    if (size === null || size === undefined) return undefined;
    const checkpoint = await this.checkpoint(size);
    return checkpoint ? { checkpoint, lines: await this.cosignatures(size) } : undefined;
  }

  async addCosignature(treeSize: number, witness: string, line: string, at: number): Promise<void> {
    this.s['addCosig']!.run(treeSize, witness, line, at);
  }

  async frontier(): Promise<Frontier> {
    const r = this.s['frontier']!.get() as { size: number; roots: Buffer } | undefined;
    return r ? { size: Number(r.size), roots: decodeRoots(r.roots) } : { size: 0, roots: [] };
  }

  async append(entries: readonly LeafAppend[], frontier: Frontier): Promise<void> {
    try {
      for (const { leaf, nodes } of entries) {
        this.s['insertLeaf']!.run(leaf.index, leaf.leafHash, leaf.record, leaf.key, leaf.salt);
        for (const n of nodes) this.s['insertNode']!.run(n.level, n.index, n.hash);
      }
      this.s['setFrontier']!.run(frontier.size, encodeRoots(frontier.roots));
    } catch (e) {
      throw new BiokioskError('AuditAppendFailed', `cannot append ${entries.length} leaves to the audit log: ${(e as Error).message}`, { kind: 'internal', cause: e });
    }
  }

  async putCheckpoint(c: CheckpointRow): Promise<boolean> {
    return this.s['putCheckpoint']!.run(c.treeSize, c.rootHash, c.timestamp, c.note).changes > 0;
  }

  /** A read transaction around fn on a connection of its own (on a shared one, the owner's transactions rule). */
  async snapshot<T>(fn: (r: AuditReader) => Promise<T>): Promise<T> {
    if (!this.owned || this.db.inTransaction) return fn(this);
    this.db.exec('BEGIN');
    try {
      return await fn(this);
    } finally {
      if (this.db.inTransaction) this.db.exec('COMMIT');
    }
  }

  close(): void {
    if (this.owned && this.db.open) this.db.close();
  }
}
