import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { canonicalBytes } from '../protocol/canonical.ts';
import { AuditLog, type AuditReceipt } from '../verifier/audit/log.ts';
import { inclusionProof, leafHash, MerkleFrontier, rootOf, verifyConsistency } from '../protocol/merkle.ts';
import { SqliteAuditStore } from '../verifier/audit/store.ts';
import { p256TreeHeadSigner, p256TreeHeadVerifier, treeHeadSignerFrom, type TreeHeadVerify } from '../protocol/tree-head.ts';
import { auditLog, formatAuditReport, verifyReceipt } from '../verifier/audit/verify.ts';
import type { BatchAuditLog } from '../verifier/verifier.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDb(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bk-audit-'));
  dirs.push(dir);
  return join(dir, 'audit.db');
}

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const verify = p256TreeHeadVerifier(keys.publicKey);

function openLog(path: string | Database.Database, signer: KeyObject = keys.privateKey, now?: () => number) {
  const store = new SqliteAuditStore(path);
  return { store, log: new AuditLog(store, { sign: p256TreeHeadSigner(signer), ...(now ? { now } : {}) }) };
}

/** A decision record like the verifier's. */
function record(i: number) {
  return {
    v: 1,
    verifier: 'verifier-1',
    decided_at: 1_700_000_000_000 + i,
    ueid: `kiosk-${i % 7}`,
    att_id: `att-${i}`,
    att_hash: Buffer.alloc(32, i % 256).toString('base64url'),
    seq: i + 1,
    sub: `subject-${i % 13}`,
    modality: 'face',
    model_sha256: 'a'.repeat(64),
    site: 'Lobby',
    decision: i % 3 === 0 ? 'rejected' : 'match',
    reasons: i % 3 === 0 ? ['no_match'] : [],
    score: i % 3 === 0 ? 0.12 : 0.87,
    distance: null,
  };
}

const key = (i: number) => `att:kiosk-${i % 7}:att-${i}`;

/** Fills a log with n records in batches of `batch`, sealing each. */
async function fill(log: AuditLog, from: number, to: number, batch = 100): Promise<AuditReceipt[]> {
  const receipts: AuditReceipt[] = [];
  for (let i = from; i < to; i += batch) {
    const entries = [];
    for (let j = i; j < Math.min(i + batch, to); j++) entries.push({ key: key(j), record: record(j) });
    receipts.push(...(await log.appendBatchWithReceipts(entries)));
  }
  return receipts;
}

/** Test-only: what someone with write access to the file would do first. */
function dropTriggers(db: Database.Database): void {
  for (const t of ['leaves', 'nodes', 'tree_heads']) {
    db.exec(`DROP TRIGGER IF EXISTS audit_${t}_no_update; DROP TRIGGER IF EXISTS audit_${t}_no_delete;`);
  }
}

describe('audit log on SQLite', () => {
  it('appends 1..1000 records in batches; every receipt verifies, and so does every later proof', async () => {
    const { store, log } = openLog(await tempDb());
    // Uneven batches: sizes 1, 2, 3, ... so tree heads land on all sorts of sizes.
    const receipts: AuditReceipt[] = [];
    let i = 0;
    for (let b = 1; i < 1000; b++) {
      receipts.push(...(await fill(log, i, Math.min(i + b, 1000), b)));
      i = Math.min(i + b, 1000);
    }
    expect(log.size).toBe(1000);
    const hashes = Array.from({ length: 1000 }, (_, j) => leafHash(canonicalBytes(record(j))));
    const roots = new Map<number, string>();
    const rootAt = (n: number) => roots.get(n) ?? roots.set(n, rootOf(hashes.slice(0, n)).toString('base64url')).get(n)!;
    for (const [j, r] of receipts.entries()) {
      expect(r.leafIndex).toBe(j);
      expect(r.duplicate).toBe(false);
      expect(r.rootHash).toBe(rootAt(r.treeSize));
      expect(await verifyReceipt(record(j), r, verify)).toMatchObject({ ok: true });
    }
    // Receipts against the latest head for every entry; store-built proofs equal the in-memory ones.
    for (let j = 0; j < 1000; j++) {
      const r = log.receipt(j);
      expect(r.treeSize).toBe(1000);
      expect(await verifyReceipt(canonicalBytes(record(j)), r, verify)).toMatchObject({ ok: true });
    }
    for (let t = 0; t < 300; t++) {
      const size = 1 + Math.floor(Math.random() * 1000);
      const idx = Math.floor(Math.random() * size);
      expect(log.inclusionProof(idx, size)).toEqual(inclusionProof(idx, hashes.slice(0, size)).map((h) => h.toString('base64url')));
      const m = 1 + Math.floor(Math.random() * size);
      const proof = log.consistencyProof(m, size).map((p) => Buffer.from(p, 'base64url'));
      expect(verifyConsistency(m, size, Buffer.from(log.rootAt(m), 'base64url'), Buffer.from(log.rootAt(size), 'base64url'), proof)).toBe(true);
      expect(log.rootAt(size)).toBe(rootAt(size));
    }
    const report = await auditLog(store, verify);
    expect(report).toMatchObject({ ok: true, size: 1000, checkedLeaves: 1000, problemCount: 0, rootHash: rootOf(hashes).toString('base64url') });
    expect(report.checkedTreeHeads).toBeGreaterThan(40);
    expect(formatAuditReport(report)).toMatch(/^OK: 1000 of 1000 entries/);
    store.close();
  });

  it('is idempotent: a key logged twice is one entry and the same receipt position', async () => {
    const { store, log } = openLog(await tempDb());
    await fill(log, 0, 10);
    const first = await log.appendWithReceipt(key(10), record(10));
    expect(first).toMatchObject({ leafIndex: 10, treeSize: 11, duplicate: false });
    await fill(log, 11, 20);
    // Redelivered, even with a later decided_at: the original entry, proven against the current tree.
    const again = await log.appendWithReceipt(key(10), { ...record(10), decided_at: 1 });
    expect(again).toMatchObject({ leafIndex: 10, treeSize: 20, duplicate: true });
    expect(await verifyReceipt(record(10), again, verify)).toMatchObject({ ok: true });
    expect(log.size).toBe(20);
    // Within one batch, and against the synchronous API.
    const batch = await log.appendBatchWithReceipts([
      { key: 'new-1', record: { n: 1 } },
      { key: 'new-1', record: { n: 2 } },
      { key: key(3), record: record(3) },
    ]);
    expect(batch.map((r) => [r.leafIndex, r.duplicate])).toEqual([[20, false], [20, true], [3, true]]);
    expect(log.append('new-1', { n: 3 })).toEqual({ leafIndex: 20, duplicate: true });
    expect(log.size).toBe(21);
    // Sealing with nothing new signs nothing new.
    const h1 = await log.sealBatch();
    const h2 = await log.sealBatch();
    expect(h2).toEqual(h1);
    expect(log.receiptForKey('new-1')).toMatchObject({ leafIndex: 20, treeSize: 21 });
    expect(log.receiptForKey('nope')).toBeUndefined();
    expect(log.entry(20)).toMatchObject({ key: 'new-1', record: { n: 1 } });
    expect((await auditLog(store, verify)).ok).toBe(true);
    store.close();
  });

  it('reopens the file and continues: the old tree is a prefix of the new one', async () => {
    const path = await tempDb();
    let { store, log } = openLog(path);
    await fill(log, 0, 333, 37);
    const before = log.latestTreeHead()!;
    expect(before.tree_size).toBe(333);
    store.close();

    ({ store, log } = openLog(path));
    expect(log.size).toBe(333);
    expect(log.rootAt(333)).toBe(before.root_hash);
    const receipts = await fill(log, 333, 600, 50);
    const after = log.latestTreeHead()!;
    expect(after.tree_size).toBe(600);
    expect(after.timestamp).toBeGreaterThanOrEqual(before.timestamp);
    const proof = log.consistencyProof(333, 600).map((p) => Buffer.from(p, 'base64url'));
    expect(verifyConsistency(333, 600, Buffer.from(before.root_hash, 'base64url'), Buffer.from(after.root_hash, 'base64url'), proof)).toBe(true);
    for (const [j, r] of receipts.entries()) expect(await verifyReceipt(record(333 + j), r, verify)).toMatchObject({ ok: true });
    const hashes = Array.from({ length: 600 }, (_, j) => leafHash(canonicalBytes(record(j))));
    expect(after.root_hash).toBe(rootOf(hashes).toString('base64url'));
    expect((await auditLog(store, verify)).ok).toBe(true);
    store.close();
  });

  it("joins the caller's transaction and survives its rollback (the verifier's batch pattern)", async () => {
    const db = new Database(await tempDb());
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    const { store, log } = openLog(db);
    const audit: BatchAuditLog = log; // the interface verifier/verifier.ts codes against
    await fill(log, 0, 5);

    db.exec('BEGIN IMMEDIATE');
    expect(audit.appendBatch([5, 6, 7, 8, 9, 10, 11].map((j) => ({ key: key(j), record: record(j) })))).toEqual([5, 6, 7, 8, 9, 10, 11].map((j) => ({ leafIndex: j, duplicate: false })));
    await audit.sealBatch();
    db.exec('ROLLBACK');
    expect(log.size).toBe(5);
    expect(log.latestTreeHead()!.tree_size).toBe(5);

    // Different records in the same places: the log must not reuse the rolled-back frontier.
    db.exec('BEGIN IMMEDIATE');
    const indexes = audit.appendBatch([100, 101, 102].map((j) => ({ key: key(j), record: record(j) }))).map((r) => r.leafIndex);
    const head = await audit.sealBatch();
    const proofs = indexes.map((ix) => audit.inclusionProof(ix, head.treeSize));
    db.exec('COMMIT');
    expect(indexes).toEqual([5, 6, 7]);
    expect(head.treeSize).toBe(8);
    const hashes = [0, 1, 2, 3, 4, 100, 101, 102].map((j) => leafHash(canonicalBytes(record(j))));
    expect(head.rootHash).toBe(rootOf(hashes).toString('base64url'));
    for (const [n, ix] of indexes.entries()) {
      const check = await verifyReceipt(record(100 + n), { leafIndex: ix, treeSize: head.treeSize, rootHash: head.rootHash, inclusionProof: proofs[n]!, treeHeadSignature: head.signature, treeHeadTimestamp: head.timestamp }, verify);
      expect(check).toMatchObject({ ok: true });
    }
    expect((await auditLog(store, verify)).ok).toBe(true);
    store.close();
    expect(db.open).toBe(true); // a shared connection belongs to its owner
    db.close();
  });

  it('audits one consistent state of a log that is growing meanwhile', async () => {
    const path = await tempDb();
    const { store, log } = openLog(path);
    store.db.pragma('synchronous = OFF'); // test speed only
    await fill(log, 0, 1100, 1); // more tree heads than the audit reads in one page
    const reader = new SqliteAuditStore(path, { readonly: true });
    let grew = false;
    const growing: TreeHeadVerify = async (message, signature) => {
      if (!grew) {
        grew = true;
        await fill(log, 1100, 1200, 1);
      }
      return verify(message, signature);
    };
    const report = await auditLog(reader, growing);
    expect(grew).toBe(true);
    expect(report).toMatchObject({ ok: true, size: 1100, checkedTreeHeads: 1100 });
    expect(await auditLog(reader, verify)).toMatchObject({ ok: true, size: 1200, checkedTreeHeads: 1200 });
    reader.close();
    store.close();
  });

  it('signs tree heads with a biokiosk Signer (digest-only key store)', async () => {
    const ks = SoftwareKeyStore.ephemeral();
    const store = new SqliteAuditStore(await tempDb());
    const log = new AuditLog(store, { sign: treeHeadSignerFrom(ks) });
    const receipts = await fill(log, 0, 30, 10);
    const v = p256TreeHeadVerifier(ks.publicJwk as never);
    for (const [j, r] of receipts.entries()) expect(await verifyReceipt(record(j), r, v)).toMatchObject({ ok: true });
    expect((await auditLog(store, v)).ok).toBe(true);
    expect((await auditLog(store, verify)).problems[0]).toMatchObject({ kind: 'tree_head_signature' });
    store.close();
  });

  it('refuses bad receipts', async () => {
    const { store, log } = openLog(await tempDb());
    const receipts = await fill(log, 0, 50, 50);
    const r = receipts[17]!;
    expect(await verifyReceipt(record(17), r, verify)).toMatchObject({ ok: true });
    expect(await verifyReceipt(record(18), r, verify)).toMatchObject({ ok: false, reason: expect.stringMatching(/do not lead to the tree head root/) });
    expect(await verifyReceipt({ ...record(17), sub: 'mallory' }, r, verify)).toMatchObject({ ok: false });
    expect(await verifyReceipt(record(17), { ...r, leafIndex: 18 }, verify)).toMatchObject({ ok: false });
    expect(await verifyReceipt(record(17), { ...r, inclusionProof: r.inclusionProof.slice(1) }, verify)).toMatchObject({ ok: false });
    expect(await verifyReceipt(record(17), { ...r, inclusionProof: [...r.inclusionProof.slice(0, -1), 'A'.repeat(43)] }, verify)).toMatchObject({ ok: false });
    expect(await verifyReceipt(record(17), { ...r, inclusionProof: ['not base64url!'] }, verify)).toMatchObject({ ok: false });
    expect(await verifyReceipt(record(17), { ...r, signedTreeHead: { ...r.signedTreeHead, timestamp: r.signedTreeHead.timestamp + 1 } }, verify)).toMatchObject({
      ok: false,
      reason: 'the tree head signature does not verify',
    });
    expect(await verifyReceipt(record(17), { ...r, treeSize: 49 }, verify)).toMatchObject({ ok: false });
    const other = p256TreeHeadVerifier(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    expect(await verifyReceipt(record(17), r, other)).toMatchObject({ ok: false });
    expect(() => log.receipt(50)).toThrow(/not in the signed tree/);
    expect(() => log.inclusionProof(3, 51)).toThrow(/no tree of 51/);
    store.close();
  });

  it('refuses records that have no canonical JSON, writing nothing', async () => {
    const { store, log } = openLog(await tempDb());
    expect(() => log.appendBatch([{ key: 'ok', record: { a: 1 } }, { key: 'bad', record: { a: NaN } }])).toThrow(/cannot canonicalise/);
    expect(() => log.append('', { a: 1 })).toThrow(/non-empty key/);
    expect(log.size).toBe(0);
    expect(log.append('ok', { a: 1 })).toEqual({ leafIndex: 0, duplicate: false });
    store.close();
  });

  it('is append-only at the SQL level unless the triggers are dropped', async () => {
    const { store, log } = openLog(await tempDb());
    await fill(log, 0, 3);
    expect(() => store.db.prepare('UPDATE audit_leaves SET record = ? WHERE idx = 1').run(Buffer.from('{}'))).toThrow(/append-only/);
    expect(() => store.db.prepare('DELETE FROM audit_tree_heads').run()).toThrow(/append-only/);
    store.close();
  });
});

describe('audit: tamper detection', () => {
  async function filled(n = 1000, batch = 100) {
    const path = await tempDb();
    const { store, log } = openLog(path);
    await fill(log, 0, n, batch);
    dropTriggers(store.db);
    return { path, store, log };
  }

  it('reports the exact first changed record', async () => {
    const { store } = await filled();
    const forged = canonicalBytes({ ...record(437), sub: 'mallory' });
    store.db.prepare('UPDATE audit_leaves SET record = ? WHERE idx = ?').run(forged, 437);
    store.db.prepare('UPDATE audit_leaves SET record = ? WHERE idx = ?').run(canonicalBytes({ ...record(802), score: 1 }), 802);
    const report = await auditLog(store, verify);
    expect(report.ok).toBe(false);
    expect(report.firstTampered).toMatchObject({ index: 437 });
    expect(report.problems.filter((p) => p.kind === 'leaf_hash').map((p) => p.index)).toEqual([437, 802]);
    expect(formatAuditReport(report)).toMatch(/first tampered entry: 437/);
    store.close();
  });

  it('reports a record changed with its leaf hash, from the signed tree heads', async () => {
    const { store } = await filled();
    const forged = canonicalBytes({ ...record(437), sub: 'mallory' });
    store.db.prepare('UPDATE audit_leaves SET record = ?, leaf_hash = ? WHERE idx = ?').run(forged, leafHash(forged), 437);
    const report = await auditLog(store, verify);
    expect(report.ok).toBe(false);
    expect(report.problems.some((p) => p.kind === 'tree_head_root' && p.treeSize === 500)).toBe(true);
    expect(report.problems.some((p) => p.kind === 'tree_head_root' && p.treeSize === 400)).toBe(false);
    // The stored subtree over entries 436..437 still has the old hash: that pins it to two entries.
    const m = /\[(\d+), (\d+)\)/.exec(report.firstTampered!.reason)!;
    expect(Number(m[1])).toBeLessThanOrEqual(437);
    expect(Number(m[2])).toBeGreaterThan(437);
    expect(report.firstTampered!.index).toBe(436);
    store.close();
  });

  it('reports a changed or forged tree head', async () => {
    const { store } = await filled();
    store.db.prepare('UPDATE audit_tree_heads SET root_hash = ? WHERE tree_size = 300').run(Buffer.alloc(32, 7));
    store.db.prepare('UPDATE audit_tree_heads SET signature = ? WHERE tree_size = 700').run(Buffer.alloc(64, 1));
    store.db.prepare('UPDATE audit_tree_heads SET timestamp = timestamp + 1 WHERE tree_size = 900').run();
    const report = await auditLog(store, verify);
    expect(report.ok).toBe(false);
    expect(report.firstTampered).toBeUndefined(); // the entries are intact
    const kinds = report.problems.map((p) => `${p.kind}@${p.treeSize}`);
    expect(kinds).toEqual(
      expect.arrayContaining(['tree_head_signature@300', 'tree_head_root@300', 'consistency@300', 'consistency@400', 'tree_head_signature@700', 'tree_head_signature@900']),
    );
    expect(kinds).not.toContain('tree_head_root@700');
    store.close();
  });

  it('reports a deleted entry, in the middle or at the end', async () => {
    const { store } = await filled();
    store.db.prepare('DELETE FROM audit_leaves WHERE idx = 555').run();
    let report = await auditLog(store, verify);
    expect(report.ok).toBe(false);
    expect(report.firstTampered).toMatchObject({ index: 555, reason: 'entry 555 is missing' });
    expect(report.problems[0]).toMatchObject({ kind: 'missing_leaf', index: 555 });
    expect(report.checkedLeaves).toBe(999);

    store.db.prepare('DELETE FROM audit_leaves WHERE idx >= 998').run();
    report = await auditLog(store, verify);
    expect(report.firstTampered!.index).toBe(555);
    expect(report.size).toBe(998);
    expect(report.problems.some((p) => p.kind === 'tree_head_beyond_log' && p.treeSize === 1000)).toBe(true);
    store.close();

    const other = await filled(300, 100);
    other.store.db.prepare('DELETE FROM audit_leaves WHERE idx = 299').run();
    report = await auditLog(other.store, verify);
    expect(report.firstTampered).toMatchObject({ index: 299 });
    // And the log refuses to carry on over the damage.
    await expect(other.log.sealBatch()).rejects.toThrow(/entries were removed/);
    other.store.close();
  });

  it('reports a changed stored subtree (what proofs are built from)', async () => {
    const { store, log } = await filled(256, 64);
    store.db.prepare('UPDATE audit_nodes SET hash = ? WHERE level = 3 AND idx = 5').run(Buffer.alloc(32, 9));
    const report = await auditLog(store, verify);
    expect(report.ok).toBe(false);
    expect(report.firstTampered).toBeUndefined();
    expect(report.problems.some((p) => p.kind === 'node_hash' && p.index === 40)).toBe(true);
    // The running log still has the right hash in memory; after a restart, a proof through that subtree fails.
    expect(await verifyReceipt(record(32), log.receipt(32), verify)).toMatchObject({ ok: true });
    const restarted = new AuditLog(store, { sign: p256TreeHeadSigner(keys.privateKey) });
    expect(await verifyReceipt(record(0), restarted.receipt(0), verify)).toMatchObject({ ok: true });
    expect(await verifyReceipt(record(32), restarted.receipt(32), verify)).toMatchObject({ ok: false });
    store.close();
  });

  it('catches a consistent rewrite (hashes, subtrees, tree heads) with tree heads kept elsewhere', async () => {
    const { store, log } = await filled(500, 100);
    const kept = [log.treeHead(300)!, log.treeHead(100)!]; // e.g. from receipts kiosks hold
    // Rewrite entry 250 and everything derived from it, then drop the stored heads the key cannot re-sign.
    const forged = canonicalBytes({ ...record(250), sub: 'mallory' });
    store.db.prepare('UPDATE audit_leaves SET record = ?, leaf_hash = ? WHERE idx = 250').run(forged, leafHash(forged));
    const hashes = (store.db.prepare('SELECT leaf_hash FROM audit_leaves ORDER BY idx').pluck().all() as Buffer[]);
    const f = MerkleFrontier.empty();
    const fix = store.db.prepare('UPDATE audit_nodes SET hash = ? WHERE level = ? AND idx = ?');
    for (const h of hashes) for (const n of f.append(h)) fix.run(n.hash, n.level, n.index);
    store.db.prepare('DELETE FROM audit_tree_heads').run();
    expect((await auditLog(store, verify)).ok).toBe(true); // nothing left in the file to contradict it

    const report = await auditLog(store, verify, { knownTreeHeads: kept });
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => `${p.kind}@${p.treeSize}`)).toEqual(['known_tree_head_root@300']);
    expect(report.firstTampered).toMatchObject({ index: 100 });
    expect(report.firstTampered!.reason).toMatch(/\[100, 300\)/);

    const forgedHead = { ...kept[0]!, root_hash: rootOf(hashes.slice(0, 300)).toString('base64url') };
    const beyond = { ...kept[0]!, tree_size: 600 };
    const more = await auditLog(store, verify, { knownTreeHeads: [forgedHead, beyond, { ...kept[1]!, root_hash: 'x' }] });
    expect(more.problems.map((p) => p.kind).sort()).toEqual(['known_tree_head_signature', 'known_tree_head_signature', 'known_tree_head_signature']);
    store.close();
  });

  it('reads a log read-only and survives unreadable bytes', async () => {
    const { path, store } = await filled(100, 10);
    store.db.prepare("UPDATE audit_leaves SET record = 'not json', leaf_hash = x'00' WHERE idx = 42").run();
    store.close();
    const ro = new SqliteAuditStore(path, { readonly: true });
    const report = await auditLog(ro, verify);
    expect(report.firstTampered).toMatchObject({ index: 42 });
    ro.close();
    const throwing: TreeHeadVerify = () => {
      throw new Error('boom');
    };
    const empty = await tempDb();
    new Database(empty).close();
    expect(() => new SqliteAuditStore(empty, { readonly: true })).toThrow(/holds no audit log/);
    expect(() => new SqliteAuditStore(join(empty, '..', 'nope.db'), { readonly: true })).toThrow();
    const ro2 = new SqliteAuditStore(path, { readonly: true });
    expect((await auditLog(ro2, throwing)).problems.some((p) => p.kind === 'tree_head_signature')).toBe(true);
    ro2.close();
  });
});

describe('audit: an empty log', () => {
  it('audits and seals cleanly', async () => {
    const { store, log } = openLog(await tempDb(), keys.privateKey, () => 42);
    expect(await auditLog(store, verify)).toMatchObject({ ok: true, size: 0, checkedTreeHeads: 0 });
    const head = await log.sealBatch();
    expect(head).toMatchObject({ treeSize: 0, timestamp: 42, rootHash: '47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU' });
    expect(await auditLog(store, verify)).toMatchObject({ ok: true, checkedTreeHeads: 1 });
    expect(() => log.receipt(0)).toThrow();
    store.close();
  });
});
