/**
 * Micro-benchmark of the audit log's append path on a real SQLite file (WAL, synchronous=FULL: each commit is
 * an fsync), in batches as the verifier uses it. Not part of the test suite.
 * Run: npx tsx bench/audit-append.ts [records-per-case=50000] [batch=100] [dir=os.tmpdir()]
 *
 * Cases:
 * - appendBatch: one transaction per batch, no tree head.
 * - verifier pattern: BEGIN IMMEDIATE; append() each record; sealBatch() (one ES256 signature); an inclusion
 *   proof for each record; COMMIT. One fsync per batch.
 * - appendBatchWithReceipts: appendBatch, then sealBatch in its own commit, then receipts.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../verifier/audit/log.ts';
import { SqliteAuditStore } from '../verifier/audit/store.ts';
import { p256TreeHeadSigner, p256TreeHeadVerifier } from '../protocol/tree-head.ts';
import { auditLog } from '../verifier/audit/verify.ts';

const total = Number(process.argv[2] ?? 50_000);
const batch = Number(process.argv[3] ?? 100);
const dir = await mkdtemp(join(process.argv[4] ?? tmpdir(), 'bk-audit-bench-'));
const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });

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

function open(name: string) {
  const store = new SqliteAuditStore(join(dir, `${name}.db`));
  return { store, log: new AuditLog(store, { sign: p256TreeHeadSigner(keys.privateKey) }) };
}

function report(name: string, n: number, ms: number, extra = '') {
  const rate = n / (ms / 1000);
  console.log(`${name.padEnd(44)} ${rate.toFixed(0).padStart(8)} records/s   (${((ms * 1000) / n).toFixed(1)} µs each${extra})`);
}

console.log(`node ${process.version}; ${total} records per case, batches of ${batch}; SQLite WAL, synchronous=FULL, in ${dir}`);

{
  const { store, log } = open('append');
  const t0 = performance.now();
  for (let i = 0; i < total; i += batch) {
    const entries = [];
    for (let j = i; j < Math.min(i + batch, total); j++) entries.push({ key: `k${j}`, record: record(j) });
    log.appendBatch(entries);
  }
  report('appendBatch (no tree heads)', total, performance.now() - t0);
  store.close();
}

{
  const { store, log } = open('verifier');
  const t0 = performance.now();
  let proofMs = 0;
  for (let i = 0; i < total; i += batch) {
    store.db.exec('BEGIN IMMEDIATE');
    const indexes: number[] = [];
    for (let j = i; j < Math.min(i + batch, total); j++) indexes.push(log.append(`k${j}`, record(j)).leafIndex);
    const head = await log.sealBatch();
    const p0 = performance.now();
    for (const ix of indexes) log.inclusionProof(ix, head.treeSize);
    proofMs += performance.now() - p0;
    store.db.exec('COMMIT');
  }
  const ms = performance.now() - t0;
  report('verifier pattern (append+seal+proofs, 1 tx)', total, ms, `; proofs ${((proofMs * 1000) / total).toFixed(1)} µs each`);

  const a0 = performance.now();
  const audit = await auditLog(store, p256TreeHeadVerifier(keys.publicKey));
  const ams = performance.now() - a0;
  console.log(`${'full audit of that log'.padEnd(44)} ${(total / (ams / 1000)).toFixed(0).padStart(8)} records/s   (${audit.ok ? 'ok' : 'FAILED'}; ${audit.checkedTreeHeads} tree heads)`);
  store.close();
}

{
  const { store, log } = open('receipts');
  const t0 = performance.now();
  for (let i = 0; i < total; i += batch) {
    const entries = [];
    for (let j = i; j < Math.min(i + batch, total); j++) entries.push({ key: `k${j}`, record: record(j) });
    await log.appendBatchWithReceipts(entries);
  }
  report('appendBatchWithReceipts (2 commits/batch)', total, performance.now() - t0);
  store.close();
}

await rm(dir, { recursive: true, force: true });
