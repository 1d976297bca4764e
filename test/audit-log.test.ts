/**
 * The audit log (verifier/audit/): salted commitments appended in decision batches, C2SP checkpoints, inclusion
 * and consistency proofs, receipts, key rotation, and the audit that finds what someone with the database changed,
 * on the embedded SQLite store and on PostgreSQL (one server for this file, a database per test).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { canonicalBytes } from '../protocol/canonical.ts';
import type { DecisionRecord, Receipt } from '../protocol/claims.ts';
import { emptyRoot, leafHash, MerkleFrontier, rootOf, verifyConsistency, verifyInclusion } from '../protocol/merkle.ts';
import { addSignatures, checkpointText, formatVkey, NoteSigner, openCheckpoint, parseNote, parseVkey, SIG_COSIGNATURE_V1 } from '../protocol/note.ts';
import { checkReceiptProof, leafCommitment } from '../protocol/receipt.ts';
import { appendBatch, AuditProofs, entryLeafHash, logKeysChange, SALT_BYTES, type AppendOutcome, type AuditEntry, type LogKeysRecord } from '../verifier/audit/log.ts';
import { SqliteAuditStore, type AuditReader, type CheckpointRow } from '../verifier/audit/store.ts';
import { auditLog, formatAuditReport } from '../verifier/audit/verify.ts';
import { signerOf, type LogKeyRing, type LogSigner } from '../verifier/log-key.ts';
import { migratePostgres, PgVerifierStore } from '../verifier/pg-store.ts';
import { SqliteVerifierStore } from '../verifier/sqlite-store.ts';
import type { VerifierStore } from '../verifier/store.ts';
import { startPostgres, type PgServer } from './helpers/postgres.ts';

const GALLERY_KEY = randomBytes(32);
const ORIGIN = 'test.example/log';

function ring(origin = ORIGIN): LogKeyRing {
  return { kind: 'biokiosk-log-keys/1', origin, keys: [{ pkcs8: NoteSigner.generate(origin).pkcs8.toString('base64'), createdAt: 0, retiredAt: null }] };
}
const SIGNER = signerOf(ring());
const TRUST = { logKeys: SIGNER.allVerifiers };

/** A decision record like the verifier's (valid for a receipt). */
function record(i: number): DecisionRecord {
  return {
    v: 1,
    verifier: 'verifier-1',
    decided_at: 1_700_000_000_000 + i,
    ueid: `kiosk-${i % 7}`,
    att_id: `att-${String(i).padStart(12, '0')}`,
    att_hash: createHash('sha256').update(`attestation ${i}`).digest('base64url'),
    seq: i + 1,
    sub: `subject-${i % 13}`,
    modality: 'face',
    model_sha256: 'a'.repeat(64),
    site: 'Lobby',
    decision: i % 3 === 0 ? 'rejected' : 'match',
    reasons: i % 3 === 0 ? ['no_enrollment'] : [],
    score: i % 3 === 0 ? null : 0.87,
    distance: null,
  };
}
const key = (i: number) => `att:${record(i).ueid}:${record(i).att_id}`;

// ---- stores and raw access ----------------------------------------------------------------------------------

/** Raw SQL on the store's database, as an insider with write access; `?` placeholders on both. */
interface Raw {
  all(sql: string, params?: unknown[]): Promise<Array<Record<string, unknown>>>;
  run(sql: string, params?: unknown[]): Promise<void>;
  exec(sql: string): Promise<void>;
  /** What an insider does first: turn the append-only triggers off for this connection (SQLite: drop them). */
  disableTriggers(): Promise<void>;
}

interface Fixture {
  store: VerifierStore;
  raw: Raw;
}

interface Backend {
  kind: 'sqlite' | 'postgres';
  fresh(): Promise<Fixture>;
}

const toClose: Array<() => Promise<unknown>> = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const c of toClose.splice(0).reverse()) await c().catch(() => {});
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

let pgServer: PgServer;
let dbCount = 0;
beforeAll(async () => {
  pgServer = await startPostgres();
});
afterAll(async () => {
  await pgServer?.cleanup();
});

const backends: Backend[] = [
  {
    kind: 'sqlite',
    async fresh() {
      const dir = await mkdtemp(join(tmpdir(), 'bk-audit-'));
      dirs.push(dir);
      const path = join(dir, 'verifier.db');
      const store = new SqliteVerifierStore(path, { galleryKey: GALLERY_KEY });
      store.db.pragma('synchronous = NORMAL'); // test speed only
      toClose.push(() => store.close());
      const db = new Database(path);
      db.pragma('busy_timeout = 5000');
      toClose.push(async () => db.close());
      return {
        store,
        raw: {
          all: async (sql, params = []) => db.prepare(sql).all(...params) as Array<Record<string, unknown>>,
          run: async (sql, params = []) => void db.prepare(sql).run(...params),
          exec: async (sql) => void db.exec(sql),
          disableTriggers: async () => {
            for (const t of ['audit_leaves', 'audit_nodes', 'audit_checkpoints']) db.exec(`DROP TRIGGER IF EXISTS ${t}_no_update; DROP TRIGGER IF EXISTS ${t}_no_delete;`);
          },
        },
      };
    },
  },
  {
    kind: 'postgres',
    async fresh() {
      const name = `audit_${++dbCount}`;
      const url = await pgServer.createDatabase(name);
      toClose.unshift(async () => {
        const admin = new pg.Client({ connectionString: pgServer.url('postgres') });
        admin.on('error', () => {});
        await admin.connect();
        await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).finally(() => admin.end());
      });
      await migratePostgres(url);
      const store = await PgVerifierStore.open(url, { galleryKey: GALLERY_KEY });
      toClose.push(() => store.close());
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => {});
      await client.connect();
      toClose.push(() => client.end());
      const numbered = (sql: string) => {
        let i = 0;
        return sql.replace(/\?/g, () => `$${++i}`);
      };
      return {
        store,
        raw: {
          all: async (sql, params = []) => (await client.query(numbered(sql), params)).rows as Array<Record<string, unknown>>,
          run: async (sql, params = []) => void (await client.query(numbered(sql), params)),
          exec: async (sql) => void (await client.query(sql)),
          disableTriggers: async () => void (await client.query('SET session_replication_role = replica')),
        },
      };
    },
  },
];

const sqlite = backends[0]!;

// ---- helpers ------------------------------------------------------------------------------------------------

/** Appends records [from, to) in one batch. */
function appendRange(s: VerifierStore, from: number, to: number, signer: LogSigner = SIGNER, now = 1_700_000_000_000 + to): Promise<AppendOutcome> {
  const entries: AuditEntry[] = [];
  for (let i = from; i < to; i++) entries.push({ key: key(i), record: record(i) });
  return s.batch((tx) => appendBatch(tx.audit, signer, entries, now));
}

/** Appends records 0..sizes[last]-1 in batches ending at each of `sizes`. */
async function fillTo(s: VerifierStore, sizes: readonly number[], signer: LogSigner = SIGNER): Promise<AppendOutcome[]> {
  const out: AppendOutcome[] = [];
  let from = 0;
  for (const to of sizes) {
    out.push(await appendRange(s, from, to, signer));
    from = to;
  }
  return out;
}

const every = (n: number, step: number) => Array.from({ length: Math.ceil(n / step) }, (_, i) => Math.min(n, (i + 1) * step));

async function allCheckpoints(r: AuditReader): Promise<CheckpointRow[]> {
  return r.checkpoints(-1, 100_000);
}

/** A real receipt, the way the verifier builds one (test/helpers/e2e.ts appendWithReceipt). */
async function receiptFor(s: VerifierStore, out: AppendOutcome, i: number): Promise<Receipt> {
  const leaf = out.leaves[i]!;
  const [proof] = await new AuditProofs(s.audit).prove([{ kind: 'inclusion', index: leaf.index, size: out.checkpoint.treeSize }], out.known);
  return {
    leafIndex: leaf.index,
    treeSize: out.checkpoint.treeSize,
    rootHash: out.checkpoint.rootHash.toString('base64url'),
    inclusionProof: proof!.map((h) => h.toString('base64url')),
    checkpoint: out.checkpoint.note,
    entry: JSON.parse(leaf.record.toString('utf8')) as DecisionRecord,
    salt: leaf.salt.toString('base64url'),
    consistency: null,
  };
}

function witness(name = 'witness.example/w1'): NoteSigner {
  return NoteSigner.generate(name, SIG_COSIGNATURE_V1).signer;
}

/** A witness's cosignature added to a checkpoint note (what a witness hands back). */
function cosigned(note: string, w: NoteSigner, at = 1_700_000_000): string {
  return addSignatures(note, w.cosign(parseNote(note).text, at));
}

/**
 * What an insider holding the log key does: rewrites the leaves (new indexes 0..n-1), recomputes every leaf hash,
 * stored subtree and the frontier, and re-signs checkpoints at the given sizes (timestamps kept).
 */
async function rebuild(raw: Raw, leaves: ReadonlyArray<{ key: string; record: Buffer; salt: Buffer }>, checkpoints: ReadonlyArray<{ treeSize: number; timestamp: number }>, signer: LogSigner = SIGNER): Promise<void> {
  await raw.disableTriggers();
  await raw.exec('BEGIN');
  for (const t of ['audit_checkpoints', 'audit_cosignatures', 'audit_nodes', 'audit_leaves']) await raw.run(`DELETE FROM ${t}`);
  const at = new Map(checkpoints.map((c) => [c.treeSize, c.timestamp]));
  const f = MerkleFrontier.empty();
  const rows: Record<'audit_leaves' | 'audit_nodes' | 'audit_checkpoints', unknown[][]> = { audit_leaves: [], audit_nodes: [], audit_checkpoints: [] };
  for (const [i, l] of leaves.entries()) {
    const h = entryLeafHash(l.salt, l.record);
    rows.audit_leaves.push([i, l.key, h, l.record, l.salt]);
    for (const n of f.append(h)) rows.audit_nodes.push([n.level, n.index, n.hash]);
    const ts = at.get(f.size);
    if (ts !== undefined) {
      const text = checkpointText({ origin: signer.origin, treeSize: f.size, rootHash: f.root() });
      rows.audit_checkpoints.push([f.size, f.root(), ts, `${text}\n${signer.sign(text)}`]);
    }
  }
  const columns = { audit_leaves: '(idx, record_key, leaf_hash, record, salt)', audit_nodes: '(level, idx, hash)', audit_checkpoints: '(tree_size, root_hash, timestamp, note)' };
  for (const [table, list] of Object.entries(rows) as Array<[keyof typeof rows, unknown[][]]>) {
    for (let i = 0; i < list.length; i += 100) {
      const part = list.slice(i, i + 100);
      await raw.run(`INSERT INTO ${table} ${columns[table]} VALUES ${part.map((r) => `(${r.map(() => '?').join(', ')})`).join(', ')}`, part.flat());
    }
  }
  await raw.run('UPDATE audit_frontier SET size = ?, roots = ? WHERE id = 1', [f.size, Buffer.concat(f.roots)]);
  await raw.exec('COMMIT');
}

// ---- the log on both stores ---------------------------------------------------------------------------------

describe.each(backends)('audit log on $kind', (b) => {
  it('appends 1..1000 records in batches; every inclusion proof against every checkpoint, and consistency between them, verifies', async () => {
    const { store: s } = await b.fresh();
    // Uneven batches (1, 2, 3, ... entries), so checkpoints land on all sorts of sizes.
    const sizes: number[] = [];
    for (let n = 0, step = 1; n < 1000; step++) sizes.push((n = Math.min(1000, n + step)));
    const outs = await fillTo(s, sizes);
    expect(await s.audit.size()).toBe(1000);
    // Each batch's own proofs (from what the batch computed) verify against its checkpoint.
    const proofs = new AuditProofs(s.audit);
    for (const out of outs) {
      const got = await proofs.prove(out.leaves.map((l) => ({ kind: 'inclusion' as const, index: l.index, size: out.checkpoint.treeSize })), out.known);
      out.leaves.forEach((l, i) => {
        expect(l.duplicate).toBe(false);
        expect(verifyInclusion(l.index, out.checkpoint.treeSize, entryLeafHash(l.salt, l.record), got[i]!, out.checkpoint.rootHash)).toBe(true);
      });
    }
    const leaves = await s.audit.range(0, 1000);
    expect(leaves.map((l) => l.index)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    leaves.forEach((l, i) => expect(l.record.equals(canonicalBytes(record(i)))).toBe(true));
    const hashes = leaves.map((l) => entryLeafHash(l.salt, l.record));
    const cps = await allCheckpoints(s.audit);
    expect(cps.map((c) => c.treeSize)).toEqual(sizes);
    // Every entry against every checkpoint that contains it (on PostgreSQL, whose proofs are the same computation
    // over other reads, a sample of entries for the earlier checkpoints), proofs read from the store (no cache).
    let checked = 0;
    for (const cp of cps) {
      expect(cp.rootHash.equals(rootOf(hashes.slice(0, cp.treeSize)))).toBe(true);
      const all = b.kind === 'sqlite' || cp.treeSize === 1000;
      const indexes = Array.from({ length: cp.treeSize }, (_, i) => i).filter((i) => all || i % 17 === 0 || i === cp.treeSize - 1);
      const got = await new AuditProofs(s.audit).prove(indexes.map((index) => ({ kind: 'inclusion' as const, index, size: cp.treeSize })));
      indexes.forEach((index, j) => {
        if (!verifyInclusion(index, cp.treeSize, hashes[index]!, got[j]!, cp.rootHash)) throw new Error(`inclusion of ${index} in ${cp.treeSize} does not verify`);
      });
      checked += indexes.length;
      // A proof does not verify for a neighbouring entry.
      if (cp.treeSize > 1) expect(verifyInclusion(indexes[0]!, cp.treeSize, hashes[indexes[0]! + 1]!, got[0]!, cp.rootHash)).toBe(false);
    }
    if (b.kind === 'sqlite') expect(checked).toBe(sizes.reduce((x, y) => x + y, 0));
    else expect(checked).toBeGreaterThan(1000 + 2 * cps.length);
    // Consistency between every pair of checkpoints.
    const pairs = cps.flatMap((a, i) => cps.slice(i + 1).map((c) => [a, c] as const));
    const cons = await new AuditProofs(s.audit).prove(pairs.map(([a, c]) => ({ kind: 'consistency' as const, from: a.treeSize, to: c.treeSize })));
    pairs.forEach(([a, c], i) => {
      if (!verifyConsistency(a.treeSize, c.treeSize, a.rootHash, c.rootHash, cons[i]!)) throw new Error(`consistency ${a.treeSize} -> ${c.treeSize} does not verify`);
    });
    expect(verifyConsistency(cps[3]!.treeSize, cps[9]!.treeSize, cps[4]!.rootHash, cps[9]!.rootHash, cons[pairs.findIndex(([a, c]) => a === cps[3] && c === cps[9])]!)).toBe(false);

    const report = await auditLog(s.audit, TRUST);
    expect(report).toMatchObject({ ok: true, origin: ORIGIN, size: 1000, checkedLeaves: 1000, checkedCheckpoints: cps.length, problemCount: 0, rootHash: rootOf(hashes).toString('base64url') });
    expect(report.latestCheckpoint).toMatchObject({ treeSize: 1000, witnesses: [] });
    expect(formatAuditReport(report)).toMatch(/^OK: 1000 of 1000 entries, 45 checkpoints/);
  });

  it('is idempotent: a key logged twice (in one batch or across batches) is one entry, with its salt and record', async () => {
    const { store: s } = await b.fresh();
    const first = await s.batch((tx) =>
      appendBatch(
        tx.audit,
        SIGNER,
        [
          { key: 'a', record: { n: 1 } },
          { key: 'a', record: { n: 2 } },
          { key: 'b', record: { n: 3 } },
        ],
        1000,
      ),
    );
    expect(first.leaves.map((l) => [l.key, l.index, l.duplicate])).toEqual([
      ['a', 0, false],
      ['a', 0, true],
      ['b', 1, false],
    ]);
    expect(first.leaves[1]!.salt.equals(first.leaves[0]!.salt)).toBe(true);
    expect(first.leaves[1]!.record.toString()).toBe('{"n":1}');
    expect(first.checkpoint.treeSize).toBe(2);

    // Redelivered later, with another record: the original entry.
    const second = await s.batch((tx) =>
      appendBatch(
        tx.audit,
        SIGNER,
        [
          { key: 'a', record: { n: 9 } },
          { key: 'c', record: { n: 4 } },
        ],
        2000,
      ),
    );
    expect(second.leaves.map((l) => [l.key, l.index, l.duplicate])).toEqual([
      ['a', 0, true],
      ['c', 2, false],
    ]);
    expect(second.leaves[0]!.salt.equals(first.leaves[0]!.salt)).toBe(true);
    expect(second.leaves[0]!.record.toString()).toBe('{"n":1}');
    expect(await s.audit.size()).toBe(3);
    expect((await s.audit.leafByKey('a'))!.salt.equals(first.leaves[0]!.salt)).toBe(true);

    // Nothing new: no new checkpoint, the latest one is the answer.
    const before = (await allCheckpoints(s.audit)).length;
    const third = await s.batch((tx) => appendBatch(tx.audit, SIGNER, [{ key: 'b', record: {} }], 3000));
    expect(third.leaves[0]).toMatchObject({ key: 'b', index: 1, duplicate: true });
    expect(third.checkpoint.treeSize).toBe(3);
    expect(third.checkpoint.note).toBe(second.checkpoint.note);
    expect((await allCheckpoints(s.audit)).length).toBe(before);
    // A key is required.
    await expect(s.batch((tx) => appendBatch(tx.audit, SIGNER, [{ key: '', record: {} }], 4000))).rejects.toThrow(/non-empty key/);
    expect((await auditLog(s.audit, TRUST)).ok).toBe(true);
  });

  it('signs checkpoints as C2SP notes under its origin', async () => {
    const { store: s } = await b.fresh();
    await fillTo(s, [1, 5, 12]);
    const vkey = formatVkey(SIGNER.verifiers[0]!);
    expect(vkey.startsWith(`${ORIGIN}+`)).toBe(true);
    const cps = await allCheckpoints(s.audit);
    expect(cps.map((c) => c.treeSize)).toEqual([1, 5, 12]);
    for (const cp of cps) {
      const lines = cp.note.split('\n');
      expect(lines.slice(0, 4)).toEqual([ORIGIN, String(cp.treeSize), cp.rootHash.toString('base64'), '']);
      expect(lines[4]).toMatch(new RegExp(`^\u2014 ${ORIGIN.replace(/[./]/g, '\\$&')} [A-Za-z0-9+/]+=*$`));
      expect(lines.slice(5)).toEqual(['']);
      expect(openCheckpoint(cp.note, [parseVkey(vkey)]).checkpoint).toEqual({ origin: ORIGIN, treeSize: cp.treeSize, rootHash: cp.rootHash });
      expect(() => openCheckpoint(cp.note, signerOf(ring()).verifiers)).toThrow(/not signed by a log key this party trusts/);
    }
    expect(await s.audit.checkpoint(5)).toEqual(cps[1]);
    expect(await s.audit.latestCheckpoint()).toEqual(cps[2]);
    expect(await s.audit.checkpoints(1, 1)).toEqual([cps[1]]);
    expect(await s.audit.checkpoint(6)).toBeUndefined();
  });

  it('records the signing keys: in meta at first, then a log_keys entry per rotation, checkpoints signed by every active key', async () => {
    const { store: s } = await b.fresh();
    const r1 = ring();
    const s1 = signerOf(r1);
    const vk1 = formatVkey(s1.verifiers[0]!);
    // A batch the way verifier.ts does it.
    const batch = (signer: LogSigner, entries: AuditEntry[], now: number) =>
      s.batch(async (tx) => {
        const change = await logKeysChange(tx.audit, signer, now);
        const out = await appendBatch(tx.audit, signer, [...(change?.entry ? [change.entry] : []), ...entries], now);
        if (change) await tx.audit.setMeta('log_keys', change.active);
        return { change, out };
      });
    const first = await batch(s1, [{ key: key(0), record: record(0) }], 1000);
    expect(first.change).toEqual({ entry: undefined, active: JSON.stringify([vk1]) });
    expect(await s.audit.size()).toBe(1);
    expect(await s.audit.meta('log_keys')).toBe(JSON.stringify([vk1]));
    expect(await s.audit.meta('origin')).toBe(ORIGIN);
    expect((await batch(s1, [{ key: key(1), record: record(1) }], 2000)).change).toBeUndefined();

    // Rotation: a second key signs alongside the first.
    const r2: LogKeyRing = { ...r1, keys: [...r1.keys, ring().keys[0]!] };
    const s2 = signerOf(r2);
    const vk2 = formatVkey(s2.verifiers[1]!);
    const rotated = await batch(s2, [{ key: key(2), record: record(2) }], 3000);
    const entry = rotated.change!.entry!;
    expect(entry.key).toMatch(/^log_keys:[A-Za-z0-9_-]{43}:3000$/);
    expect(entry.record).toEqual({ v: 1, type: 'log_keys', origin: ORIGIN, active: [vk1, vk2].sort(), at: 3000 } satisfies LogKeysRecord);
    expect(rotated.out.leaves.map((l) => [l.index, l.key])).toEqual([
      [2, entry.key],
      [3, key(2)],
    ]);
    expect(JSON.parse((await s.audit.leaf(2))!.record.toString())).toMatchObject({ type: 'log_keys', active: [vk1, vk2].sort() });
    const note = rotated.out.checkpoint.note;
    expect(parseNote(note).signatures.length).toBe(2);
    expect(openCheckpoint(note, [s1.verifiers[0]!]).checkpoint.treeSize).toBe(4);
    expect(openCheckpoint(note, [s2.verifiers[1]!]).checkpoint.treeSize).toBe(4);
    expect((await batch(s2, [{ key: key(3), record: record(3) }], 4000)).change).toBeUndefined();

    // The old key retired: one more log_keys entry, and checkpoints by the new key alone.
    const r3: LogKeyRing = { ...r2, keys: [{ ...r2.keys[0]!, retiredAt: 5000 }, r2.keys[1]!] };
    const s3 = signerOf(r3);
    const retired = await batch(s3, [{ key: key(4), record: record(4) }], 5000);
    expect((retired.change!.entry!.record as LogKeysRecord).active).toEqual([vk2]);
    expect(parseNote(retired.out.checkpoint.note).signatures.length).toBe(1);
    expect(() => openCheckpoint(retired.out.checkpoint.note, [s1.verifiers[0]!])).toThrow(/not signed/);
    expect(await s.audit.size()).toBe(7);

    // An auditor with every key the ring held: ok; with the new key only, the early checkpoints are not the log's.
    expect((await auditLog(s.audit, { logKeys: s3.allVerifiers })).ok).toBe(true);
    const partial = await auditLog(s.audit, { logKeys: [s2.verifiers[1]!] });
    expect(partial.problems.filter((p) => p.kind === 'checkpoint_signature').map((p) => p.treeSize)).toEqual([1, 2]);
  });

  it("refuses a log key of another origin, appending nothing", async () => {
    const { store: s } = await b.fresh();
    await fillTo(s, [3]);
    const other = signerOf(ring('other.example/log'));
    await expect(appendRange(s, 3, 5, other)).rejects.toThrow(/origin is test\.example\/log, but the log key is for other\.example\/log/);
    expect(await s.audit.size()).toBe(3);
    expect((await s.audit.latestCheckpoint())!.treeSize).toBe(3);
  });

  it('publishes commitments: a leaf is not computable from the record without its salt', async () => {
    const { store: s } = await b.fresh();
    const same = record(5);
    const out = await s.batch((tx) =>
      appendBatch(
        tx.audit,
        SIGNER,
        [
          { key: 'x', record: same },
          { key: 'y', record: same },
        ],
        1,
      ),
    );
    const [x, y] = [(await s.audit.leafByKey('x'))!, (await s.audit.leafByKey('y'))!];
    expect(x.record.equals(y.record)).toBe(true);
    expect(x.salt.length).toBe(SALT_BYTES);
    expect(x.salt.equals(y.salt)).toBe(false);
    expect(x.leafHash.equals(y.leafHash)).toBe(false);
    const bytes = canonicalBytes(same);
    expect(x.leafHash.equals(leafHash(bytes))).toBe(false);
    expect(x.leafHash.equals(leafHash(createHash('sha256').update(bytes).digest()))).toBe(false);
    expect(x.leafHash.equals(leafHash(leafCommitment(x.salt, bytes)))).toBe(true);
    expect(x.leafHash.equals(entryLeafHash(out.leaves[0]!.salt, bytes))).toBe(true);
    expect((await s.audit.nodes([{ level: 0, index: 1 }]))[0]!.equals(y.leafHash)).toBe(true);
  });

  it('gives receipts that check on their own, and fail when anything in them is changed', async () => {
    const { store: s } = await b.fresh();
    await fillTo(s, [10]);
    const out = await appendRange(s, 10, 17);
    const r = await receiptFor(s, out, 3); // entry 13
    const r2 = await receiptFor(s, out, 4);
    expect(r).toMatchObject({ leafIndex: 13, treeSize: 17, entry: record(13) });
    expect(checkReceiptProof(r, TRUST)).toMatchObject({ ok: true, checkpoint: { origin: ORIGIN, treeSize: 17 } });

    const forged = (x: Receipt) => checkReceiptProof(x, TRUST);
    expect(forged({ ...r, salt: randomBytes(32).toString('base64url') })).toMatchObject({ ok: false, reason: expect.stringMatching(/inclusion proof does not lead/) });
    expect(forged({ ...r, entry: { ...r.entry, sub: 'mallory' } })).toMatchObject({ ok: false, reason: expect.stringMatching(/inclusion proof/) });
    expect(forged({ ...r, entry: { ...r.entry, decision: 'no_match' } })).toMatchObject({ ok: false });
    expect(forged({ ...r, leafIndex: 14 })).toMatchObject({ ok: false }); // this proof, another index
    expect(forged({ ...r, inclusionProof: r2.inclusionProof })).toMatchObject({ ok: false }); // another index's proof
    expect(forged({ ...r2, entry: r.entry, salt: r.salt })).toMatchObject({ ok: false });
    // A checkpoint from another log (same size): not signed by this log's key; trusted too, its root is another's.
    const { store: o } = await b.fresh();
    const otherSigner = signerOf(ring('other.example/log'));
    await fillTo(o, [17], otherSigner);
    const otherNote = (await o.audit.checkpoint(17))!.note;
    expect(forged({ ...r, checkpoint: otherNote })).toMatchObject({ ok: false, reason: expect.stringMatching(/not signed by a log key/) });
    expect(checkReceiptProof({ ...r, checkpoint: otherNote }, { logKeys: [...SIGNER.verifiers, ...otherSigner.verifiers] })).toMatchObject({ ok: false, reason: expect.stringMatching(/another root/) });
    // The root in the checkpoint changed (and in the receipt to match): the signature fails.
    const root = randomBytes(32);
    const lines = r.checkpoint.split('\n');
    lines[2] = root.toString('base64');
    expect(forged({ ...r, checkpoint: lines.join('\n'), rootHash: root.toString('base64url') })).toMatchObject({ ok: false, reason: expect.stringMatching(/signature .* does not verify/) });
    // A checkpoint of an earlier tree.
    expect(forged({ ...r, checkpoint: (await s.audit.checkpoint(10))!.note })).toMatchObject({ ok: false });

    // Cosigned by a witness the checker trusts: ok, and said; a cosignature that does not verify: refused.
    const w = witness();
    const withW = { ...r, checkpoint: cosigned(r.checkpoint, w, 1_700_000_123) };
    const checked = checkReceiptProof(withW, { ...TRUST, witnesses: [w.verifier] });
    expect(checked.ok && [...checked.witnessedBy]).toEqual([[w.name, 1_700_000_123]]);
    const badLine = w.cosign(parseNote((await s.audit.checkpoint(10))!.note).text, 1);
    expect(checkReceiptProof({ ...r, checkpoint: addSignatures(r.checkpoint, badLine) }, { ...TRUST, witnesses: [w.verifier] })).toMatchObject({ ok: false, reason: expect.stringMatching(/cosignature .* does not verify/) });
  });

  it('audits one consistent state of a log another connection appends to meanwhile', async () => {
    const { store: s } = await b.fresh();
    await fillTo(s, every(300, 30));
    let grew = false;
    // The auditor's reader: the first time the audit reads checkpoints (after it read the size), another
    // connection appends 200 entries and signs two checkpoints.
    const reader = {
      snapshot: <T>(fn: (r: AuditReader) => Promise<T>) =>
        s.audit.snapshot((inner) =>
          fn(
            new Proxy(inner, {
              get(target, prop, receiver) {
                const v = Reflect.get(target, prop, receiver) as unknown;
                if (prop === 'checkpoints' && !grew) {
                  return async (after: number, limit: number) => {
                    grew = true;
                    await appendRange(s, 300, 400);
                    await appendRange(s, 400, 500);
                    return target.checkpoints(after, limit);
                  };
                }
                return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
              },
            }),
          ),
        ),
    } as unknown as AuditReader;
    const during = await auditLog(reader, TRUST);
    expect(grew).toBe(true);
    expect(await s.audit.size()).toBe(500);
    expect(during).toMatchObject({ ok: true, size: 300, checkedLeaves: 300, checkedCheckpoints: 10, latestCheckpoint: { treeSize: 300 } });
    expect(await auditLog(s.audit, TRUST)).toMatchObject({ ok: true, size: 500, checkedCheckpoints: 12 });
  });

  it('refuses UPDATE and DELETE of leaves, nodes and checkpoints at the SQL level', async () => {
    const { store: s, raw } = await b.fresh();
    await fillTo(s, [4]);
    await expect(raw.run('UPDATE audit_leaves SET record = ? WHERE idx = 1', [Buffer.from('{}')])).rejects.toThrow(/append-only/);
    await expect(raw.run('DELETE FROM audit_leaves WHERE idx = 3')).rejects.toThrow(/append-only/);
    await expect(raw.run('UPDATE audit_nodes SET hash = ?', [Buffer.alloc(32)])).rejects.toThrow(/append-only/);
    await expect(raw.run('DELETE FROM audit_nodes')).rejects.toThrow(/append-only/);
    await expect(raw.run('UPDATE audit_checkpoints SET note = ?', ['x'])).rejects.toThrow(/append-only/);
    await expect(raw.run('DELETE FROM audit_checkpoints')).rejects.toThrow(/append-only/);
    if (b.kind === 'postgres') await expect(raw.run('TRUNCATE audit_leaves')).rejects.toThrow(/append-only/);
    expect(await s.audit.size()).toBe(4);
    expect((await auditLog(s.audit, TRUST)).ok).toBe(true);
  });

  it('audits an empty log, and one whose only checkpoint is of the empty tree', async () => {
    const { store: s } = await b.fresh();
    expect(await auditLog(s.audit, TRUST)).toMatchObject({ ok: true, size: 0, checkedLeaves: 0, checkedCheckpoints: 0, problemCount: 0, rootHash: emptyRoot().toString('base64url') });
    const out = await s.batch((tx) => appendBatch(tx.audit, SIGNER, [], 42));
    expect(out.checkpoint).toMatchObject({ treeSize: 0, timestamp: 42 });
    expect(out.checkpoint.rootHash.equals(emptyRoot())).toBe(true);
    expect(openCheckpoint(out.checkpoint.note, SIGNER.verifiers).checkpoint.treeSize).toBe(0);
    expect(await auditLog(s.audit, TRUST)).toMatchObject({ ok: true, size: 0, checkedCheckpoints: 1 });
  });
});

// ---- tamper detection ----------------------------------------------------------------------------------------

describe.each(backends)('audit: tamper detection on $kind', (b) => {
  async function filled(sizes: readonly number[] = every(1000, 100)) {
    const f = await b.fresh();
    await fillTo(f.store, sizes);
    return f;
  }

  it('reports a record changed without its leaf hash, at its index', async () => {
    const { store: s, raw } = await filled();
    await raw.disableTriggers();
    await raw.run('UPDATE audit_leaves SET record = ? WHERE idx = ?', [canonicalBytes({ ...record(437), sub: 'mallory' }), 437]);
    await raw.run('UPDATE audit_leaves SET record = ? WHERE idx = ?', [canonicalBytes({ ...record(802), score: 1 }), 802]);
    const report = await auditLog(s.audit, TRUST);
    expect(report.ok).toBe(false);
    expect(report.firstTampered).toMatchObject({ index: 437, reason: expect.stringMatching(/record of entry 437 .* was changed/) });
    expect(report.problems.map((p) => [p.kind, p.index])).toEqual([
      ['leaf_hash', 437],
      ['leaf_hash', 802],
    ]);
    expect(formatAuditReport(report)).toMatch(/^FAILED[\s\S]*first tampered entry: 437/);
  });

  it("catches the insider's rewrite (hashes, nodes, checkpoints re-signed with the log key) with witnessed or kiosk-kept checkpoints", async () => {
    // Checkpoints at 430 and 438 bracket entry 437 closely.
    const { store: s, raw } = await filled([100, 200, 300, 400, 430, 438, 500, 600, 700, 800, 900, 1000]);
    const original = await allCheckpoints(s.audit);
    const kept = new Map(original.map((c) => [c.treeSize, c.note]));
    const leaves = await s.audit.range(0, 1000);
    const forged = { ...record(437), sub: 'mallory', decision: 'match' as const, reasons: [] };
    leaves[437] = { ...leaves[437]!, record: canonicalBytes(forged) };
    await rebuild(raw, leaves, original);

    // The log alone cannot tell: everything in it agrees, signed by the log's own key.
    const alone = await auditLog(s.audit, TRUST);
    expect(alone).toMatchObject({ ok: true, size: 1000, problemCount: 0 });
    expect((await s.audit.checkpoint(438))!.note).not.toBe(kept.get(438));

    // A witness cosigned the checkpoints of 430 and 438 when they were new.
    const w = witness();
    const witnessed = await auditLog(s.audit, { ...TRUST, witnesses: [w.verifier] }, { knownCheckpoints: [cosigned(kept.get(430)!, w), cosigned(kept.get(438)!, w)] });
    expect(witnessed.ok).toBe(false);
    expect(witnessed.independentCheckpoints).toBe(2);
    expect(witnessed.problems.map((p) => `${p.kind}@${p.treeSize}`)).toEqual(['witnessed_root@438']);
    expect(witnessed.firstTampered!.index).toBe(430);
    expect(witnessed.firstTampered!.reason).toMatch(/\[430, 438\)/);
    expect(witnessed.firstTampered!.reason).toContain(`437 (${forged.ueid}/${forged.att_id}: match)`);

    // A kiosk kept the log-signed checkpoints of its receipts.
    const kiosk = await auditLog(s.audit, TRUST, { knownCheckpoints: [kept.get(430)!, kept.get(438)!, kept.get(1000)!] });
    expect(kiosk.ok).toBe(false);
    expect(kiosk.problems.map((p) => `${p.kind}@${p.treeSize}`)).toEqual(['known_root@438', 'known_root@1000']);
    expect(kiosk.firstTampered!.index).toBe(430);
    expect(kiosk.firstTampered!.reason).toContain('437 (');
    // Only the later checkpoint kept: still caught, with a wider bracket.
    const wide = await auditLog(s.audit, TRUST, { knownCheckpoints: [kept.get(1000)!] });
    expect(wide.problems.map((p) => p.kind)).toEqual(['known_root']);
    expect(wide.firstTampered).toMatchObject({ index: 0, reason: expect.stringMatching(/\[0, 1000\)/) });
    // Checkpoints from before the change still match.
    expect((await auditLog(s.audit, TRUST, { knownCheckpoints: [kept.get(400)!, kept.get(430)!] })).ok).toBe(true);
  });

  it('catches five entries deleted and the log rebuilt, with an older independent checkpoint', async () => {
    const { store: s, raw } = await filled();
    const original = await allCheckpoints(s.audit);
    const kept = new Map(original.map((c) => [c.treeSize, c.note]));
    const leaves = (await s.audit.range(0, 1000)).filter((l) => l.index < 500 || l.index >= 505);
    await rebuild(raw, leaves, [...original.filter((c) => c.treeSize <= 995), { treeSize: 995, timestamp: original.at(-1)!.timestamp }]);
    expect(await auditLog(s.audit, TRUST)).toMatchObject({ ok: true, size: 995 });

    const report = await auditLog(s.audit, TRUST, { knownCheckpoints: [kept.get(400)!, kept.get(1000)!] });
    expect(report.ok).toBe(false);
    expect(report.size).toBe(995);
    expect(report.problems).toEqual([expect.objectContaining({ kind: 'known_beyond_log', treeSize: 1000, message: expect.stringMatching(/covers 1000 entries but the log has 995: entries were removed/) })]);
    expect(report.firstTampered).toMatchObject({ index: 400, reason: expect.stringMatching(/entries were removed/) });
    // One inside the new range no longer matches either.
    const mid = await auditLog(s.audit, TRUST, { knownCheckpoints: [kept.get(600)!] });
    expect(mid.problems.map((p) => `${p.kind}@${p.treeSize}`)).toEqual(['known_root@600']);
  });

  it('reports a changed stored subtree (what proofs are built from), and proofs through it stop verifying', async () => {
    const { store: s, raw } = await filled(every(256, 64));
    await raw.disableTriggers();
    await raw.run('UPDATE audit_nodes SET hash = ? WHERE level = 3 AND idx = 5', [Buffer.alloc(32, 9)]);
    const report = await auditLog(s.audit, TRUST);
    expect(report.ok).toBe(false);
    expect(report.firstTampered).toBeUndefined(); // the entries are intact
    expect(report.problems.map((p) => `${p.kind}@${p.index}`)).toEqual(['node_hash@40']);
    const cp = (await s.audit.latestCheckpoint())!;
    const leaves = await s.audit.range(0, 256);
    const [p0, p32] = await new AuditProofs(s.audit).prove([
      { kind: 'inclusion', index: 0, size: 256 },
      { kind: 'inclusion', index: 32, size: 256 },
    ]);
    expect(verifyInclusion(0, 256, leaves[0]!.leafHash, p0!, cp.rootHash)).toBe(true);
    expect(verifyInclusion(32, 256, leaves[32]!.leafHash, p32!, cp.rootHash)).toBe(false);
  });

  it('reports a stored checkpoint with a forged signature, and one whose root is not the entries', async () => {
    const { store: s, raw } = await filled();
    const cp = (await s.audit.checkpoint(700))!;
    const n = parseNote(cp.note);
    const sig = Buffer.from(n.signatures[0]!.line.trim().split(' ').at(-1)!, 'base64');
    sig[sig.length - 1]! ^= 1;
    const forgedNote = `${n.text}\n\u2014 ${ORIGIN} ${sig.toString('base64')}\n`;
    // And one signed by another key under the log's name.
    const impostor = signerOf(ring());
    const cp300 = (await s.audit.checkpoint(300))!;
    await raw.disableTriggers();
    await raw.run('UPDATE audit_checkpoints SET note = ? WHERE tree_size = 700', [forgedNote]);
    await raw.run('UPDATE audit_checkpoints SET note = ? WHERE tree_size = 300', [`${parseNote(cp300.note).text}\n${impostor.sign(parseNote(cp300.note).text)}`]);
    // A row whose root was changed and re-signed with the log key: its root is not the entries'.
    const root = randomBytes(32);
    const text = checkpointText({ origin: ORIGIN, treeSize: 900, rootHash: root });
    await raw.run('UPDATE audit_checkpoints SET root_hash = ?, note = ? WHERE tree_size = 900', [root, `${text}\n${SIGNER.sign(text)}`]);
    const report = await auditLog(s.audit, TRUST);
    expect(report.ok).toBe(false);
    expect(report.firstTampered).toMatchObject({ index: 800 }); // between the last checkpoint that matches and 900
    expect(report.problems.map((p) => `${p.kind}@${p.treeSize}`)).toEqual(['checkpoint_signature@300', 'checkpoint_signature@700', 'checkpoint_root@900']);
  });

  it('checks stored witness cosignatures: valid ones count as independent, one that does not verify is reported', async () => {
    const { store: s } = await filled(every(500, 100));
    const w = witness();
    const w2 = witness('witness.example/w2');
    const cp = (await s.audit.checkpoint(300))!;
    await s.audit.addCosignature(300, w.name, w.cosign(parseNote(cp.note).text, 1_700_000_000), 1);
    await s.audit.addCosignature(500, w.name, w.cosign(parseNote((await s.audit.checkpoint(500))!.note).text, 1_700_000_100), 2);
    const good = await auditLog(s.audit, { ...TRUST, witnesses: [w.verifier, w2.verifier] });
    expect(good).toMatchObject({ ok: true, independentCheckpoints: 2, latestCheckpoint: { treeSize: 500, witnesses: [w.name] } });
    expect((await s.audit.latestCosigned())!.checkpoint.treeSize).toBe(500);
    // w2's line for 400 is over another checkpoint's text.
    await s.audit.addCosignature(400, w2.name, w2.cosign(parseNote(cp.note).text, 1_700_000_050), 3);
    const bad = await auditLog(s.audit, { ...TRUST, witnesses: [w.verifier, w2.verifier] });
    expect(bad.ok).toBe(false);
    expect(bad.firstTampered).toBeUndefined();
    expect(bad.problems.map((p) => `${p.kind}@${p.treeSize}`)).toEqual(['cosignature@400']);
    expect(bad.problems[0]!.message).toMatch(/cosignature of witness\.example\/w2 stored for size 400 does not verify/);
  });
});

describe('audit: what only the SQLite file shows', () => {
  it('audits the file read-only, and survives unreadable bytes in it', async () => {
    const { store: s, raw } = await sqlite.fresh();
    await fillTo(s, every(100, 10));
    await raw.disableTriggers();
    await raw.run("UPDATE audit_leaves SET record = 'not json', leaf_hash = x'00', salt = x'01' WHERE idx = 42");
    const path = (s as SqliteVerifierStore).path;
    const ro = new SqliteAuditStore(path, { readonly: true });
    try {
      const report = await auditLog(ro, TRUST);
      expect(report.checkedLeaves).toBe(100);
      expect(report.problems[0]).toMatchObject({ kind: 'leaf_hash', index: 42 });
      // The leaf hash itself unusable, the tree from 42 on differs from the stored checkpoints: bracketed from the
      // last one that matches, naming the entry that cannot be read.
      expect(report.problems.filter((p) => p.kind === 'checkpoint_root').map((p) => p.treeSize)).toEqual([50, 60, 70, 80, 90, 100]);
      expect(report.firstTampered!.index).toBe(40);
      expect(report.firstTampered!.reason).toMatch(/\[40, 50\)[\s\S]*42 \(unreadable record\)/);
    } finally {
      ro.close();
    }
  });
});
