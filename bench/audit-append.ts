/**
 * Audit-log appends sustained, as the verifier appends them: one store batch (the decision lock, one commit) per
 * batch of records, each with its salted commitment, the perfect subtrees it completes, the new frontier and a
 * signed C2SP checkpoint; then the receipts' inclusion proofs (from the batch's memory). On the embedded SQLite
 * store (WAL, synchronous=FULL: an fsync per commit) and on PostgreSQL 15 (fsync on, synchronous_commit on), in
 * the same run. Then a full audit of each log.
 * Run: npx tsx bench/audit-append.ts [records-per-store=50000] [batch=256]  (prints one JSON object last)
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appendBatch, AuditProofs, type AuditEntry } from '../verifier/audit/log.ts';
import { auditLog } from '../verifier/audit/verify.ts';
import { signerOf, type LogKeyRing } from '../verifier/log-key.ts';
import { NoteSigner } from '../protocol/note.ts';
import { migratePostgres, PgVerifierStore } from '../verifier/pg-store.ts';
import { SqliteVerifierStore } from '../verifier/sqlite-store.ts';
import type { VerifierStore } from '../verifier/store.ts';
import { startPostgres } from '../test/helpers/postgres.ts';

const total = Number(process.argv[2] ?? 50_000);
const batch = Number(process.argv[3] ?? 256);
const dir = await mkdtemp(join(tmpdir(), 'bk-audit-bench-'));
const ring: LogKeyRing = { kind: 'biokiosk-log-keys/1', origin: 'bench.example/log', keys: [{ pkcs8: NoteSigner.generate('bench.example/log').pkcs8.toString('base64'), createdAt: 0, retiredAt: null }] };
const signer = signerOf(ring);
const galleryKey = randomBytes(32);

function record(i: number) {
  return {
    v: 1,
    verifier: 'verifier-bench',
    decided_at: Date.now(),
    ueid: `kiosk-${String(i % 500).padStart(4, '0')}`,
    att_id: `att-${i.toString(36).padStart(10, '0')}`,
    att_hash: Buffer.alloc(32, i % 251).toString('base64url'),
    seq: i + 1,
    sub: `subject-${i % 1000}`,
    modality: 'face',
    model_sha256: 'a'.repeat(64),
    site: 'Lobby',
    decision: i % 3 === 0 ? 'rejected' : 'match',
    reasons: i % 3 === 0 ? ['no_match'] : [],
    score: 0.5 + (i % 100) / 1000,
    distance: null,
  };
}

async function run(name: string, store: VerifierStore): Promise<Record<string, number | string | boolean>> {
  const proofs = new AuditProofs(store.audit);
  const batchMs: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < total; i += batch) {
    const b0 = performance.now();
    const entries: AuditEntry[] = [];
    for (let j = i; j < Math.min(i + batch, total); j++) entries.push({ key: `att:${j}`, record: record(j) });
    const outcome = await store.batch((tx) => appendBatch(tx.audit, signer, entries, Date.now()));
    proofs.remember(outcome.known);
    await proofs.prove(outcome.leaves.map((l) => ({ kind: 'inclusion' as const, index: l.index, size: outcome.checkpoint.treeSize })), outcome.known);
    batchMs.push(performance.now() - b0);
  }
  const ms = performance.now() - t0;
  const a0 = performance.now();
  const report = await auditLog(store.audit, { logKeys: signer.verifiers });
  const auditMs = performance.now() - a0;
  batchMs.sort((a, b) => a - b);
  const r = {
    store: name,
    records: total,
    batch,
    appendsPerSecond: Math.round(total / (ms / 1000)),
    batchP50Ms: Number(batchMs[Math.floor(batchMs.length / 2)]!.toFixed(2)),
    batchP99Ms: Number(batchMs[Math.floor(batchMs.length * 0.99)]!.toFixed(2)),
    auditRecordsPerSecond: Math.round(total / (auditMs / 1000)),
    auditOk: report.ok,
  };
  console.log(`${name.padEnd(10)} ${String(r.appendsPerSecond).padStart(7)} appends/s (batch p50 ${r.batchP50Ms} ms, p99 ${r.batchP99Ms} ms); audit ${r.auditRecordsPerSecond}/s ${report.ok ? 'ok' : 'FAILED'}`);
  return r;
}

console.log(`node ${process.version}; ${total} records per store, batches of ${batch}`);
const results = [];
const sqlite = new SqliteVerifierStore(join(dir, 'verifier.db'), { galleryKey });
results.push(await run('sqlite', sqlite));
await sqlite.close();
const pgServer = await startPostgres();
try {
  const url = await pgServer.createDatabase('bench');
  await migratePostgres(url);
  const pg = await PgVerifierStore.open(url, { galleryKey });
  results.push(await run('postgres', pg));
  await pg.close();
} finally {
  await pgServer.cleanup();
  await rm(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ auditAppend: results }));
