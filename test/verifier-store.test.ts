/**
 * The verifier store's contract (verifier/store.ts), one conformance suite run against both implementations: the
 * embedded SQLite store (a temp folder per test) and the fleet's PostgreSQL store (one real server for this file,
 * a fresh database per test). Then what only one of them has: SQLite's adoption of files from before schema
 * versions, PostgreSQL's migrations, two nodes racing on one database, and a server restart under load.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NoteSigner } from '../protocol/note.ts';
import { appendBatch, AuditProofs, entryLeafHash, type AppendOutcome } from '../verifier/audit/log.ts';
import { auditLog } from '../verifier/audit/verify.ts';
import { signerOf, type LogSigner } from '../verifier/log-key.ts';
import { LATEST_SCHEMA, MIGRATIONS } from '../verifier/migrations.ts';
import { migratePostgres, PgVerifierStore } from '../verifier/pg-store.ts';
import { MAX_PENDING_SEQS } from '../verifier/replay-window.ts';
import { SqliteVerifierStore } from '../verifier/sqlite-store.ts';
import { galleryKey, NONCE_GRACE_MS, REJECTION_SAMPLES_KEPT, type GalleryEntry, type NonceCheck, type SeqCheck, type VerifierStore } from '../verifier/store.ts';
import { verifyInclusion } from '../protocol/merkle.ts';
import { startPostgres, type PgServer } from './helpers/postgres.ts';

const GALLERY_KEY = randomBytes(32);
const ALL_VERSIONS = MIGRATIONS.map((m) => m.version);
const JWK = { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' };
const FORMAT = 'biokiosk-face/1';
const MODEL = 'ab'.repeat(32);

function logSigner(origin = 'test.example/log'): LogSigner {
  return signerOf({ kind: 'biokiosk-log-keys/1', origin, keys: [{ pkcs8: NoteSigner.generate(origin).pkcs8.toString('base64'), createdAt: 0, retiredAt: null }] });
}

/** Raw SQL on the store's database, as someone with access to it; `?` placeholders on both. */
interface Raw {
  all(sql: string, params?: unknown[]): Promise<Array<Record<string, unknown>>>;
  run(sql: string, params?: unknown[]): Promise<void>;
  close(): Promise<void>;
}

interface Fixture {
  store: VerifierStore;
  raw: Raw;
  /** Another store on the same storage (another process, or another node). */
  reopen(galleryKey?: Uint8Array): Promise<VerifierStore>;
}

interface Backend {
  kind: 'sqlite' | 'postgres';
  fresh(): Promise<Fixture>;
}

// ---- bookkeeping: everything opened is closed after its test ----------------------------------------------

const toClose: Array<() => Promise<unknown>> = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const c of toClose.splice(0).reverse()) await c().catch(() => {});
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempPath(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bk-vs-'));
  dirs.push(dir);
  return join(dir, 'verifier.db');
}

function openSqlite(path: string, key: Uint8Array = GALLERY_KEY, opts: { migrate?: boolean } = {}): SqliteVerifierStore {
  const s = new SqliteVerifierStore(path, { galleryKey: key, ...opts });
  toClose.push(() => s.close());
  return s;
}

function sqliteRaw(path: string): Raw {
  const db = new Database(path);
  db.pragma('busy_timeout = 5000');
  toClose.push(async () => db.close());
  return {
    all: async (sql, params = []) => db.prepare(sql).all(...params) as Array<Record<string, unknown>>,
    run: async (sql, params = []) => void db.prepare(sql).run(...params),
    close: async () => void db.close(),
  };
}

let pgServer: PgServer;
let dbCount = 0;
beforeAll(async () => {
  pgServer = await startPostgres();
});
afterAll(async () => {
  await pgServer?.cleanup();
});

async function newDatabase(migrate = true): Promise<string> {
  const name = `vs_${++dbCount}`;
  const url = await pgServer.createDatabase(name);
  // Dropped after its test (after everything on it is closed): a server restart then has no pages of it to flush.
  toClose.unshift(() => dropDatabase(name));
  if (migrate) await migratePostgres(url);
  return url;
}

async function dropDatabase(name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: pgServer.url('postgres') });
  admin.on('error', () => {});
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

async function openPg(url: string, key: Uint8Array = GALLERY_KEY, opts: { retryForMs?: number; onRetry?: (e: unknown) => void } = {}): Promise<PgVerifierStore> {
  const s = await PgVerifierStore.open(url, { galleryKey: key, ...opts });
  toClose.push(() => s.close());
  return s;
}

async function pgRaw(url: string): Promise<Raw> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  toClose.push(() => client.end());
  const numbered = (sql: string) => {
    let i = 0;
    return sql.replace(/\?/g, () => `$${++i}`);
  };
  return {
    all: async (sql, params = []) => (await client.query(numbered(sql), params)).rows as Array<Record<string, unknown>>,
    run: async (sql, params = []) => void (await client.query(numbered(sql), params)),
    close: () => client.end(),
  };
}

const backends: Backend[] = [
  {
    kind: 'sqlite',
    async fresh() {
      const path = await tempPath();
      return { store: openSqlite(path), raw: sqliteRaw(path), reopen: async (key) => openSqlite(path, key) };
    },
  },
  {
    kind: 'postgres',
    async fresh() {
      const url = await newDatabase();
      return { store: await openPg(url), raw: await pgRaw(url), reopen: (key) => openPg(url, key) };
    },
  },
];

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** A deterministic shuffle (so a failure can be replayed). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let x = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function chunks<T>(items: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

/** Runs jobs with `width` of them in flight at once, results in job order. */
async function inParallel<T, R>(jobs: readonly T[], width: number, fn: (job: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await fn(jobs[i]!);
      }
    }),
  );
  return out;
}

const acceptAll = (s: VerifierStore, ueid: string, seqs: readonly number[]): Promise<SeqCheck[]> => s.batch((tx) => tx.acceptSeqs(seqs.map((seq) => ({ ueid, seq }))));

// ---- the conformance suite ----------------------------------------------------------------------------------

describe.each(backends)('verifier store conformance: $kind', (b) => {
  it('registers, finds and revokes devices', async () => {
    const { store: s } = await b.fresh();
    await s.registerDevice({ ueid: 'kiosk-1', kid: 'kid-1', publicJwk: JWK, site: 'pharmacy-7' }, 1000);
    await s.registerDevice({ ueid: 'kiosk-2', kid: 'kid-2', publicJwk: JWK, site: 'lobby' }, 1500);
    expect(await s.device('kiosk-1')).toEqual({ ueid: 'kiosk-1', kid: 'kid-1', publicJwk: JWK, site: 'pharmacy-7', status: 'active', keyStore: 'unknown', registeredAt: 1000, revokedAt: null });

    const byKid = await s.devicesByKids(['kid-1', 'kid-2', 'kid-1', 'nope']);
    expect([...byKid.keys()].sort()).toEqual(['kid-1', 'kid-2']);
    expect(byKid.get('kid-2')).toMatchObject({ ueid: 'kiosk-2', site: 'lobby' });
    expect((await s.devicesByKids([])).size).toBe(0);

    expect(await s.revokeDevice('kiosk-1', 2000)).toBe(true);
    expect(await s.revokeDevice('kiosk-1', 3000)).toBe(false);
    expect(await s.revokeDevice('nope', 3000)).toBe(false);
    expect(await s.device('kiosk-1')).toMatchObject({ status: 'revoked', revokedAt: 2000 });
    expect((await s.devicesByKids(['kid-1'])).get('kid-1')).toMatchObject({ status: 'revoked' });
    expect(await s.device('nope')).toBeUndefined();
    expect((await s.devices()).map((d) => [d.ueid, d.status])).toEqual([
      ['kiosk-1', 'revoked'],
      ['kiosk-2', 'active'],
    ]);

    // Registered again (re-provisioned with a new key): active under the new kid only.
    await s.registerDevice({ ueid: 'kiosk-1', kid: 'kid-1b', publicJwk: JWK, site: 'pharmacy-8' }, 4000);
    expect(await s.device('kiosk-1')).toMatchObject({ kid: 'kid-1b', site: 'pharmacy-8', status: 'active', revokedAt: null });
    expect((await s.devicesByKids(['kid-1'])).size).toBe(0);
    // A kid belongs to one device.
    await expect(s.registerDevice({ ueid: 'kiosk-3', kid: 'kid-2', publicJwk: JWK, site: 'x' })).rejects.toThrow();
  });

  it('issues nonces used once, before they expire, consumed in batches', async () => {
    const { store: s } = await b.fresh();
    for (const n of ['n1', 'n2', 'n3']) await s.issueNonce('k', n, 5000, { now: 1000 });
    const r = await s.batch((tx) =>
      tx.consumeNonces(
        [
          { ueid: 'k', nonce: 'n1' },
          { ueid: 'k', nonce: 'n1' }, // the same nonce twice in one batch
          { ueid: 'k', nonce: 'n2' },
          { ueid: 'k', nonce: 'n4' },
          { ueid: 'other', nonce: 'n3' },
        ],
        4000,
      ),
    );
    expect(r).toEqual(['ok', 'reused', 'ok', 'unknown', 'unknown']);
    expect(await s.batch((tx) => tx.consumeNonces([{ ueid: 'k', nonce: 'n1' }], 4000))).toEqual(['reused']);
    expect(await s.batch((tx) => tx.consumeNonces([{ ueid: 'k', nonce: 'n3' }, { ueid: 'k', nonce: 'n3' }], 6000))).toEqual(['expired', 'expired']);
    expect(await s.batch((tx) => tx.consumeNonces([], 6000))).toEqual([]);
    expect(await s.nonceCount()).toBe(3);
  });

  it('prunes expired nonces after a grace period and keeps at most 16 outstanding per device', async () => {
    const { store: s } = await b.fresh();
    for (let i = 0; i < 40; i++) await s.issueNonce('k', `n${i}`, 100_000 + i, { now: 1000 });
    await s.issueNonce('j', 'j0', 100_000, { now: 1000 });
    expect(await s.nonceCount()).toBe(17);
    // The newest 16 (n24..n39) are kept.
    const used = await s.batch((tx) => tx.consumeNonces(['n39', 'n24', 'n23', 'n0'].map((nonce) => ({ ueid: 'k', nonce })), 2000));
    expect(used).toEqual(['ok', 'ok', 'unknown', 'unknown']);
    await s.issueNonce('j', 'j1', 200_000, { now: 1000, maxPerDevice: 1 });
    expect(await s.batch((tx) => tx.consumeNonces([{ ueid: 'j', nonce: 'j0' }, { ueid: 'j', nonce: 'j1' }], 2000))).toEqual(['unknown', 'ok']);

    // Within the grace period an expired nonce is still there to say "expired" (not "unknown").
    await s.issueNonce('g', 'late', 300_000 + NONCE_GRACE_MS - 1, { now: 100_000 + NONCE_GRACE_MS - 1 });
    expect(await s.batch((tx) => tx.consumeNonces([{ ueid: 'k', nonce: 'n30' }], 100_000 + NONCE_GRACE_MS - 1))).toEqual(['expired']);
    // Long after they expired, issuing one more prunes them all.
    await s.issueNonce('other', 'x', 10_000_000, { now: 5_000_000 });
    expect(await s.nonceCount()).toBe(1);
    expect(await s.batch((tx) => tx.consumeNonces([{ ueid: 'k', nonce: 'n30' }, { ueid: 'other', nonce: 'x' }], 5_000_000))).toEqual(['unknown', 'ok']);
  });

  it('keeps gallery entries encrypted at rest, each bound to its row', async () => {
    const f = await b.fresh();
    const s = f.store;
    const template = Uint8Array.from({ length: 600 }, (_, i) => i % 251);
    await s.enroll({ subject: 'alice', modality: 'face', template, templateFormat: FORMAT, modelSha256: MODEL }, 1234);
    await s.enroll({ subject: 'bob', modality: 'face', template: Uint8Array.from([7, 7]), templateFormat: FORMAT, modelSha256: MODEL }, 1000);
    await s.enroll({ subject: 'bob', modality: 'face', template: Uint8Array.from([9, 9, 9]), templateFormat: FORMAT, modelSha256: MODEL }, 1500); // replaced
    expect(await s.galleryEntry('alice', 'face')).toEqual({ subject: 'alice', modality: 'face', template, templateFormat: FORMAT, modelSha256: MODEL, enrolledAt: 1234 });
    expect(await s.galleryEntry('bob', 'face')).toMatchObject({ template: Uint8Array.from([9, 9, 9]), enrolledAt: 1500 });
    expect(await s.galleryEntry('alice', 'fingerprint')).toBeUndefined();

    // What is stored is not the template.
    const rows = await f.raw.all('SELECT subject, template FROM gallery ORDER BY subject');
    const blob = Buffer.from(rows[0]!['template'] as Uint8Array);
    expect(rows[0]!['subject']).toBe('alice');
    expect(blob.subarray(0, 4).toString('latin1')).toBe('BKG1');
    expect(blob.length).toBe(4 + 12 + template.length + 16);
    expect(blob.includes(Buffer.from(template.subarray(0, 32)))).toBe(false);

    // Someone with the database copies alice's template into bob's row: bob's entry no longer opens.
    await f.raw.run("UPDATE gallery SET template = ? WHERE subject = 'bob'", [blob]);
    const got = await s.galleryEntries([
      { subject: 'alice', modality: 'face' },
      { subject: 'bob', modality: 'face' },
      { subject: 'alice', modality: 'face' },
      { subject: 'carol', modality: 'face' },
    ]);
    expect([...got.keys()].sort()).toEqual([galleryKey('alice', 'face'), galleryKey('bob', 'face')].sort());
    expect(Array.from((got.get(galleryKey('alice', 'face')) as GalleryEntry).template)).toEqual(Array.from(template));
    const bob = got.get(galleryKey('bob', 'face'))!;
    expect('unreadable' in bob && bob.unreadable.message).toMatch(/cannot be used/);
    await expect(s.galleryEntry('bob', 'face')).rejects.toThrow(/cannot be used/);

    // The row around it edited (its model): no longer opens either.
    await f.raw.run("UPDATE gallery SET model_sha256 = ? WHERE subject = 'alice'", ['cd'.repeat(32)]);
    expect('unreadable' in (await s.galleryEntries([{ subject: 'alice', modality: 'face' }])).get(galleryKey('alice', 'face'))!).toBe(true);
    await f.raw.run("UPDATE gallery SET model_sha256 = ? WHERE subject = 'alice'", [MODEL]);
    expect(Array.from((await s.galleryEntry('alice', 'face'))!.template)).toEqual(Array.from(template));

    // Another verifier's key cannot read it.
    const other = await f.reopen(randomBytes(32));
    await expect(other.galleryEntry('alice', 'face')).rejects.toThrow(/does not decrypt/);
    expect('unreadable' in (await other.galleryEntries([{ subject: 'alice', modality: 'face' }])).get(galleryKey('alice', 'face'))!).toBe(true);
  });

  it('keeps a bounded, expiring sample of unauthenticated rejections and hourly counts', async () => {
    const { store: s } = await b.fresh();
    const now = Date.UTC(2025, 0, 1, 12, 30);
    const day = 86_400_000;
    for (let i = 0; i < 3; i++) {
      const samples = Array.from({ length: 600 }, (_, j) => ({ at: now, ueid: 'k', code: 'bad_signature', detail: `junk ${i}/${j}`, bytes: 100 + j, hash: `h${j}` }));
      await s.noteRejections(
        new Map([
          ['bad_signature', 600],
          ['malformed', 5],
        ]),
        samples,
        now,
      );
    }
    await s.batch((tx) => tx.noteRejections(new Map([['malformed', 2]]), [], now)); // from inside a batch too
    await s.noteRejections(new Map(), [], now);
    const r = await s.rejectionReport(now, { samples: 5000 });
    expect(r.sinceHour).toBe(Math.floor(now / 3_600_000) - 23);
    expect(r.counts).toEqual({ bad_signature: 1800, malformed: 17 });
    expect(r.samples.length).toBe(REJECTION_SAMPLES_KEPT);
    expect(r.samples[0]).toEqual({ at: now, ueid: 'k', code: 'bad_signature', detail: 'junk 2/599', bytes: 699, hash: 'h599' });
    expect(r.samples[REJECTION_SAMPLES_KEPT - 1]!.detail).toBe('junk 1/200');
    expect((await s.rejectionReport(now)).samples.length).toBe(20);
    // Counts outside the hours asked for are not reported.
    expect((await s.rejectionReport(now + 2 * day)).counts).toEqual({});

    // A week later the samples are gone with the next write; the counts stay for 30 days.
    const later = now + 8 * day;
    await s.noteRejections(new Map([['malformed', 1]]), [{ at: later, ueid: 'k', code: 'malformed', detail: 'x', bytes: 1, hash: 'h' }], later);
    expect((await s.rejectionReport(later, { samples: 5000 })).samples.map((x) => x.detail)).toEqual(['x']);
    expect((await s.rejectionReport(later, { hours: 24 * 9 })).counts).toEqual({ bad_signature: 1800, malformed: 18 });
    const muchLater = now + 31 * day;
    await s.noteRejections(new Map([['malformed', 1]]), [], muchLater);
    expect((await s.rejectionReport(muchLater, { hours: 24 * 40 })).counts).toEqual({ malformed: 2 });
  });

  it('accepts each seq once, in any order, per device', async () => {
    const { store: s } = await b.fresh();
    expect(await acceptAll(s, 'k', [5, 3, 3, 5, 1, 2, 4])).toEqual(['ok', 'ok', 'replayed', 'replayed', 'ok', 'ok', 'ok']);
    expect(await s.seqWindow('k')).toEqual({ floor: 5, pending: [] });
    expect(await acceptAll(s, 'k', [5, 9, 7, 0])).toEqual(['too_old', 'ok', 'ok', 'too_old']);
    expect(await s.seqWindow('k')).toEqual({ floor: 5, pending: [7, 9] });
    expect(await acceptAll(s, 'k', [9, 6, 6])).toEqual(['replayed', 'ok', 'too_old']);
    expect(await s.seqWindow('k')).toEqual({ floor: 7, pending: [9] });
    // Devices interleaved in one batch keep their own windows.
    const mixed = await s.batch((tx) =>
      tx.acceptSeqs([
        { ueid: 'a', seq: 1 },
        { ueid: 'b', seq: 1 },
        { ueid: 'a', seq: 1 },
        { ueid: 'k', seq: 8 },
        { ueid: 'b', seq: 3 },
      ]),
    );
    expect(mixed).toEqual(['ok', 'ok', 'too_old', 'ok', 'ok']); // a's floor passed 1 at once
    expect(await s.seqWindow('k')).toEqual({ floor: 9, pending: [] });
    expect(await s.seqWindow('b')).toEqual({ floor: 1, pending: [3] });
    expect(await s.seqWindow('never')).toEqual({ floor: 0, pending: [] });
    expect(await s.batch((tx) => tx.acceptSeqs([]))).toEqual([]);
  });

  it('accepts a redelivered seq however far later seqs went (seq 6504 after 6505..10000)', async () => {
    const { store: s } = await b.fresh();
    // A verifier died holding 6504; the kiosk went on to 10000, then its outbox redelivered 6504.
    for (const c of chunks(range(1, 6503), 1000)) expect(new Set(await acceptAll(s, 'd', c))).toEqual(new Set(['ok']));
    for (const c of chunks(range(6505, 10000), 500)) expect(new Set(await acceptAll(s, 'd', c))).toEqual(new Set(['ok']));
    const w = await s.seqWindow('d');
    expect(w.floor).toBe(6503);
    expect(w.pending.length).toBe(10000 - 6504);
    expect(await acceptAll(s, 'd', [6504])).toEqual(['ok']);
    expect(await s.seqWindow('d')).toEqual({ floor: 10000, pending: [] });
    expect(await acceptAll(s, 'd', [6504, 10000, 1, 10001])).toEqual(['too_old', 'too_old', 'too_old', 'ok']);
  });

  it(`gives up the oldest hole past MAX_PENDING_SEQS (${MAX_PENDING_SEQS}) seqs above the floor`, async () => {
    const { store: s } = await b.fresh();
    // Holes at 1 and 3 (seqs the kiosk took and never sent); 2 and 4.. arrive.
    const first = [2, ...range(4, MAX_PENDING_SEQS + 2)];
    expect(first.length).toBe(MAX_PENDING_SEQS);
    expect(new Set(await acceptAll(s, 'k', first))).toEqual(new Set(['ok']));
    let w = await s.seqWindow('k');
    expect(w.floor).toBe(0);
    expect(w.pending.length).toBe(MAX_PENDING_SEQS);
    // One more: hole 1 is given up (and 2 above it folds in); hole 3 is still open.
    expect(await acceptAll(s, 'k', [MAX_PENDING_SEQS + 3])).toEqual(['ok']);
    w = await s.seqWindow('k');
    expect(w.floor).toBe(2);
    expect(w.pending.length).toBe(MAX_PENDING_SEQS);
    expect(w.pending[0]).toBe(4);
    expect(await acceptAll(s, 'k', [1, 3, 3])).toEqual(['too_old', 'ok', 'too_old']);
    expect(await s.seqWindow('k')).toEqual({ floor: MAX_PENDING_SEQS + 3, pending: [] });
  });

  it('rolls a batch back whole when it throws: seqs, nonces, rejections and log entries', async () => {
    const { store: s } = await b.fresh();
    const signer = logSigner();
    const now = Date.now();
    await s.issueNonce('k', 'n1', now + 60_000, { now });
    await expect(
      s.batch(async (tx) => {
        expect(await tx.acceptSeqs([{ ueid: 'k', seq: 1 }, { ueid: 'k', seq: 2 }])).toEqual(['ok', 'ok']);
        expect(await tx.consumeNonces([{ ueid: 'k', nonce: 'n1' }], now)).toEqual(['ok']);
        await tx.noteRejections(new Map([['malformed', 3]]), [{ at: now, ueid: 'k', code: 'malformed', detail: 'x', bytes: 1, hash: 'h' }], now);
        const out = await appendBatch(tx.audit, signer, [{ key: 'a', record: { n: 1 } }, { key: 'b', record: { n: 2 } }], now);
        expect(out.leaves.map((l) => l.index)).toEqual([0, 1]);
        expect(await tx.audit.size()).toBe(2); // visible inside the transaction
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await s.seqWindow('k')).toEqual({ floor: 0, pending: [] });
    expect(await s.audit.size()).toBe(0);
    expect(await s.audit.latestCheckpoint()).toBeUndefined();
    expect(await s.audit.meta('origin')).toBeUndefined();
    expect(await s.rejectionReport(now)).toMatchObject({ counts: {}, samples: [] });

    // The same work then commits, from where the rolled-back batch started.
    const r = await s.batch(async (tx) => ({
      seqs: await tx.acceptSeqs([{ ueid: 'k', seq: 2 }, { ueid: 'k', seq: 1 }]),
      nonces: await tx.consumeNonces([{ ueid: 'k', nonce: 'n1' }], now),
      out: await appendBatch(tx.audit, signer, [{ key: 'c', record: { n: 3 } }], now),
    }));
    expect(r.seqs).toEqual(['ok', 'ok']);
    expect(r.nonces).toEqual(['ok']);
    expect(r.out.leaves[0]).toMatchObject({ key: 'c', index: 0, duplicate: false });
    expect(await s.audit.size()).toBe(1);
    expect(await s.audit.leafByKey('a')).toBeUndefined();
    expect(r.out.checkpoint.treeSize).toBe(1);
    expect((await auditLog(s.audit, { logKeys: signer.verifiers })).ok).toBe(true);
  });

  it('keeps everything across a reopen', async () => {
    const f = await b.fresh();
    await f.store.registerDevice({ ueid: 'kiosk-1', kid: 'kid-1', publicJwk: JWK, site: 's' }, 1);
    await f.store.issueNonce('kiosk-1', 'n', Date.now() + 60_000);
    await acceptAll(f.store, 'kiosk-1', [1, 2, 5]);
    await f.store.enroll({ subject: 'alice', modality: 'face', template: Uint8Array.from([1, 2, 3]), templateFormat: FORMAT, modelSha256: MODEL });
    await f.store.close();
    const s = await f.reopen();
    expect(await s.device('kiosk-1')).toMatchObject({ kid: 'kid-1', status: 'active' });
    expect(await s.seqWindow('kiosk-1')).toEqual({ floor: 2, pending: [5] });
    expect(await acceptAll(s, 'kiosk-1', [5, 3])).toEqual(['replayed', 'ok']);
    expect(await s.batch((tx) => tx.consumeNonces([{ ueid: 'kiosk-1', nonce: 'n' }], Date.now()))).toEqual(['ok']);
    expect(Array.from((await s.galleryEntry('alice', 'face'))!.template)).toEqual([1, 2, 3]);
  });

  it('keeps the behaviour signals: attempts from every kiosk (read by another node), pruned; step-ups replaced, used up, expired', async () => {
    const f = await b.fresh();
    const s = f.store;
    // Where a device's key lives, as shown at registration (a TPM's Certify evidence), for scenarios that require it.
    await s.registerDevice({ ueid: 'kiosk-a', kid: 'kid-a', publicJwk: JWK, site: 'pharmacy-1', keyStore: 'tpm' }, 1000);
    expect(await s.device('kiosk-a')).toMatchObject({ keyStore: 'tpm' });
    const now = 1_800_000_000_000;
    const at = (min: number) => now + min * 60_000;
    await s.batch((tx) =>
      tx.recordAttempts(
        [
          { subject: 'carol', ueid: 'kiosk-a', site: 'pharmacy-1', at: at(-30), failed: true, outcome: 'no_match' },
          { subject: 'carol', ueid: 'kiosk-b', site: 'pharmacy-2', at: at(-2), failed: true, outcome: 'no_match' },
          { subject: 'erin', ueid: 'kiosk-b', site: 'pharmacy-2', at: at(-1), failed: false, outcome: 'match' },
          { subject: 'frank', ueid: 'kiosk-c', site: null, at: at(-1), failed: false, outcome: 'match' },
        ],
        at(-60),
      ),
    );
    // Another node (or process) on the same storage sees them, in time order, by subject or by device.
    const other = await f.reopen();
    const seen = await other.batch((tx) => tx.attempts({ subjects: ['carol'], ueids: ['kiosk-b'], since: at(-10) }));
    expect(seen.map((a) => [a.subject, a.ueid, a.site, a.failed, a.outcome])).toEqual([
      ['carol', 'kiosk-b', 'pharmacy-2', true, 'no_match'],
      ['erin', 'kiosk-b', 'pharmacy-2', false, 'match'],
    ]);
    expect(await other.batch((tx) => tx.attempts({ subjects: [], ueids: [], since: 0 }))).toEqual([]);
    expect((await other.attemptsOf('frank', 0))[0]).toMatchObject({ site: null, at: at(-1) });
    // Recording prunes what is older than the horizon given.
    await other.batch((tx) => tx.recordAttempts([{ subject: 'carol', ueid: 'kiosk-a', site: 'pharmacy-1', at: now, failed: true, outcome: 'locked' }], at(-10)));
    expect((await s.attemptsOf('carol', 0)).map((a) => a.at)).toEqual([at(-2), now]);

    const step = { attId: 'att-1', subject: 'carol', ueid: 'kiosk-a', scenario: 'controlled_substance', done: ['face'], need: 2, expiresAt: at(5) };
    await s.batch((tx) => tx.putStepUps([step, { ...step, attId: 'att-2', expiresAt: at(1) }], [], now));
    expect(Object.fromEntries(await other.batch((tx) => tx.stepUps(['att-1', 'att-2', 'att-x'])))).toEqual({ 'att-1': step, 'att-2': { ...step, attId: 'att-2', expiresAt: at(1) } });
    // Replaced under the same att_id; another used up; and at a later time the expired one goes.
    await s.batch((tx) => tx.putStepUps([{ ...step, done: ['face', 'iris'], need: 3 }], ['att-2'], now));
    expect((await s.batch((tx) => tx.stepUps(['att-1'])).then((m) => m.get('att-1')))?.done).toEqual(['face', 'iris']);
    expect((await s.batch((tx) => tx.stepUps(['att-2']))).size).toBe(0);
    await s.batch((tx) => tx.putStepUps([], [], at(6)));
    expect((await s.batch((tx) => tx.stepUps(['att-1']))).size).toBe(0);
  });

  it('keeps quarantines: in force until released, due ones found by time, seen by another node, strikes kept after release', async () => {
    const f = await b.fresh();
    const s = f.store;
    const row = { ueid: 'rogue', strikes: 1, since: 1000, until: 61_000, reason: 'flood', releasedAt: null };
    await s.putQuarantine(row);
    await s.putQuarantine({ ...row, ueid: 'other', since: 2000, until: 120_000 });
    const other = await f.reopen();
    expect(await other.quarantineRecord('rogue')).toEqual(row);
    expect((await other.quarantines()).map((q) => q.ueid)).toEqual(['rogue', 'other']);
    expect((await other.quarantines({ dueBy: 61_000 })).map((q) => q.ueid)).toEqual(['rogue']);
    expect(await other.quarantines({ dueBy: 60_999 })).toEqual([]);
    await other.putQuarantine({ ...row, releasedAt: 61_500 });
    expect((await s.quarantines()).map((q) => q.ueid)).toEqual(['other']);
    expect(await s.quarantineRecord('rogue')).toEqual({ ...row, releasedAt: 61_500 });
    expect(await s.quarantineRecord('nobody')).toBeUndefined();
  });

  it('reports its schema version', async () => {
    const { store: s } = await b.fresh();
    // One version per migration, applied in order (verifier/migrations.ts).
    expect(LATEST_SCHEMA).toBe(MIGRATIONS.length);
    expect(await s.schema()).toEqual({ current: LATEST_SCHEMA, latest: LATEST_SCHEMA });
    expect(s.kind).toBe(b.kind);
  });
});

// ---- SQLite only --------------------------------------------------------------------------------------------

/** The store's tables before schema versions (git HEAD~3 verifier/sqlite-store.ts and verifier/audit/store.ts). */
const LEGACY_DDL = `
  CREATE TABLE devices (
    ueid TEXT PRIMARY KEY, kid TEXT NOT NULL UNIQUE, jwk TEXT NOT NULL, site TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'revoked')), registered_at INTEGER NOT NULL, revoked_at INTEGER);
  CREATE TABLE counters (ueid TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
  CREATE TABLE seen_seqs (ueid TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (ueid, seq)) WITHOUT ROWID;
  CREATE TABLE nonces (ueid TEXT NOT NULL, nonce TEXT NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER, PRIMARY KEY (ueid, nonce));
  CREATE TABLE gallery (subject TEXT NOT NULL, modality TEXT NOT NULL, template BLOB NOT NULL,
    template_format TEXT NOT NULL, model_sha256 TEXT NOT NULL, enrolled_at INTEGER NOT NULL, PRIMARY KEY (subject, modality));
  CREATE TABLE verdicts (att_hash TEXT PRIMARY KEY, att_id TEXT NOT NULL, verdict TEXT NOT NULL, created_at INTEGER NOT NULL);
  CREATE INDEX nonces_expiry ON nonces (expires_at);
  CREATE TABLE rejection_samples (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, ueid TEXT NOT NULL, code TEXT NOT NULL,
    detail TEXT NOT NULL, bytes INTEGER NOT NULL, hash TEXT NOT NULL);
  CREATE INDEX rejection_samples_at ON rejection_samples (at);
  CREATE TABLE rejection_counts (hour INTEGER NOT NULL, code TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (hour, code)) WITHOUT ROWID;
  CREATE TABLE audit_leaves (idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL, record BLOB NOT NULL, record_key TEXT NOT NULL UNIQUE);
  CREATE TABLE audit_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
  CREATE TABLE audit_tree_heads (tree_size INTEGER PRIMARY KEY, root_hash BLOB NOT NULL, timestamp INTEGER NOT NULL, signature BLOB NOT NULL);
  CREATE TRIGGER audit_leaves_no_update BEFORE UPDATE ON audit_leaves BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER audit_leaves_no_delete BEFORE DELETE ON audit_leaves BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER audit_nodes_no_update BEFORE UPDATE ON audit_nodes BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER audit_nodes_no_delete BEFORE DELETE ON audit_nodes BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER audit_tree_heads_no_update BEFORE UPDATE ON audit_tree_heads BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER audit_tree_heads_no_delete BEFORE DELETE ON audit_tree_heads BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`;

async function legacyFile(opts: { auditRows: boolean }): Promise<string> {
  const path = await tempPath();
  const db = new Database(path);
  db.exec(LEGACY_DDL);
  db.prepare("INSERT INTO devices VALUES ('kiosk-1', 'kid-1', ?, 'lobby', 'active', 1000, NULL)").run(JSON.stringify(JWK));
  db.prepare("INSERT INTO devices VALUES ('kiosk-2', 'kid-2', ?, 'lobby', 'revoked', 1000, 2000)").run(JSON.stringify(JWK));
  db.prepare("INSERT INTO counters VALUES ('kiosk-1', 1000), ('kiosk-2', 100)").run();
  db.prepare("INSERT INTO seen_seqs VALUES ('kiosk-1', 700), ('kiosk-1', 990), ('kiosk-1', 995), ('kiosk-1', 1000), ('kiosk-2', 50), ('kiosk-2', 100)").run();
  db.prepare("INSERT INTO nonces VALUES ('kiosk-1', 'n1', ?, NULL)").run(Date.now() + 3_600_000);
  db.prepare("INSERT INTO gallery VALUES ('carol', 'face', ?, ?, ?, 5)").run(Buffer.from([1, 2, 3, 4]), FORMAT, MODEL);
  db.prepare("INSERT INTO verdicts VALUES ('h', 'a', 'jws', 1)").run();
  db.prepare("INSERT INTO rejection_counts VALUES (?, 'malformed', 4)").run(Math.floor(Date.now() / 3_600_000));
  db.prepare('INSERT INTO audit_tree_heads VALUES (0, ?, 1, ?)').run(Buffer.alloc(32), Buffer.alloc(64));
  if (opts.auditRows) {
    const record = Buffer.from('{"a":1}');
    db.prepare("INSERT INTO audit_leaves VALUES (0, ?, ?, 'att:x')").run(createHash('sha256').update(Buffer.concat([Buffer.from([0]), record])).digest(), record);
    db.prepare('INSERT INTO audit_tree_heads VALUES (1, ?, 2, ?)').run(Buffer.alloc(32), Buffer.alloc(64));
  }
  db.close();
  return path;
}

const tables = (path: string) => {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]).sort();
  } finally {
    db.close();
  }
};

describe('SQLite store only', () => {
  it('encrypts the plaintext templates of an older database when it is opened', async () => {
    const path = await tempPath();
    await openSqlite(path).close();
    const raw = new Database(path);
    raw.prepare("INSERT INTO gallery VALUES ('carol', 'face', ?, ?, ?, 1)").run(Buffer.from([1, 2, 3, 4]), FORMAT, MODEL);
    raw.close();
    const s = openSqlite(path);
    expect(Array.from((await s.galleryEntry('carol', 'face'))!.template)).toEqual([1, 2, 3, 4]);
    await s.close();
    const check = new Database(path, { readonly: true });
    const blob = (check.prepare("SELECT template FROM gallery WHERE subject = 'carol'").get() as { template: Buffer }).template;
    check.close();
    expect(blob.subarray(0, 4).toString()).toBe('BKG1');
    expect(blob.includes(Buffer.from([1, 2, 3, 4]))).toBe(false);
    expect(Array.from((await openSqlite(path).galleryEntry('carol', 'face'))!.template)).toEqual([1, 2, 3, 4]);
  });

  it('adopts a file from before schema versions: the highest-seq counters become replay windows', async () => {
    const path = await legacyFile({ auditRows: false });
    const s = openSqlite(path);
    expect(await s.schema()).toEqual({ current: LATEST_SCHEMA, latest: LATEST_SCHEMA });
    const t = tables(path);
    for (const gone of ['counters', 'seen_seqs', 'verdicts', 'audit_tree_heads']) expect(t).not.toContain(gone);
    for (const kept of ['devices', 'nonces', 'gallery', 'seq_windows', 'audit_leaves', 'audit_checkpoints', 'schema_migrations']) expect(t).toContain(kept);

    expect(await s.device('kiosk-1')).toMatchObject({ kid: 'kid-1', status: 'active', registeredAt: 1000 });
    expect(await s.device('kiosk-2')).toMatchObject({ status: 'revoked', revokedAt: 2000 });
    // Floor 256 below the highest seq (what the old window refused), the seqs seen above it kept.
    expect(await s.seqWindow('kiosk-1')).toEqual({ floor: 744, pending: [990, 995, 1000] });
    expect(await s.seqWindow('kiosk-2')).toEqual({ floor: 0, pending: [50, 100] });
    expect(await acceptAll(s, 'kiosk-1', [1000, 995, 744, 700, 999, 1001])).toEqual(['replayed', 'replayed', 'too_old', 'too_old', 'ok', 'ok']);
    expect(await acceptAll(s, 'kiosk-2', [100, 49])).toEqual(['replayed', 'ok']);
    expect(await s.batch((tx) => tx.consumeNonces([{ ueid: 'kiosk-1', nonce: 'n1' }], Date.now()))).toEqual(['ok']);
    expect(Array.from((await s.galleryEntry('carol', 'face'))!.template)).toEqual([1, 2, 3, 4]);
    expect((await s.rejectionReport()).counts).toEqual({ malformed: 4 });

    // A fresh audit log in the new format, append-only.
    const signer = logSigner();
    await s.batch((tx) => appendBatch(tx.audit, signer, [{ key: 'k1', record: { a: 1 } }], Date.now()));
    expect((await auditLog(s.audit, { logKeys: signer.verifiers })).ok).toBe(true);
    expect(() => s.db.prepare('UPDATE audit_leaves SET record = ?').run(Buffer.from('{}'))).toThrow(/append-only/);
    await s.close();
    // And it opens again at the latest version.
    expect(await openSqlite(path).seqWindow('kiosk-1')).toEqual({ floor: 744, pending: [990, 995, 999, 1000, 1001] });
  });

  it('refuses a file from before schema versions whose audit log has entries, changing nothing', async () => {
    const path = await legacyFile({ auditRows: true });
    const before = tables(path);
    expect(() => openSqlite(path)).toThrow(/holds an audit log of 1 entries in the format before checkpoints.*start a new state folder/);
    expect(tables(path)).toEqual(before);
    expect(before).toContain('counters');
    expect(before).not.toContain('schema_migrations');
  });

  it('refuses a file written by a newer build, and an unmigrated one when told not to migrate', async () => {
    const path = await tempPath();
    await openSqlite(path).close();
    const raw = new Database(path);
    raw.prepare("INSERT INTO schema_migrations VALUES (?, 'from the future', 0)").run(LATEST_SCHEMA + 1);
    raw.close();
    expect(() => openSqlite(path)).toThrow(`schema version ${LATEST_SCHEMA + 1}, newer than this build (${LATEST_SCHEMA}): upgrade biokiosk`);
    expect(() => openSqlite(path, GALLERY_KEY, { migrate: false })).toThrow(/newer than this build/);

    const empty = await tempPath();
    new Database(empty).close();
    expect(() => openSqlite(empty, GALLERY_KEY, { migrate: false })).toThrow(`schema version 0; this build needs ${LATEST_SCHEMA}: run \`biokiosk verifier migrate\``);
    expect(await openSqlite(empty).schema()).toEqual({ current: LATEST_SCHEMA, latest: LATEST_SCHEMA });
  });
});

// ---- PostgreSQL only ----------------------------------------------------------------------------------------

describe('PostgreSQL store only', () => {
  it('refuses an unmigrated database, naming `biokiosk verifier migrate`, without its password', async () => {
    const url = await newDatabase(false);
    const err = await PgVerifierStore.open(url, { galleryKey: GALLERY_KEY }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain(`is at schema version 0; this build needs ${LATEST_SCHEMA}: run \`biokiosk verifier migrate`);
    expect(err?.message).not.toContain(pgServer.password);
    const s = await openPg(await newDatabase());
    expect(s.description).not.toContain(pgServer.password);
    expect(s.description).toContain(`:${pgServer.port}/`);
  });

  it('migrates once: a second migratePostgres is a no-op, and two at once both succeed and apply once', async () => {
    const url = await newDatabase(false);
    expect(await migratePostgres(url)).toEqual({ from: 0, applied: ALL_VERSIONS });
    expect(await migratePostgres(url)).toEqual({ from: LATEST_SCHEMA, applied: [] });

    const url2 = await newDatabase(false);
    const both = await Promise.all([migratePostgres(url2), migratePostgres(url2)]);
    expect(both.sort((x, y) => x.from - y.from)).toEqual([
      { from: 0, applied: ALL_VERSIONS },
      { from: LATEST_SCHEMA, applied: [] },
    ]);
    const raw = await pgRaw(url2);
    expect(await raw.all('SELECT version FROM schema_migrations')).toEqual(ALL_VERSIONS.map((version) => ({ version })));
    expect(await (await openPg(url2)).schema()).toEqual({ current: LATEST_SCHEMA, latest: LATEST_SCHEMA });
  });

  it('refuses a database migrated by a newer build', async () => {
    const url = await newDatabase();
    const raw = await pgRaw(url);
    await raw.run("INSERT INTO schema_migrations VALUES (?, 'from the future', 0)", [LATEST_SCHEMA + 1]);
    await expect(PgVerifierStore.open(url, { galleryKey: GALLERY_KEY })).rejects.toThrow(`schema version ${LATEST_SCHEMA + 1}, newer than this build (${LATEST_SCHEMA}): upgrade biokiosk`);
    await expect(migratePostgres(url)).rejects.toThrow(/newer than this build/);
  });

  it('stores the gallery as ciphertext (bytea), never the template', async () => {
    const url = await newDatabase();
    const s = await openPg(url);
    const template = randomBytes(300);
    await s.enroll({ subject: 'alice', modality: 'iris', template, templateFormat: 'biokiosk-iris/1', modelSha256: MODEL });
    const raw = await pgRaw(url);
    const [row] = await raw.all("SELECT template, pg_typeof(template)::text AS t FROM gallery WHERE subject = 'alice'");
    expect(row!['t']).toBe('bytea');
    const stored = row!['template'] as Buffer;
    expect(Buffer.isBuffer(stored)).toBe(true);
    expect(stored.equals(template)).toBe(false);
    expect(stored.includes(template.subarray(0, 16))).toBe(false);
    expect(Buffer.from((await s.galleryEntry('alice', 'iris'))!.template).equals(template)).toBe(true);
  });

  describe('two nodes on one database', () => {
    it('race batches on one device: each of 2,000 seqs accepted exactly once overall', async () => {
      const url = await newDatabase();
      const nodes = [await openPg(url), await openPg(url)];
      const N = 2000;
      const orders = [range(1, N), shuffled(range(1, N), 7)];
      const outcomes: Array<{ seq: number; r: SeqCheck }> = [];
      await Promise.all(
        nodes.map((node, n) =>
          inParallel(chunks(orders[n]!, 20), 4, async (c) => {
            const r = await acceptAll(node, 'kiosk', c);
            c.forEach((seq, i) => outcomes.push({ seq, r: r[i]! }));
          }),
        ),
      );
      expect(outcomes.length).toBe(2 * N);
      const accepted = outcomes.filter((o) => o.r === 'ok').map((o) => o.seq);
      expect(accepted.length).toBe(N);
      expect(new Set(accepted).size).toBe(N);
      // Every refusal is of a seq the other node accepted: none refused that was never accepted.
      for (const o of outcomes) expect(['ok', 'replayed', 'too_old']).toContain(o.r);
      const refused = outcomes.filter((o) => o.r !== 'ok');
      expect(refused.length).toBe(N);
      expect(new Set(refused.map((o) => o.seq)).size).toBe(N);
      expect(await nodes[1]!.seqWindow('kiosk')).toEqual({ floor: N, pending: [] });
    });

    it('race nonce consumption: each nonce used exactly once overall', async () => {
      const url = await newDatabase();
      const nodes = [await openPg(url), await openPg(url)];
      const N = 600;
      const nonces = range(1, N).map((i) => `nonce-${i}`);
      const now = Date.now();
      await inParallel(nonces, 6, (nonce) => nodes[0]!.issueNonce('kiosk', nonce, now + 600_000, { now, maxPerDevice: N }));
      expect(await nodes[1]!.nonceCount()).toBe(N);
      const orders = [nonces, shuffled(nonces, 11)];
      const outcomes: Array<{ nonce: string; r: NonceCheck }> = [];
      await Promise.all(
        nodes.map((node, n) =>
          inParallel(chunks(orders[n]!, 15), 4, async (c) => {
            const r = await node.batch((tx) => tx.consumeNonces(c.map((nonce) => ({ ueid: 'kiosk', nonce })), now));
            c.forEach((nonce, i) => outcomes.push({ nonce, r: r[i]! }));
          }),
        ),
      );
      const ok = outcomes.filter((o) => o.r === 'ok').map((o) => o.nonce);
      expect(ok.length).toBe(N);
      expect(new Set(ok).size).toBe(N);
      expect(outcomes.filter((o) => o.r !== 'ok').every((o) => o.r === 'reused')).toBe(true);
      expect(outcomes.length).toBe(2 * N);
    });

    it('race audit appends: one contiguous log, one entry per key, that audits ok', async () => {
      const url = await newDatabase();
      const nodes = [await openPg(url), await openPg(url)];
      const signer = logSigner();
      const keys = range(0, 399).map((i) => `att:${i}`);
      // Each key offered to both nodes, in batches of different shapes and orders.
      const plans = [chunks(keys, 10), chunks(shuffled(keys, 3), 13)];
      const results: Array<{ node: number; out: AppendOutcome }> = [];
      await Promise.all(
        nodes.map((node, n) =>
          inParallel(plans[n]!, 4, async (batchKeys) => {
            const out = await node.batch((tx) => appendBatch(tx.audit, signer, batchKeys.map((key) => ({ key, record: { key, node: n } })), Date.now()));
            results.push({ node: n, out });
            // The batch's own proofs (from what it computed under the lock) verify against its checkpoint.
            const fresh = out.leaves.filter((l) => !l.duplicate);
            const proofs = await new AuditProofs(node.audit).prove(
              fresh.map((l) => ({ kind: 'inclusion' as const, index: l.index, size: out.checkpoint.treeSize })),
              out.known,
            );
            fresh.forEach((l, i) => expect(verifyInclusion(l.index, out.checkpoint.treeSize, entryLeafHash(l.salt, l.record), proofs[i]!, out.checkpoint.rootHash)).toBe(true));
          }),
        ),
      );
      const size = await nodes[0]!.audit.size();
      expect(size).toBe(keys.length);
      const leaves = await nodes[1]!.audit.range(0, size);
      expect(leaves.map((l) => l.index)).toEqual(range(0, size - 1));
      expect(new Set(leaves.map((l) => l.key))).toEqual(new Set(keys));
      // Exactly one original per key across both nodes; every duplicate names the original.
      const byKey = new Map(leaves.map((l) => [l.key, l]));
      const originals = new Map<string, number>();
      for (const { out } of results) {
        for (const l of out.leaves) {
          const stored = byKey.get(l.key)!;
          expect(l.index).toBe(stored.index);
          expect(l.salt.equals(stored.salt)).toBe(true);
          expect(l.record.equals(stored.record)).toBe(true);
          if (!l.duplicate) originals.set(l.key, (originals.get(l.key) ?? 0) + 1);
        }
      }
      expect(originals.size).toBe(keys.length);
      expect([...originals.values()].every((n) => n === 1)).toBe(true);
      // Checkpoints: one per batch that appended, in one order.
      const cps = await nodes[0]!.audit.checkpoints(-1, 1000);
      expect(cps.at(-1)!.treeSize).toBe(size);
      const report = await auditLog(nodes[0]!.audit, { logKeys: signer.verifiers });
      expect(report).toMatchObject({ ok: true, size, checkedLeaves: size, problemCount: 0 });
      expect(report.checkedCheckpoints).toBe(cps.length);
    });
  });

  // Last: it restarts the server under everyone's feet.
  it('keeps retrying a batch through a PostgreSQL restart, and doubles nothing', async () => {
    const url = await newDatabase();
    let retries = 0;
    const s = await openPg(url, GALLERY_KEY, { retryForMs: 30_000, onRetry: () => retries++ });
    const signer = logSigner();
    const outcomes: Array<{ seq: SeqCheck; duplicate: boolean; index: number }> = [];
    let next = 0;
    let stopAt = Infinity;
    let inFlightAtRestart = 0;
    let inFlight = 0;
    const worker = async () => {
      while (next < stopAt) {
        const i = next++;
        inFlight++;
        try {
          outcomes[i] = await s.batch(async (tx) => {
            const [seq] = await tx.acceptSeqs([{ ueid: 'kiosk', seq: i + 1 }]);
            const out = await appendBatch(tx.audit, signer, [{ key: `att:${i}`, record: { i } }], Date.now());
            return { seq: seq!, duplicate: out.leaves[0]!.duplicate, index: out.leaves[0]!.index };
          });
        } finally {
          inFlight--;
        }
      }
    };
    // An auditor reads snapshots meanwhile; those the restart cuts off fail (and nothing goes uncaught).
    let audits = 0;
    let auditsCut = 0;
    const auditor = async () => {
      while (next < stopAt) {
        await auditLog(s.audit, { logKeys: signer.verifiers }).then(
          (r) => {
            expect(r.ok).toBe(true);
            audits++;
          },
          () => auditsCut++,
        );
      }
    };
    const running = Promise.all([worker(), worker(), worker(), worker(), auditor()]);
    while (next < 40) await new Promise((r) => setTimeout(r, 5));
    inFlightAtRestart = inFlight;
    await pgServer.restart();
    stopAt = next + 40; // go on a little after the server is back
    await running;
    const n = stopAt;
    expect(inFlightAtRestart).toBeGreaterThan(0);
    expect(audits).toBeGreaterThan(0);
    void auditsCut;
    expect(retries).toBeGreaterThan(0);
    expect(outcomes.length).toBe(n);
    // Each batch either committed once (ok, a new entry) or, its COMMIT's answer lost, found its own commit on retry.
    for (const o of outcomes) expect([JSON.stringify(['ok', false]), JSON.stringify(['replayed', true])]).toContain(JSON.stringify([o.seq, o.duplicate]));
    expect(await s.seqWindow('kiosk')).toEqual({ floor: n, pending: [] });
    expect(await s.audit.size()).toBe(n);
    const leaves = await s.audit.range(0, n);
    expect(new Set(leaves.map((l) => l.key)).size).toBe(n);
    expect(new Set(outcomes.map((o) => o.index)).size).toBe(n);
    expect((await auditLog(s.audit, { logKeys: signer.verifiers })).ok).toBe(true);
  });
});
