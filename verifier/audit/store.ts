/**
 * Where the audit log lives: leaves (the canonical record bytes and their leaf hashes, keyed for idempotency),
 * the hashes of every complete perfect subtree (so a proof is O(log n) lookups, for any historical tree size:
 * perfect subtrees never change once complete), and the signed tree heads.
 *
 * `AuditStore` is storage only (no hashing): the Merkle logic is in log.ts, so a PostgreSQL store implements
 * these few operations and nothing else. The interface is synchronous, like the verifier's own store
 * (verifier/store.ts), so appends can share the caller's transaction.
 *
 * `SqliteAuditStore` is the default: one SQLite file (or the verifier store's own connection, so a batch's
 * decisions and its log entries commit together), WAL, synchronous=FULL, prepared statements. Tables are
 * prefixed `audit_` so they can share a database with the verifier's; triggers refuse UPDATE and DELETE (an
 * honest program never does either; someone with the file can drop the triggers, which is what the tree heads
 * are for).
 */
import Database from 'better-sqlite3';
import { BiokioskError } from '../../protocol/errors.ts';

export interface LeafRow {
  index: number;
  /** The idempotency key (e.g. the attestation's id): one leaf per key. */
  key: string;
  /** SHA-256(0x00 || record). */
  leafHash: Buffer;
  /** The canonical JSON bytes of the record. */
  record: Buffer;
}

/** A complete perfect subtree: 2^level leaves from index * 2^level. Level >= 1 (leaf hashes are in the leaves). */
export interface NodeRow {
  level: number;
  index: number;
  hash: Buffer;
}

export interface TreeHeadRow {
  treeSize: number;
  rootHash: Buffer;
  /** Milliseconds since the epoch. */
  timestamp: number;
  signature: Buffer;
}

/** A leaf to append, with the perfect subtrees its arrival completes. */
export interface LeafAppend {
  leaf: LeafRow;
  nodes: readonly NodeRow[];
}

export interface AuditStore {
  /** One past the highest leaf index (0 when empty); a leaf missing in the middle does not shrink it. */
  size(): number;
  /** The leaf with the highest index. */
  lastLeaf(): { index: number; leafHash: Buffer } | undefined;
  /** Stores a leaf and its completed nodes atomically; the index and key must be new (else it throws). */
  append(entry: LeafAppend): void;
  /** append() for each entry, in one transaction. */
  appendBatch(entries: readonly LeafAppend[]): void;
  leaf(index: number): LeafRow | undefined;
  leafByKey(key: string): LeafRow | undefined;
  leafHash(index: number): Buffer | undefined;
  /** The leaves with start <= index < end, in index order (a missing leaf is simply absent). */
  range(start: number, end: number): LeafRow[];
  node(level: number, index: number): Buffer | undefined;
  /** Stores a signed tree head; false (and no change) when one for that size exists already. */
  putTreeHead(head: TreeHeadRow): boolean;
  treeHead(size: number): TreeHeadRow | undefined;
  latestTreeHead(): TreeHeadRow | undefined;
  /** Up to `limit` tree heads with tree size > afterSize, by size. */
  treeHeads(afterSize: number, limit: number): TreeHeadRow[];
  /** Runs fn in one transaction (a savepoint inside one already open). */
  transaction<T>(fn: () => T): T;
  /**
   * Runs fn (which may await) against one consistent view of the log, so an audit of a log that is being
   * appended to sees one state of it.
   */
  snapshot<T>(fn: () => Promise<T>): Promise<T>;
  close(): void;
}

export interface SqliteAuditStoreOptions {
  /** Open the file read-only (for `biokiosk verifier audit`): no schema changes, no writes. */
  readonly?: boolean;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS audit_leaves (
    idx INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL,
    record BLOB NOT NULL,
    record_key TEXT NOT NULL UNIQUE);
  CREATE TABLE IF NOT EXISTS audit_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS audit_tree_heads (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    signature BLOB NOT NULL);
  CREATE TRIGGER IF NOT EXISTS audit_leaves_no_update BEFORE UPDATE ON audit_leaves BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER IF NOT EXISTS audit_leaves_no_delete BEFORE DELETE ON audit_leaves BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER IF NOT EXISTS audit_nodes_no_update BEFORE UPDATE ON audit_nodes BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER IF NOT EXISTS audit_nodes_no_delete BEFORE DELETE ON audit_nodes BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER IF NOT EXISTS audit_tree_heads_no_update BEFORE UPDATE ON audit_tree_heads BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER IF NOT EXISTS audit_tree_heads_no_delete BEFORE DELETE ON audit_tree_heads BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`;

interface LeafSqlRow {
  idx: number;
  leaf_hash: Buffer;
  record: Buffer;
  record_key: string;
}

interface HeadSqlRow {
  tree_size: number;
  root_hash: Buffer;
  timestamp: number;
  signature: Buffer;
}

export class SqliteAuditStore implements AuditStore {
  readonly db: Database.Database;
  private readonly owned: boolean;
  private readonly s: {
    last: Database.Statement;
    insertLeaf: Database.Statement;
    insertNode: Database.Statement;
    leaf: Database.Statement;
    byKey: Database.Statement;
    leafHash: Database.Statement;
    range: Database.Statement;
    node: Database.Statement;
    putHead: Database.Statement;
    head: Database.Statement;
    latestHead: Database.Statement;
    heads: Database.Statement;
  };
  private readonly appendTx: (entries: readonly LeafAppend[]) => void;

  /**
   * `target`: a file path, or an open better-sqlite3 connection to share (the verifier store's, so appends join
   * its transactions); a shared connection is configured and closed by its owner.
   */
  constructor(target: string | Database.Database, options: SqliteAuditStoreOptions = {}) {
    if (typeof target === 'string') {
      this.db = new Database(target, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
      this.owned = true;
      if (!options.readonly) {
        this.db.pragma('journal_mode = WAL');
        this.db.pragma('synchronous = FULL');
      }
      this.db.pragma('busy_timeout = 5000');
    } else {
      this.db = target;
      this.owned = false;
    }
    if (!options.readonly && !this.db.readonly) this.db.exec(SCHEMA);
    else if (!this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_leaves'").get()) {
      if (this.owned) this.db.close();
      throw new BiokioskError('NoAuditLog', `${this.db.name} holds no audit log`);
    }
    const p = (sql: string) => this.db.prepare(sql);
    this.s = {
      last: p('SELECT idx, leaf_hash FROM audit_leaves ORDER BY idx DESC LIMIT 1'),
      insertLeaf: p('INSERT INTO audit_leaves (idx, leaf_hash, record, record_key) VALUES (?, ?, ?, ?)'),
      insertNode: p('INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)'),
      leaf: p('SELECT idx, leaf_hash, record, record_key FROM audit_leaves WHERE idx = ?'),
      byKey: p('SELECT idx, leaf_hash, record, record_key FROM audit_leaves WHERE record_key = ?'),
      leafHash: p('SELECT leaf_hash FROM audit_leaves WHERE idx = ?').pluck(),
      range: p('SELECT idx, leaf_hash, record, record_key FROM audit_leaves WHERE idx >= ? AND idx < ? ORDER BY idx'),
      node: p('SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?').pluck(),
      putHead: p('INSERT OR IGNORE INTO audit_tree_heads (tree_size, root_hash, timestamp, signature) VALUES (?, ?, ?, ?)'),
      head: p('SELECT * FROM audit_tree_heads WHERE tree_size = ?'),
      latestHead: p('SELECT * FROM audit_tree_heads ORDER BY tree_size DESC LIMIT 1'),
      heads: p('SELECT * FROM audit_tree_heads WHERE tree_size > ? ORDER BY tree_size LIMIT ?'),
    };
    this.appendTx = this.db.transaction((entries: readonly LeafAppend[]) => {
      for (const e of entries) this.insert(e);
    });
  }

  size(): number {
    const last = this.lastLeaf();
    return last ? last.index + 1 : 0;
  }

  lastLeaf(): { index: number; leafHash: Buffer } | undefined {
    const r = this.s.last.get() as { idx: number; leaf_hash: unknown } | undefined;
    return r ? { index: r.idx, leafHash: asBuffer(r.leaf_hash) } : undefined;
  }

  append(entry: LeafAppend): void {
    // A leaf without its nodes would corrupt later proofs: both or neither (a savepoint when nested).
    if (entry.nodes.length === 0) this.insert(entry);
    else this.appendTx([entry]);
  }

  appendBatch(entries: readonly LeafAppend[]): void {
    this.appendTx(entries);
  }

  private insert({ leaf, nodes }: LeafAppend): void {
    try {
      this.s.insertLeaf.run(leaf.index, leaf.leafHash, leaf.record, leaf.key);
      for (const n of nodes) this.s.insertNode.run(n.level, n.index, n.hash);
    } catch (e) {
      throw new BiokioskError('AuditAppendFailed', `cannot append leaf ${leaf.index} (${leaf.key}) to the audit log: ${(e as Error).message}`, { kind: 'internal', cause: e });
    }
  }

  leaf(index: number): LeafRow | undefined {
    return toLeaf(this.s.leaf.get(index));
  }

  leafByKey(key: string): LeafRow | undefined {
    return toLeaf(this.s.byKey.get(key));
  }

  leafHash(index: number): Buffer | undefined {
    const h = this.s.leafHash.get(index);
    return h === undefined ? undefined : asBuffer(h);
  }

  range(start: number, end: number): LeafRow[] {
    return (this.s.range.all(start, end) as LeafSqlRow[]).map((r) => toLeaf(r)!);
  }

  node(level: number, index: number): Buffer | undefined {
    const h = this.s.node.get(level, index);
    return h === undefined ? undefined : asBuffer(h);
  }

  putTreeHead(h: TreeHeadRow): boolean {
    return this.s.putHead.run(h.treeSize, h.rootHash, h.timestamp, h.signature).changes > 0;
  }

  treeHead(size: number): TreeHeadRow | undefined {
    return toHead(this.s.head.get(size));
  }

  latestTreeHead(): TreeHeadRow | undefined {
    return toHead(this.s.latestHead.get());
  }

  treeHeads(afterSize: number, limit: number): TreeHeadRow[] {
    return (this.s.heads.all(afterSize, limit) as HeadSqlRow[]).map((r) => toHead(r)!);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /**
   * A read transaction around fn, on a connection this store owns (open a separate store for audits: on a
   * shared connection the owner's transactions decide what is seen, and fn runs as is).
   */
  async snapshot<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.owned || this.db.inTransaction) return fn();
    this.db.exec('BEGIN');
    try {
      return await fn();
    } finally {
      if (this.db.inTransaction) this.db.exec('COMMIT');
    }
  }

  close(): void {
    if (this.owned && this.db.open) this.db.close();
  }
}

function toLeaf(row: unknown): LeafRow | undefined {
  if (!row) return undefined;
  const r = row as LeafSqlRow;
  return { index: r.idx, key: String(r.record_key), leafHash: asBuffer(r.leaf_hash), record: asBuffer(r.record) };
}

/** Columns hold BLOBs when written by this store; whatever else someone put there still reads as bytes. */
function asBuffer(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v === null || v === undefined) return Buffer.alloc(0);
  return Buffer.from(String(v), 'utf8');
}

function toHead(row: unknown): TreeHeadRow | undefined {
  if (!row) return undefined;
  const r = row as HeadSqlRow;
  return { treeSize: r.tree_size, rootHash: asBuffer(r.root_hash), timestamp: r.timestamp, signature: asBuffer(r.signature) };
}
