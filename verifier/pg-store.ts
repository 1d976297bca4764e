/**
 * The fleet's store: PostgreSQL (node-postgres, a pool), shared by verifier nodes on several hosts.
 *
 * Concurrency: every decision batch is one READ COMMITTED transaction that first takes the fleet's decision lock
 * (`pg_advisory_xact_lock`), so batches from all nodes run one after another: the replay windows, nonce
 * consumption, idempotency (the log's unique key per attestation) and the audit log's single total order hold
 * whichever node decides, and each statement after the lock sees everything earlier batches committed. The lock is
 * the log's sequencer and fails over by itself: PostgreSQL releases it when the holder's transaction ends, or its
 * connection does (a node killed, its host gone: the connection's TCP keepalive and the server's
 * `idle_in_transaction_session_timeout` bound how long that takes). The work done under the lock is kept small
 * (verifier.ts matches before it). Outside batches: registrations, enrolments and nonce issuing are single
 * upserts or short transactions.
 *
 * Failures: serialization failures (40001), deadlocks (40P01), lock timeouts and lost connections (a restarted
 * PostgreSQL) make the batch run again, with backoff, for up to `retryForMs`; a batch is safe to run again (the
 * log finds what an ambiguous commit already wrote).
 */
import pg from 'pg';
import type { JWK } from 'jose';
import { BiokioskError } from '../protocol/errors.ts';
import { PgAuditStore } from './audit/pg-store.ts';
import { GalleryCipher } from './gallery-cipher.ts';
import { LATEST_SCHEMA, pending, SCHEMA_MIGRATIONS_PG } from './migrations.ts';
import { acceptSeq, type WindowState } from './replay-window.ts';
import {
  galleryKey,
  NONCE_GRACE_MS,
  REJECTION_COUNT_DAYS,
  REJECTION_SAMPLE_DAYS,
  REJECTION_SAMPLES_KEPT,
  type AttemptRow,
  type BatchTx,
  type CompleteEnrollment,
  type DeviceIdentity,
  type DeviceRecord,
  type EnrollmentToken,
  type DeviceRegistration,
  type QuarantineRow,
  type StepUpRow,
  type GalleryEntry,
  type PendingEnrollment,
  type NonceCheck,
  type RejectionReport,
  type RejectionSample,
  type SchemaStatus,
  type SeqCheck,
  type UnreadableEntry,
  type VerifierStore,
} from './store.ts';
import { decodeSeen, encodeSeen, SchemaError, toAttempt, toDevice, toIdentity, toPending, toQuarantine, toStepUp, toToken } from './store-common.ts';

export interface PgVerifierStoreOptions {
  galleryKey: Uint8Array;
  /** Pool size (default 8). */
  maxConnections?: number;
  /** How long a batch keeps retrying transient failures (default 30 s). */
  retryForMs?: number;
  /** Told about transient failures that were retried. */
  onRetry?: (e: unknown, attempt: number) => void;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** The advisory lock keys: decisions, and migrations (two ints, 'biok' and a purpose). */
const LOCK_CLASS = 0x62696f6b;
const DECISION_LOCK = 1;
const MIGRATION_LOCK = 2;

/** SQLSTATEs worth running a batch again for. */
const RETRYABLE = new Set(['40001', '40P01', '55P03', '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006', '08007']);

export function isTransient(e: unknown): boolean {
  const err = e as { code?: string; message?: string; cause?: unknown };
  if (err?.code && RETRYABLE.has(err.code)) return true;
  if (err?.code && ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH'].includes(err.code)) return true;
  if (typeof err?.message === 'string' && /Connection terminated|connection timeout|Client has encountered a connection error|terminating connection/i.test(err.message)) return true;
  return err?.cause !== undefined && err.cause !== e && isTransient(err.cause);
}

/** A pool whose BIGINTs come back as numbers (ours are counts, indexes and milliseconds: all below 2^53). */
export function createPool(url: string, max = 8): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    keepAlive: true,
    connectionTimeoutMillis: 10_000,
    application_name: 'biokiosk-verifier',
    // A node that stops talking mid-transaction (its host gone) must not hold the decision lock for long.
    options: '-c idle_in_transaction_session_timeout=15000 -c statement_timeout=60000 -c lock_timeout=30000',
    types: {
      getTypeParser: ((oid: number, format?: string) => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client whose server went away (a restart) emits here; the next query gets a fresh connection.
  pool.on('error', () => {});
  return pool;
}

/** A URL for messages: the password left out. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable url)';
  }
}

export class PgVerifierStore implements VerifierStore {
  readonly kind = 'postgres' as const;
  readonly description: string;
  readonly audit: PgAuditStore;
  private readonly cipher: GalleryCipher;
  private readonly retryForMs: number;

  private constructor(
    readonly pool: pg.Pool,
    url: string,
    private readonly options: PgVerifierStoreOptions,
  ) {
    this.description = redactUrl(url);
    this.cipher = new GalleryCipher(options.galleryKey);
    this.audit = new PgAuditStore(pool);
    this.retryForMs = options.retryForMs ?? 30_000;
  }

  /** Connects and checks the schema (apply migrations with `migratePostgres` / `biokiosk verifier migrate`). */
  static async open(url: string, options: PgVerifierStoreOptions): Promise<PgVerifierStore> {
    const pool = createPool(url, options.maxConnections);
    const store = new PgVerifierStore(pool, url, options);
    try {
      const s = await store.schema();
      if (s.current < s.latest) throw new SchemaError(`the database ${store.description} is at schema version ${s.current}; this build needs ${s.latest}: run \`biokiosk verifier migrate --store <url>\``);
      if (s.current > s.latest) throw new SchemaError(`the database ${store.description} is at schema version ${s.current}, newer than this build (${s.latest}): upgrade biokiosk`);
    } catch (e) {
      await pool.end();
      if (e instanceof BiokioskError) throw e;
      throw new BiokioskError('StoreUnavailable', `cannot use the database ${store.description}: ${(e as Error).message}`, { kind: 'input', cause: e });
    }
    return store;
  }

  async registerDevice(d: DeviceRegistration, now = Date.now()): Promise<void> {
    await this.pool.query(
      `INSERT INTO devices (ueid, kid, jwk, site, status, registered_at, key_store) VALUES ($1, $2, $3, $4, 'active', $5, $6)
       ON CONFLICT (ueid) DO UPDATE SET kid = excluded.kid, jwk = excluded.jwk, site = excluded.site, status = 'active', revoked_at = NULL, key_store = excluded.key_store`,
      [d.ueid, d.kid, JSON.stringify(d.publicJwk), d.site, now, d.keyStore ?? 'unknown'],
    );
  }

  async attemptsOf(subject: string, since: number): Promise<AttemptRow[]> {
    return (await this.pool.query('SELECT subject, ueid, site, at, failed, outcome FROM attempts WHERE subject = $1 AND at >= $2 ORDER BY at, id', [subject, since])).rows.map(toAttempt);
  }

  async revokeDevice(ueid: string, now = Date.now()): Promise<boolean> {
    const r = await this.pool.query(`UPDATE devices SET status = 'revoked', revoked_at = $1 WHERE ueid = $2 AND status = 'active'`, [now, ueid]);
    return (r.rowCount ?? 0) > 0;
  }

  async device(ueid: string): Promise<DeviceRecord | undefined> {
    return toDevice((await this.pool.query('SELECT * FROM devices WHERE ueid = $1', [ueid])).rows[0]);
  }

  async devicesByKids(kids: readonly string[]): Promise<Map<string, DeviceRecord>> {
    const out = new Map<string, DeviceRecord>();
    if (kids.length === 0) return out;
    for (const r of (await this.pool.query('SELECT * FROM devices WHERE kid = ANY($1::text[])', [[...new Set(kids)]])).rows) {
      const d = toDevice(r)!;
      out.set(d.kid, d);
    }
    return out;
  }

  async devices(): Promise<DeviceRecord[]> {
    return (await this.pool.query('SELECT * FROM devices ORDER BY ueid')).rows.map((r) => toDevice(r)!);
  }

  async issueNonce(ueid: string, nonce: string, expiresAt: number, opts: { now?: number; maxPerDevice?: number } = {}): Promise<void> {
    const now = opts.now ?? Date.now();
    await this.transaction(async (c) => {
      // Not waited for (see the interface): a later synchronous commit flushes the WAL past it.
      await c.query('SET LOCAL synchronous_commit = off');
      // Expired nonces go (after a grace period, so a late attestation hears "expired", not "unknown"); a device
      // keeps at most maxPerDevice outstanding, the newest.
      await c.query('DELETE FROM nonces WHERE expires_at < $1', [now - NONCE_GRACE_MS]);
      await c.query('INSERT INTO nonces (ueid, nonce, expires_at, used_at) VALUES ($1, $2, $3, NULL) ON CONFLICT (ueid, nonce) DO UPDATE SET expires_at = excluded.expires_at, used_at = NULL', [ueid, nonce, expiresAt]);
      await c.query('DELETE FROM nonces WHERE ueid = $1 AND nonce IN (SELECT nonce FROM nonces WHERE ueid = $1 ORDER BY expires_at DESC OFFSET $2)', [ueid, opts.maxPerDevice ?? 16]);
    });
  }

  async nonceCount(): Promise<number> {
    return Number((await this.pool.query('SELECT count(*) AS n FROM nonces')).rows[0].n);
  }

  async enroll(e: Omit<GalleryEntry, 'enrolledAt'>, now = Date.now()): Promise<void> {
    await this.pool.query(
      `INSERT INTO gallery (subject, modality, template, template_format, model_sha256, enrolled_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (subject, modality) DO UPDATE SET template = excluded.template, template_format = excluded.template_format, model_sha256 = excluded.model_sha256, enrolled_at = excluded.enrolled_at`,
      [e.subject, e.modality, this.cipher.seal(e.template, e), e.templateFormat, e.modelSha256, now],
    );
  }

  async galleryEntry(subject: string, modality: string): Promise<GalleryEntry | undefined> {
    return this.openGallery((await this.pool.query('SELECT * FROM gallery WHERE subject = $1 AND modality = $2', [subject, modality])).rows[0]);
  }

  async galleryEntries(keys: ReadonlyArray<{ subject: string; modality: string }>): Promise<Map<string, GalleryEntry | UnreadableEntry>> {
    const out = new Map<string, GalleryEntry | UnreadableEntry>();
    if (keys.length === 0) return out;
    const sql = 'SELECT g.* FROM gallery g JOIN unnest($1::text[], $2::text[]) AS u(subject, modality) ON g.subject = u.subject AND g.modality = u.modality';
    for (const r of (await this.pool.query(sql, [keys.map((k) => k.subject), keys.map((k) => k.modality)])).rows as GalleryRow[]) {
      try {
        out.set(galleryKey(r.subject, r.modality), this.openGallery(r)!);
      } catch (e) {
        out.set(galleryKey(r.subject, r.modality), { unreadable: e as Error });
      }
    }
    return out;
  }

  async seqWindow(ueid: string): Promise<{ floor: number; pending: number[] }> {
    const r = (await this.pool.query('SELECT floor, seen FROM seq_windows WHERE ueid = $1', [ueid])).rows[0] as { floor: number; seen: string } | undefined;
    return r ? { floor: Number(r.floor), pending: [...decodeSeen(r.seen)].sort((a, b) => a - b) } : { floor: 0, pending: [] };
  }

  async noteRejections(counts: ReadonlyMap<string, number>, samples: readonly RejectionSample[], now: number): Promise<void> {
    if (counts.size === 0 && samples.length === 0) return;
    await this.transaction((c) => writeRejections(c, counts, samples, now));
  }

  async rejectionReport(now = Date.now(), opts: { hours?: number; samples?: number } = {}): Promise<RejectionReport> {
    const since = Math.floor(now / HOUR_MS) - (opts.hours ?? 24) + 1;
    const counts = Object.fromEntries((await this.pool.query('SELECT code, sum(n)::bigint AS n FROM rejection_counts WHERE hour >= $1 GROUP BY code ORDER BY code', [since])).rows.map((r: { code: string; n: number }) => [r.code, Number(r.n)]));
    const samples = (await this.pool.query('SELECT at, ueid, code, detail, bytes, hash FROM rejection_samples ORDER BY id DESC LIMIT $1', [opts.samples ?? 20])).rows.map((r: RejectionSample) => ({ ...r, at: Number(r.at), bytes: Number(r.bytes) }));
    return { sinceHour: since, counts, samples };
  }

  async putEnrollmentToken(t: Omit<EnrollmentToken, 'usedAt' | 'usedBy'>): Promise<void> {
    await this.pool.query('INSERT INTO enrollment_tokens (hash, site, created_at, expires_at) VALUES ($1, $2, $3, $4)', [t.hash, t.site, t.createdAt, t.expiresAt]);
  }

  async enrollmentToken(hash: string): Promise<EnrollmentToken | undefined> {
    return toToken((await this.pool.query('SELECT * FROM enrollment_tokens WHERE hash = $1', [hash])).rows[0]);
  }

  async putPendingEnrollment(e: PendingEnrollment, now = Date.now()): Promise<void> {
    await this.transaction(async (c) => {
      await c.query('DELETE FROM enrollments WHERE expires_at < $1', [now]);
      await c.query(
        `INSERT INTO enrollments (id, kind, token_hash, ueid, site, request, credential, nonce, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (id) DO UPDATE SET request = excluded.request, credential = excluded.credential, nonce = excluded.nonce, expires_at = excluded.expires_at`,
        [e.id, e.kind, e.tokenHash, e.ueid, e.site, e.request, e.credential, e.nonce, e.createdAt, e.expiresAt],
      );
    });
  }

  async pendingEnrollment(id: string): Promise<PendingEnrollment | undefined> {
    return toPending((await this.pool.query('SELECT * FROM enrollments WHERE id = $1', [id])).rows[0]);
  }

  async completeEnrollment(x: { enrollmentId: string; tokenHash: string; device: DeviceRegistration & { keyStore: DeviceRecord['keyStore'] }; identity: DeviceIdentity; now: number }): Promise<CompleteEnrollment> {
    return this.transaction(async (c): Promise<CompleteEnrollment> => {
      if ((await c.query('SELECT 1 FROM enrollments WHERE id = $1 FOR UPDATE', [x.enrollmentId])).rowCount === 0) return { ok: false, reason: 'enrollment_gone' };
      const used = await c.query('UPDATE enrollment_tokens SET used_at = $1, used_by = $2 WHERE hash = $3 AND used_at IS NULL', [x.now, x.device.ueid, x.tokenHash]);
      if (used.rowCount === 0) {
        const t = toToken((await c.query('SELECT * FROM enrollment_tokens WHERE hash = $1', [x.tokenHash])).rows[0]);
        return { ok: false, reason: 'token_used', usedBy: t?.usedBy ?? null, usedAt: t?.usedAt ?? null };
      }
      await c.query('DELETE FROM enrollments WHERE id = $1', [x.enrollmentId]);
      await c.query(
        `INSERT INTO devices (ueid, kid, jwk, site, status, registered_at, key_store) VALUES ($1, $2, $3, $4, 'active', $5, $6)
         ON CONFLICT (ueid) DO UPDATE SET kid = excluded.kid, jwk = excluded.jwk, site = excluded.site, status = 'active', revoked_at = NULL, key_store = excluded.key_store`,
        [x.device.ueid, x.device.kid, JSON.stringify(x.device.publicJwk), x.device.site, x.now, x.device.keyStore],
      );
      const i = x.identity;
      await c.query(
        `INSERT INTO device_identities (ueid, evidence, ek_cert_sha256, identity_key_name, site, enrolled_at, rotated_at, decommissioned_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (ueid) DO UPDATE SET evidence = excluded.evidence, ek_cert_sha256 = excluded.ek_cert_sha256, identity_key_name = excluded.identity_key_name, site = excluded.site,
           enrolled_at = excluded.enrolled_at, rotated_at = NULL, decommissioned_at = NULL`,
        [i.ueid, i.evidence, i.ekCertSha256, i.identityKeyName, i.site, i.enrolledAt, i.rotatedAt, i.decommissionedAt],
      );
      return { ok: true };
    });
  }

  async completeRotation(x: { rotationId: string; ueid: string; kid: string; publicJwk: JWK; now: number }): Promise<boolean> {
    return this.transaction(async (c) => {
      if ((await c.query('SELECT 1 FROM enrollments WHERE id = $1 FOR UPDATE', [x.rotationId])).rowCount === 0) return false;
      if ((await c.query(`UPDATE devices SET kid = $1, jwk = $2 WHERE ueid = $3 AND status = 'active'`, [x.kid, JSON.stringify(x.publicJwk), x.ueid])).rowCount === 0) return false;
      await c.query('DELETE FROM enrollments WHERE id = $1', [x.rotationId]);
      await c.query('UPDATE device_identities SET rotated_at = $1 WHERE ueid = $2', [x.now, x.ueid]);
      return true;
    });
  }

  async deviceIdentity(ueid: string): Promise<DeviceIdentity | undefined> {
    return toIdentity((await this.pool.query('SELECT * FROM device_identities WHERE ueid = $1', [ueid])).rows[0]);
  }

  async quarantineRecord(ueid: string): Promise<QuarantineRow | undefined> {
    return toQuarantine((await this.pool.query('SELECT * FROM quarantines WHERE ueid = $1', [ueid])).rows[0]);
  }

  async putQuarantine(r: QuarantineRow): Promise<void> {
    await this.pool.query(
      `INSERT INTO quarantines (ueid, strikes, since, until, reason, released_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (ueid) DO UPDATE SET strikes = excluded.strikes, since = excluded.since, until = excluded.until, reason = excluded.reason, released_at = excluded.released_at`,
      [r.ueid, r.strikes, r.since, r.until, r.reason, r.releasedAt],
    );
  }

  async quarantines(opts: { dueBy?: number } = {}): Promise<QuarantineRow[]> {
    return (await this.pool.query('SELECT * FROM quarantines WHERE released_at IS NULL AND until <= $1 ORDER BY since, ueid', [opts.dueBy ?? Number.MAX_SAFE_INTEGER])).rows.map((r) => toQuarantine(r)!);
  }

  async decommissionDevice(ueid: string, now: number): Promise<boolean> {
    return this.transaction(async (c) => {
      if ((await c.query(`UPDATE devices SET status = 'revoked', revoked_at = $1 WHERE ueid = $2 AND status = 'active'`, [now, ueid])).rowCount === 0) return false;
      await c.query('UPDATE device_identities SET decommissioned_at = $1 WHERE ueid = $2', [now, ueid]);
      return true;
    });
  }

  async batch<T>(fn: (tx: BatchTx) => Promise<T>): Promise<T> {
    return this.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, DECISION_LOCK]);
      return fn(batchTx(client));
    });
  }

  async schema(): Promise<SchemaStatus> {
    const exists = (await this.pool.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS e")).rows[0].e as boolean;
    const current = exists ? Number((await this.pool.query('SELECT coalesce(max(version), 0) AS v FROM schema_migrations')).rows[0].v) : 0;
    return { current, latest: LATEST_SCHEMA };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** One transaction on a pooled client, retried as a whole on serialization failures, deadlocks and lost connections. */
  private async transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.withRetry(async () => {
      const client = await this.pool.connect();
      let broken = false;
      // A checked-out client whose connection dies (a restart) emits 'error' besides failing its query; unheard,
      // that would be an uncaught exception. The failing query makes the transaction retry.
      const onError = () => {
        broken = true;
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const r = await fn(client);
        await client.query('COMMIT');
        return r;
      } catch (e) {
        broken ||= isTransient(e);
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw e;
      } finally {
        client.removeListener('error', onError);
        // A connection that failed mid-transaction is not put back in the pool.
        client.release(broken ? true : undefined);
      }
    });
  }

  private async withRetry<T>(fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.retryForMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (!isTransient(e) || Date.now() > deadline) throw e;
        this.options.onRetry?.(e, attempt);
        await new Promise((r) => setTimeout(r, Math.min(2000, 25 * 2 ** Math.min(attempt, 7)) * (0.5 + Math.random())));
      }
    }
  }

  private openGallery(r: GalleryRow | undefined): GalleryEntry | undefined {
    if (!r) return undefined;
    const id = { subject: r.subject, modality: r.modality, templateFormat: r.template_format, modelSha256: r.model_sha256 };
    return { ...id, template: this.cipher.open(r.template, id), enrolledAt: Number(r.enrolled_at) };
  }
}

/** A batch's operations on its client, inside its transaction (the decision lock held). */
function batchTx(c: pg.PoolClient): BatchTx {
  return {
    async consumeNonces(items, now) {
      if (items.length === 0) return [];
      const rows = (
        await c.query('SELECT n.ueid, n.nonce, n.expires_at, n.used_at FROM nonces n JOIN unnest($1::text[], $2::text[]) AS u(ueid, nonce) ON n.ueid = u.ueid AND n.nonce = u.nonce', [
          items.map((i) => i.ueid),
          items.map((i) => i.nonce),
        ])
      ).rows as Array<{ ueid: string; nonce: string; expires_at: number; used_at: number | null }>;
      const state = new Map(rows.map((r) => [`${r.ueid}\u0000${r.nonce}`, r]));
      const used: Array<{ ueid: string; nonce: string }> = [];
      const out: NonceCheck[] = items.map(({ ueid, nonce }) => {
        const r = state.get(`${ueid}\u0000${nonce}`);
        if (!r) return 'unknown';
        if (r.used_at !== null) return 'reused';
        if (Number(r.expires_at) < now) return 'expired';
        r.used_at = now;
        used.push({ ueid, nonce });
        return 'ok';
      });
      if (used.length > 0) {
        await c.query('UPDATE nonces SET used_at = $3 FROM unnest($1::text[], $2::text[]) AS u(ueid, nonce) WHERE nonces.ueid = u.ueid AND nonces.nonce = u.nonce AND nonces.used_at IS NULL', [
          used.map((u) => u.ueid),
          used.map((u) => u.nonce),
          now,
        ]);
      }
      return out;
    },
    async acceptSeqs(items) {
      if (items.length === 0) return [];
      const ueids = [...new Set(items.map((i) => i.ueid))];
      const windows = new Map<string, WindowState>();
      for (const r of (await c.query('SELECT ueid, floor, seen FROM seq_windows WHERE ueid = ANY($1::text[])', [ueids])).rows as Array<{ ueid: string; floor: number; seen: string }>) {
        windows.set(r.ueid, { floor: Number(r.floor), seen: decodeSeen(r.seen) });
      }
      const changed = new Set<string>();
      const out: SeqCheck[] = items.map(({ ueid, seq }) => {
        let w = windows.get(ueid);
        if (!w) windows.set(ueid, (w = { floor: 0, seen: new Set() }));
        const r = acceptSeq(w, seq);
        if (r === 'ok') changed.add(ueid);
        return r;
      });
      if (changed.size > 0) {
        const list = [...changed];
        await c.query(
          `INSERT INTO seq_windows (ueid, floor, seen) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])
           ON CONFLICT (ueid) DO UPDATE SET floor = excluded.floor, seen = excluded.seen`,
          [list, list.map((u) => windows.get(u)!.floor), list.map((u) => encodeSeen(windows.get(u)!.seen))],
        );
      }
      return out;
    },
    noteRejections: (counts, samples, now) => writeRejections(c, counts, samples, now),
    async attempts({ subjects, ueids, since }) {
      if (subjects.length === 0 && ueids.length === 0) return [];
      const r = await c.query('SELECT subject, ueid, site, at, failed, outcome FROM attempts WHERE at >= $1 AND (subject = ANY($2::text[]) OR ueid = ANY($3::text[])) ORDER BY at, id', [since, [...new Set(subjects)], [...new Set(ueids)]]);
      return r.rows.map(toAttempt);
    },
    async recordAttempts(rows, pruneBefore) {
      if (rows.length > 0) {
        await c.query('INSERT INTO attempts (subject, ueid, site, at, failed, outcome) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::boolean[], $6::text[])', [
          rows.map((r) => r.subject),
          rows.map((r) => r.ueid),
          rows.map((r) => r.site),
          rows.map((r) => r.at),
          rows.map((r) => r.failed),
          rows.map((r) => r.outcome),
        ]);
      }
      await c.query('DELETE FROM attempts WHERE at < $1', [pruneBefore]);
    },
    async stepUps(attIds) {
      const out = new Map<string, StepUpRow>();
      if (attIds.length === 0) return out;
      for (const r of (await c.query('SELECT * FROM step_ups WHERE att_id = ANY($1::text[])', [[...new Set(attIds)]])).rows) out.set(r.att_id, toStepUp(r));
      return out;
    },
    async putStepUps(rows, consumed, now) {
      if (consumed.length > 0) await c.query('DELETE FROM step_ups WHERE att_id = ANY($1::text[])', [[...consumed]]);
      if (rows.length > 0) {
        await c.query(
          `INSERT INTO step_ups (att_id, subject, ueid, scenario, done, need, expires_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::bigint[])
           ON CONFLICT (att_id) DO UPDATE SET done = excluded.done, need = excluded.need, expires_at = excluded.expires_at`,
          [rows.map((r) => r.attId), rows.map((r) => r.subject), rows.map((r) => r.ueid), rows.map((r) => r.scenario), rows.map((r) => JSON.stringify(r.done)), rows.map((r) => r.need), rows.map((r) => r.expiresAt)],
        );
      }
      await c.query('DELETE FROM step_ups WHERE expires_at < $1', [now]);
    },
    audit: new PgAuditStore(c),
  };
}

async function writeRejections(c: pg.PoolClient, counts: ReadonlyMap<string, number>, samples: readonly RejectionSample[], now: number): Promise<void> {
  const hour = Math.floor(now / HOUR_MS);
  if (counts.size > 0) {
    await c.query(
      `INSERT INTO rejection_counts (hour, code, n) SELECT $1, code, n FROM unnest($2::text[], $3::bigint[]) AS u(code, n)
       ON CONFLICT (hour, code) DO UPDATE SET n = rejection_counts.n + excluded.n`,
      [hour, [...counts.keys()], [...counts.values()]],
    );
    await c.query('DELETE FROM rejection_counts WHERE hour < $1', [hour - REJECTION_COUNT_DAYS * 24]);
  }
  if (samples.length > 0) {
    await c.query('INSERT INTO rejection_samples (at, ueid, code, detail, bytes, hash) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[])', [
      samples.map((s) => s.at),
      samples.map((s) => s.ueid),
      samples.map((s) => s.code),
      samples.map((s) => s.detail),
      samples.map((s) => s.bytes),
      samples.map((s) => s.hash),
    ]);
    await c.query('DELETE FROM rejection_samples WHERE at < $1 OR id <= (SELECT max(id) FROM rejection_samples) - $2', [now - REJECTION_SAMPLE_DAYS * DAY_MS, REJECTION_SAMPLES_KEPT]);
  }
}

/** Applies the missing migrations, one node at a time (an advisory lock), in one transaction. */
export async function migratePostgres(url: string, now = Date.now()): Promise<{ from: number; applied: number[] }> {
  const pool = createPool(url, 1);
  try {
    const c = await pool.connect();
    const onError = () => {};
    c.on('error', onError);
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, MIGRATION_LOCK]);
      await c.query(SCHEMA_MIGRATIONS_PG);
      const from = Number((await c.query('SELECT coalesce(max(version), 0) AS v FROM schema_migrations')).rows[0].v);
      if (from > LATEST_SCHEMA) throw new SchemaError(`the database ${redactUrl(url)} is at schema version ${from}, newer than this build (${LATEST_SCHEMA}): upgrade biokiosk`);
      const applied: number[] = [];
      for (const m of pending(from)) {
        await c.query(m.postgres);
        await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, now]);
        applied.push(m.version);
      }
      await c.query('COMMIT');
      return { from, applied };
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.removeListener('error', onError);
      c.release();
    }
  } catch (e) {
    if (e instanceof BiokioskError) throw e;
    throw new BiokioskError('StoreUnavailable', `cannot migrate the database ${redactUrl(url)}: ${(e as Error).message}`, { kind: 'input', cause: e });
  } finally {
    await pool.end();
  }
}

interface GalleryRow {
  subject: string;
  modality: string;
  template: Buffer;
  template_format: string;
  model_sha256: string;
  enrolled_at: number;
}

