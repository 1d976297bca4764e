/**
 * The audit log's storage on PostgreSQL (the fleet's store): the same tables and contract as the SQLite audit
 * store (store.ts), on a pool (reads outside batches, each a statement of its own) or on one batch's client
 * (inside its transaction). Bulk operations are one statement each (unnest over arrays), so a batch of 256
 * entries costs a handful of round trips.
 */
import type pg from 'pg';
import { BiokioskError } from '../../protocol/errors.ts';
import type { SubtreeId } from '../../protocol/merkle.ts';
import { asBuffer, decodeRoots, encodeRoots, type AuditReader, type AuditWriter, type CheckpointRow, type Frontier, type LeafAppend, type LeafRow } from './store.ts';

export type Queryable = pg.Pool | pg.PoolClient;

interface LeafSqlRow {
  idx: number;
  record_key: string;
  leaf_hash: Buffer;
  record: Buffer;
  salt: Buffer;
}

function toLeaf(r: LeafSqlRow): LeafRow {
  return { index: Number(r.idx), key: r.record_key, leafHash: asBuffer(r.leaf_hash), record: asBuffer(r.record), salt: asBuffer(r.salt) };
}

interface CheckpointSqlRow {
  tree_size: number;
  root_hash: Buffer;
  timestamp: number;
  note: string;
}

function toCheckpoint(r: CheckpointSqlRow | undefined): CheckpointRow | undefined {
  return r ? { treeSize: Number(r.tree_size), rootHash: asBuffer(r.root_hash), timestamp: Number(r.timestamp), note: r.note } : undefined;
}

export class PgAuditStore implements AuditWriter {
  constructor(private readonly q: Queryable) {}

  private async rows<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.q.query(sql, params)).rows as T[];
  }

  async size(): Promise<number> {
    return Number((await this.rows<{ n: number }>('SELECT coalesce(max(idx) + 1, 0) AS n FROM audit_leaves'))[0]!.n);
  }

  async leaf(index: number): Promise<LeafRow | undefined> {
    const r = await this.rows<LeafSqlRow>('SELECT * FROM audit_leaves WHERE idx = $1', [index]);
    return r[0] ? toLeaf(r[0]) : undefined;
  }

  async leafByKey(key: string): Promise<LeafRow | undefined> {
    const r = await this.rows<LeafSqlRow>('SELECT * FROM audit_leaves WHERE record_key = $1', [key]);
    return r[0] ? toLeaf(r[0]) : undefined;
  }

  async leavesByKeys(keys: readonly string[]): Promise<Map<string, LeafRow>> {
    const out = new Map<string, LeafRow>();
    if (keys.length === 0) return out;
    for (const r of await this.rows<LeafSqlRow>('SELECT * FROM audit_leaves WHERE record_key = ANY($1::text[])', [keys])) out.set(r.record_key, toLeaf(r));
    return out;
  }

  async meta(key: string): Promise<string | undefined> {
    return (await this.rows<{ value: string }>('SELECT value FROM audit_meta WHERE key = $1', [key]))[0]?.value;
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.q.query('INSERT INTO audit_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }

  async range(start: number, end: number): Promise<LeafRow[]> {
    return (await this.rows<LeafSqlRow>('SELECT * FROM audit_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx', [start, end])).map(toLeaf);
  }

  async nodes(ids: readonly SubtreeId[]): Promise<Array<Buffer | undefined>> {
    const found = new Map<string, Buffer>();
    const leaves = ids.filter((i) => i.level === 0).map((i) => i.index);
    const inner = ids.filter((i) => i.level > 0);
    if (leaves.length > 0) {
      for (const r of await this.rows<{ idx: number; leaf_hash: Buffer }>('SELECT idx, leaf_hash FROM audit_leaves WHERE idx = ANY($1::bigint[])', [leaves])) found.set(`0:${Number(r.idx)}`, asBuffer(r.leaf_hash));
    }
    if (inner.length > 0) {
      const sql = 'SELECT n.level, n.idx, n.hash FROM audit_nodes n JOIN unnest($1::smallint[], $2::bigint[]) AS u(level, idx) ON n.level = u.level AND n.idx = u.idx';
      for (const r of await this.rows<{ level: number; idx: number; hash: Buffer }>(sql, [inner.map((i) => i.level), inner.map((i) => i.index)])) found.set(`${Number(r.level)}:${Number(r.idx)}`, asBuffer(r.hash));
    }
    return ids.map((i) => found.get(`${i.level}:${i.index}`));
  }

  async levelHashes(level: number, start: number, end: number): Promise<Buffer[]> {
    if (level === 0) return (await this.rows<{ leaf_hash: Buffer }>('SELECT leaf_hash FROM audit_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx', [start, end])).map((r) => asBuffer(r.leaf_hash));
    return (await this.rows<{ hash: Buffer }>('SELECT hash FROM audit_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx', [level, start, end])).map((r) => asBuffer(r.hash));
  }

  async checkpoint(treeSize: number): Promise<CheckpointRow | undefined> {
    return toCheckpoint((await this.rows<CheckpointSqlRow>('SELECT * FROM audit_checkpoints WHERE tree_size = $1', [treeSize]))[0]);
  }

  async latestCheckpoint(): Promise<CheckpointRow | undefined> {
    return toCheckpoint((await this.rows<CheckpointSqlRow>('SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1'))[0]);
  }

  async checkpoints(afterSize: number, limit: number): Promise<CheckpointRow[]> {
    return (await this.rows<CheckpointSqlRow>('SELECT * FROM audit_checkpoints WHERE tree_size > $1 ORDER BY tree_size LIMIT $2', [afterSize, limit])).map((r) => toCheckpoint(r)!);
  }

  async cosignatures(treeSize: number): Promise<string[]> {
    return (await this.rows<{ line: string }>('SELECT line FROM audit_cosignatures WHERE tree_size = $1 ORDER BY witness', [treeSize])).map((r) => r.line);
  }

  async latestCosigned(): Promise<{ checkpoint: CheckpointRow; lines: string[] } | undefined> {
    const size = (await this.rows<{ s: number | null }>('SELECT max(tree_size) AS s FROM audit_cosignatures'))[0]?.s;
    if (size === null || size === undefined) return undefined;
    const checkpoint = await this.checkpoint(Number(size));
    return checkpoint ? { checkpoint, lines: await this.cosignatures(Number(size)) } : undefined;
  }

  async addCosignature(treeSize: number, witness: string, line: string, at: number): Promise<void> {
    await this.q.query('INSERT INTO audit_cosignatures (tree_size, witness, line, received_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [treeSize, witness, line, at]);
  }

  async frontier(): Promise<Frontier> {
    const r = (await this.rows<{ size: number; roots: Buffer }>('SELECT size, roots FROM audit_frontier WHERE id = 1'))[0];
    return r ? { size: Number(r.size), roots: decodeRoots(asBuffer(r.roots)) } : { size: 0, roots: [] };
  }

  async append(entries: readonly LeafAppend[], frontier: Frontier): Promise<void> {
    try {
      if (entries.length > 0) {
        await this.q.query(
          `INSERT INTO audit_leaves (idx, record_key, leaf_hash, record, salt)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[])`,
          [entries.map((e) => e.leaf.index), entries.map((e) => e.leaf.key), entries.map((e) => e.leaf.leafHash), entries.map((e) => e.leaf.record), entries.map((e) => e.leaf.salt)],
        );
        const nodes = entries.flatMap((e) => e.nodes);
        if (nodes.length > 0) {
          await this.q.query('INSERT INTO audit_nodes (level, idx, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])', [nodes.map((n) => n.level), nodes.map((n) => n.index), nodes.map((n) => n.hash)]);
        }
      }
      await this.q.query('INSERT INTO audit_frontier (id, size, roots) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET size = excluded.size, roots = excluded.roots', [frontier.size, encodeRoots(frontier.roots)]);
    } catch (e) {
      throw new BiokioskError('AuditAppendFailed', `cannot append ${entries.length} leaves to the audit log: ${(e as Error).message}`, { kind: 'internal', cause: e });
    }
  }

  async putCheckpoint(c: CheckpointRow): Promise<boolean> {
    const r = await this.q.query('INSERT INTO audit_checkpoints (tree_size, root_hash, timestamp, note) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [c.treeSize, c.rootHash, c.timestamp, c.note]);
    return (r.rowCount ?? 0) > 0;
  }

  /** One REPEATABLE READ, read-only transaction on a client of its own: the view of one moment. */
  async snapshot<T>(fn: (r: AuditReader) => Promise<T>): Promise<T> {
    if (!isPool(this.q)) return fn(this);
    const client = await this.q.connect();
    // A checked-out client whose connection dies emits 'error' besides failing its query: heard here, not uncaught.
    let broken = false;
    const onError = () => {
      broken = true;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const result = await fn(new PgAuditStore(client));
      await client.query('COMMIT');
      return result;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw e;
    } finally {
      client.removeListener('error', onError);
      client.release(broken ? true : undefined);
    }
  }
}

function isPool(q: Queryable): q is pg.Pool {
  return typeof (q as pg.Pool).connect === 'function' && typeof (q as pg.Pool).totalCount === 'number';
}
