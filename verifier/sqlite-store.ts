/**
 * The verifier's embedded store: one SQLite file (mode 0600), WAL, synchronous=FULL, for one box and the demo.
 * Several verifier processes may share the file: a batch is a `BEGIN IMMEDIATE` transaction, which is the
 * decision lock (SQLite has one writer at a time). Audit-log reads outside batches go through a second
 * connection, so they only ever see committed entries. Gallery templates are encrypted at rest
 * (gallery-cipher.ts) under the key kept with the verifier's other keys.
 */
import Database from 'better-sqlite3';
import type { JWK } from 'jose';
import { ensurePrivateDatabase, type NoticeSink } from '../protocol/private-files.ts';
import { SqliteAuditStore } from './audit/store.ts';
import { GalleryCipher, isSealedTemplate } from './gallery-cipher.ts';
import { LATEST_SCHEMA, pending, SCHEMA_MIGRATIONS_SQLITE } from './migrations.ts';
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
import { decodeSeen, encodeSeen, SchemaError, toAttempt, toDevice, toIdentity, toPending, toQuarantine, toStepUp, toToken, type AttemptDbRow, type StepUpDbRow } from './store-common.ts';

export interface SqliteVerifierStoreOptions {
  /** The AES-256 key gallery templates are encrypted with (verifier-keys.json's galleryKey). */
  galleryKey: Uint8Array;
  onNotice?: NoticeSink;
  /** Apply missing migrations when opening (default true: the embedded store has one owner). */
  migrate?: boolean;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Attempts at a batch that finds the database locked by another process. */
const BUSY_ATTEMPTS = 20;

export class SqliteVerifierStore implements VerifierStore {
  readonly kind = 'sqlite' as const;
  readonly description: string;
  readonly db: Database.Database;
  /** The audit log as read outside batches (its own connection: committed entries only). */
  readonly audit: SqliteAuditStore;
  private readonly writer: SqliteAuditStore;
  private s!: Record<string, Database.Statement>;
  private readonly cipher: GalleryCipher;
  /** Batches and other writes of this process, one at a time (they share one connection). */
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    options: SqliteVerifierStoreOptions,
  ) {
    this.description = `sqlite:${path}`;
    this.cipher = new GalleryCipher(options.galleryKey);
    ensurePrivateDatabase(path, options.onNotice);
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    try {
      if (options.migrate ?? true) migrateSqlite(this.db);
      checkSchema(this.db, path);
    } catch (e) {
      this.db.close();
      throw e;
    }
    this.prepare();
    this.encryptPlaintextGallery();
    this.writer = new SqliteAuditStore(this.db);
    this.audit = new SqliteAuditStore(path);
  }

  private prepare(): void {
    const p = (sql: string) => this.db.prepare(sql);
    this.s = {
      register: p(`INSERT INTO devices (ueid, kid, jwk, site, status, registered_at, key_store) VALUES (?, ?, ?, ?, 'active', ?, ?)
        ON CONFLICT (ueid) DO UPDATE SET kid = excluded.kid, jwk = excluded.jwk, site = excluded.site, status = 'active', revoked_at = NULL, key_store = excluded.key_store`),
      attemptsOf: p('SELECT subject, ueid, site, at, failed, outcome FROM attempts WHERE subject = ? AND at >= ? ORDER BY at, id'),
      addAttempt: p('INSERT INTO attempts (subject, ueid, site, at, failed, outcome) VALUES (?, ?, ?, ?, ?, ?)'),
      pruneAttempts: p('DELETE FROM attempts WHERE at < ?'),
      stepUp: p('SELECT * FROM step_ups WHERE att_id = ?'),
      putStepUp: p('INSERT OR REPLACE INTO step_ups (att_id, subject, ueid, scenario, done, need, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      dropStepUp: p('DELETE FROM step_ups WHERE att_id = ?'),
      pruneStepUps: p('DELETE FROM step_ups WHERE expires_at < ?'),
      revoke: p(`UPDATE devices SET status = 'revoked', revoked_at = ? WHERE ueid = ? AND status = 'active'`),
      byKid: p('SELECT * FROM devices WHERE kid = ?'),
      byId: p('SELECT * FROM devices WHERE ueid = ?'),
      all: p('SELECT * FROM devices ORDER BY ueid'),
      window: p('SELECT floor, seen FROM seq_windows WHERE ueid = ?'),
      putWindow: p('INSERT INTO seq_windows (ueid, floor, seen) VALUES (?, ?, ?) ON CONFLICT (ueid) DO UPDATE SET floor = excluded.floor, seen = excluded.seen'),
      issueNonce: p('INSERT OR REPLACE INTO nonces (ueid, nonce, expires_at, used_at) VALUES (?, ?, ?, NULL)'),
      pruneNonces: p('DELETE FROM nonces WHERE expires_at < ?'),
      capNonces: p(`DELETE FROM nonces WHERE ueid = ? AND nonce IN (
        SELECT nonce FROM nonces WHERE ueid = ? ORDER BY expires_at DESC LIMIT -1 OFFSET ?)`),
      countNonces: p('SELECT count(*) AS n FROM nonces'),
      getNonce: p('SELECT expires_at, used_at FROM nonces WHERE ueid = ? AND nonce = ?'),
      useNonce: p('UPDATE nonces SET used_at = ? WHERE ueid = ? AND nonce = ? AND used_at IS NULL'),
      countRejection: p(`INSERT INTO rejection_counts (hour, code, n) VALUES (?, ?, ?)
        ON CONFLICT (hour, code) DO UPDATE SET n = n + excluded.n`),
      sampleRejection: p('INSERT INTO rejection_samples (at, ueid, code, detail, bytes, hash) VALUES (?, ?, ?, ?, ?, ?)'),
      trimSamples: p(`DELETE FROM rejection_samples WHERE at < ? OR id <= (SELECT max(id) FROM rejection_samples) - ?`),
      trimCounts: p('DELETE FROM rejection_counts WHERE hour < ?'),
      reportCounts: p('SELECT code, sum(n) AS n FROM rejection_counts WHERE hour >= ? GROUP BY code ORDER BY code'),
      reportSamples: p('SELECT at, ueid, code, detail, bytes, hash FROM rejection_samples ORDER BY id DESC LIMIT ?'),
      enroll: p(`INSERT OR REPLACE INTO gallery (subject, modality, template, template_format, model_sha256, enrolled_at) VALUES (?, ?, ?, ?, ?, ?)`),
      gallery: p('SELECT * FROM gallery WHERE subject = ? AND modality = ?'),
      putToken: p('INSERT INTO enrollment_tokens (hash, site, created_at, expires_at) VALUES (?, ?, ?, ?)'),
      token: p('SELECT * FROM enrollment_tokens WHERE hash = ?'),
      useToken: p('UPDATE enrollment_tokens SET used_at = ?, used_by = ? WHERE hash = ? AND used_at IS NULL'),
      prunePending: p('DELETE FROM enrollments WHERE expires_at < ?'),
      putPending: p(`INSERT OR REPLACE INTO enrollments (id, kind, token_hash, ueid, site, request, credential, nonce, created_at, expires_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      pending: p('SELECT * FROM enrollments WHERE id = ?'),
      dropPending: p('DELETE FROM enrollments WHERE id = ?'),
      putIdentity: p(`INSERT OR REPLACE INTO device_identities (ueid, evidence, ek_cert_sha256, identity_key_name, site, enrolled_at, rotated_at, decommissioned_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
      identity: p('SELECT * FROM device_identities WHERE ueid = ?'),
      quarantine: p('SELECT * FROM quarantines WHERE ueid = ?'),
      putQuarantine: p('INSERT OR REPLACE INTO quarantines (ueid, strikes, since, until, reason, released_at) VALUES (?, ?, ?, ?, ?, ?)'),
      quarantines: p('SELECT * FROM quarantines WHERE released_at IS NULL AND until <= ? ORDER BY since, ueid'),
      rotateKey: p(`UPDATE devices SET kid = ?, jwk = ? WHERE ueid = ? AND status = 'active'`),
      rotated: p('UPDATE device_identities SET rotated_at = ? WHERE ueid = ?'),
      decommissioned: p('UPDATE device_identities SET decommissioned_at = ? WHERE ueid = ?'),
    };
  }

  async registerDevice(d: DeviceRegistration, now = Date.now()): Promise<void> {
    await this.exclusive(() => this.s['register']!.run(d.ueid, d.kid, JSON.stringify(d.publicJwk), d.site, now, d.keyStore ?? 'unknown'));
  }

  async attemptsOf(subject: string, since: number): Promise<AttemptRow[]> {
    return (this.s['attemptsOf']!.all(subject, since) as AttemptDbRow[]).map(toAttempt);
  }

  async revokeDevice(ueid: string, now = Date.now()): Promise<boolean> {
    return this.exclusive(() => this.s['revoke']!.run(now, ueid).changes > 0);
  }

  async device(ueid: string): Promise<DeviceRecord | undefined> {
    return toDevice(this.s['byId']!.get(ueid));
  }

  async devicesByKids(kids: readonly string[]): Promise<Map<string, DeviceRecord>> {
    const out = new Map<string, DeviceRecord>();
    for (const kid of new Set(kids)) {
      const d = toDevice(this.s['byKid']!.get(kid));
      if (d) out.set(kid, d);
    }
    return out;
  }

  async devices(): Promise<DeviceRecord[]> {
    return this.s['all']!.all().map((r) => toDevice(r)!);
  }

  async issueNonce(ueid: string, nonce: string, expiresAt: number, opts: { now?: number; maxPerDevice?: number } = {}): Promise<void> {
    const now = opts.now ?? Date.now();
    await this.exclusive(() => {
      // Not fsync'd (see the interface): the next durable commit on this WAL makes it durable as well.
      this.db.pragma('synchronous = NORMAL');
      try {
        this.db.transaction(() => {
          // Expired nonces go (after a grace period, so a late attestation hears "expired", not "unknown"); a device
          // keeps at most maxPerDevice outstanding, the newest.
          this.s['pruneNonces']!.run(now - NONCE_GRACE_MS);
          this.s['issueNonce']!.run(ueid, nonce, expiresAt);
          this.s['capNonces']!.run(ueid, ueid, opts.maxPerDevice ?? 16);
        }).immediate();
      } finally {
        this.db.pragma('synchronous = FULL');
      }
    });
  }

  async nonceCount(): Promise<number> {
    return (this.s['countNonces']!.get() as { n: number }).n;
  }

  async enroll(e: Omit<GalleryEntry, 'enrolledAt'>, now = Date.now()): Promise<void> {
    await this.exclusive(() => this.s['enroll']!.run(e.subject, e.modality, this.cipher.seal(e.template, e), e.templateFormat, e.modelSha256, now));
  }

  async galleryEntry(subject: string, modality: string): Promise<GalleryEntry | undefined> {
    return this.openGallery(this.s['gallery']!.get(subject, modality) as GalleryRow | undefined);
  }

  async galleryEntries(keys: ReadonlyArray<{ subject: string; modality: string }>): Promise<Map<string, GalleryEntry | UnreadableEntry>> {
    const out = new Map<string, GalleryEntry | UnreadableEntry>();
    for (const k of keys) {
      const id = galleryKey(k.subject, k.modality);
      if (out.has(id)) continue;
      try {
        const e = this.openGallery(this.s['gallery']!.get(k.subject, k.modality) as GalleryRow | undefined);
        if (e) out.set(id, e);
      } catch (e) {
        out.set(id, { unreadable: e as Error });
      }
    }
    return out;
  }

  async seqWindow(ueid: string): Promise<{ floor: number; pending: number[] }> {
    const w = this.loadWindow(ueid);
    return { floor: w.floor, pending: [...w.seen].sort((a, b) => a - b) };
  }

  async noteRejections(counts: ReadonlyMap<string, number>, samples: readonly RejectionSample[], now: number): Promise<void> {
    if (counts.size === 0 && samples.length === 0) return;
    await this.exclusive(() => this.db.transaction(() => this.writeRejections(counts, samples, now)).immediate());
  }

  async rejectionReport(now = Date.now(), opts: { hours?: number; samples?: number } = {}): Promise<RejectionReport> {
    const since = Math.floor(now / HOUR_MS) - (opts.hours ?? 24) + 1;
    const counts = Object.fromEntries((this.s['reportCounts']!.all(since) as Array<{ code: string; n: number }>).map((r) => [r.code, r.n]));
    const samples = this.s['reportSamples']!.all(opts.samples ?? 20) as RejectionSample[];
    return { sinceHour: since, counts, samples };
  }

  async putEnrollmentToken(t: Omit<EnrollmentToken, 'usedAt' | 'usedBy'>): Promise<void> {
    await this.exclusive(() => this.s['putToken']!.run(t.hash, t.site, t.createdAt, t.expiresAt));
  }

  async enrollmentToken(hash: string): Promise<EnrollmentToken | undefined> {
    return toToken(this.s['token']!.get(hash));
  }

  async putPendingEnrollment(e: PendingEnrollment, now = Date.now()): Promise<void> {
    await this.exclusive(() =>
      this.db
        .transaction(() => {
          this.s['prunePending']!.run(now);
          this.s['putPending']!.run(e.id, e.kind, e.tokenHash, e.ueid, e.site, e.request, e.credential, e.nonce, e.createdAt, e.expiresAt);
        })
        .immediate(),
    );
  }

  async pendingEnrollment(id: string): Promise<PendingEnrollment | undefined> {
    return toPending(this.s['pending']!.get(id));
  }

  async completeEnrollment(c: { enrollmentId: string; tokenHash: string; device: DeviceRegistration & { keyStore: DeviceRecord['keyStore'] }; identity: DeviceIdentity; now: number }): Promise<CompleteEnrollment> {
    return this.exclusive(() =>
      this.db
        .transaction((): CompleteEnrollment => {
          if (!this.s['pending']!.get(c.enrollmentId)) return { ok: false, reason: 'enrollment_gone' };
          if (this.s['useToken']!.run(c.now, c.device.ueid, c.tokenHash).changes === 0) {
            const t = toToken(this.s['token']!.get(c.tokenHash));
            return { ok: false, reason: 'token_used', usedBy: t?.usedBy ?? null, usedAt: t?.usedAt ?? null };
          }
          this.s['register']!.run(c.device.ueid, c.device.kid, JSON.stringify(c.device.publicJwk), c.device.site, c.now, c.device.keyStore);
          const i = c.identity;
          this.s['putIdentity']!.run(i.ueid, i.evidence, i.ekCertSha256, i.identityKeyName, i.site, i.enrolledAt, i.rotatedAt, i.decommissionedAt);
          this.s['dropPending']!.run(c.enrollmentId);
          return { ok: true };
        })
        .immediate(),
    );
  }

  async completeRotation(c: { rotationId: string; ueid: string; kid: string; publicJwk: JWK; now: number }): Promise<boolean> {
    return this.exclusive(() =>
      this.db
        .transaction(() => {
          if (!this.s['pending']!.get(c.rotationId)) return false;
          if (this.s['rotateKey']!.run(c.kid, JSON.stringify(c.publicJwk), c.ueid).changes === 0) return false;
          this.s['rotated']!.run(c.now, c.ueid);
          this.s['dropPending']!.run(c.rotationId);
          return true;
        })
        .immediate(),
    );
  }

  async deviceIdentity(ueid: string): Promise<DeviceIdentity | undefined> {
    return toIdentity(this.s['identity']!.get(ueid));
  }

  async quarantineRecord(ueid: string): Promise<QuarantineRow | undefined> {
    return toQuarantine(this.s['quarantine']!.get(ueid));
  }

  async putQuarantine(r: QuarantineRow): Promise<void> {
    await this.exclusive(() => this.s['putQuarantine']!.run(r.ueid, r.strikes, r.since, r.until, r.reason, r.releasedAt));
  }

  async quarantines(opts: { dueBy?: number } = {}): Promise<QuarantineRow[]> {
    return this.s['quarantines']!.all(opts.dueBy ?? Number.MAX_SAFE_INTEGER).map((r) => toQuarantine(r)!);
  }

  async decommissionDevice(ueid: string, now: number): Promise<boolean> {
    return this.exclusive(() =>
      this.db
        .transaction(() => {
          const done = this.s['revoke']!.run(now, ueid).changes > 0;
          if (done) this.s['decommissioned']!.run(now, ueid);
          return done;
        })
        .immediate(),
    );
  }

  async batch<T>(fn: (tx: BatchTx) => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          this.db.exec('BEGIN IMMEDIATE');
        } catch (e) {
          // Another process holds the write lock beyond the busy timeout: wait and try again.
          if (isBusy(e) && attempt < BUSY_ATTEMPTS) {
            await new Promise((r) => setTimeout(r, 20 * attempt));
            continue;
          }
          throw e;
        }
        try {
          const result = await fn(this.tx());
          this.db.exec('COMMIT');
          return result;
        } catch (e) {
          if (this.db.inTransaction) this.db.exec('ROLLBACK');
          if (isBusy(e) && attempt < BUSY_ATTEMPTS) continue;
          throw e;
        }
      }
    });
  }

  async schema(): Promise<SchemaStatus> {
    return { current: schemaVersion(this.db), latest: LATEST_SCHEMA };
  }

  async close(): Promise<void> {
    await this.lock.catch(() => {});
    this.audit.close();
    if (this.db.open) this.db.close();
  }

  /** The operations of one batch, on the open transaction. */
  private tx(): BatchTx {
    const windows = new Map<string, WindowState>();
    return {
      consumeNonces: async (items, now) => items.map(({ ueid, nonce }) => this.consumeNonce(ueid, nonce, now)),
      acceptSeqs: async (items) => {
        const out: SeqCheck[] = [];
        const changed = new Set<string>();
        for (const { ueid, seq } of items) {
          let w = windows.get(ueid);
          if (!w) windows.set(ueid, (w = this.loadWindow(ueid)));
          const r = acceptSeq(w, seq);
          if (r === 'ok') changed.add(ueid);
          out.push(r);
        }
        for (const ueid of changed) {
          const w = windows.get(ueid)!;
          this.s['putWindow']!.run(ueid, w.floor, encodeSeen(w.seen));
        }
        return out;
      },
      noteRejections: async (counts, samples, now) => this.writeRejections(counts, samples, now),
      attempts: async ({ subjects, ueids, since }) => {
        if (subjects.length === 0 && ueids.length === 0) return [];
        const sub = [...new Set(subjects)];
        const dev = [...new Set(ueids)];
        const sql = `SELECT subject, ueid, site, at, failed, outcome FROM attempts WHERE at >= ? AND (subject IN (${sub.map(() => '?').join(',') || 'NULL'}) OR ueid IN (${dev.map(() => '?').join(',') || 'NULL'})) ORDER BY at, id`;
        return (this.db.prepare(sql).all(since, ...sub, ...dev) as AttemptDbRow[]).map(toAttempt);
      },
      recordAttempts: async (rows, pruneBefore) => {
        for (const r of rows) this.s['addAttempt']!.run(r.subject, r.ueid, r.site, r.at, r.failed ? 1 : 0, r.outcome);
        this.s['pruneAttempts']!.run(pruneBefore);
      },
      stepUps: async (attIds) => {
        const out = new Map<string, StepUpRow>();
        for (const id of new Set(attIds)) {
          const r = this.s['stepUp']!.get(id) as StepUpDbRow | undefined;
          if (r) out.set(id, toStepUp(r));
        }
        return out;
      },
      putStepUps: async (rows, consumed, now) => {
        for (const id of consumed) this.s['dropStepUp']!.run(id);
        for (const r of rows) this.s['putStepUp']!.run(r.attId, r.subject, r.ueid, r.scenario, JSON.stringify(r.done), r.need, r.expiresAt);
        this.s['pruneStepUps']!.run(now);
      },
      audit: this.writer,
    };
  }

  private consumeNonce(ueid: string, nonce: string, now: number): NonceCheck {
    const row = this.s['getNonce']!.get(ueid, nonce) as { expires_at: number; used_at: number | null } | undefined;
    if (!row) return 'unknown';
    if (row.used_at !== null) return 'reused';
    if (row.expires_at < now) return 'expired';
    return this.s['useNonce']!.run(now, ueid, nonce).changes > 0 ? 'ok' : 'reused';
  }

  private loadWindow(ueid: string): WindowState {
    const r = this.s['window']!.get(ueid) as { floor: number; seen: string } | undefined;
    return r ? { floor: Number(r.floor), seen: decodeSeen(r.seen) } : { floor: 0, seen: new Set() };
  }

  private writeRejections(counts: ReadonlyMap<string, number>, samples: readonly RejectionSample[], now: number): void {
    const hour = Math.floor(now / HOUR_MS);
    for (const [code, n] of counts) this.s['countRejection']!.run(hour, code, n);
    for (const x of samples) this.s['sampleRejection']!.run(x.at, x.ueid, x.code, x.detail, x.bytes, x.hash);
    if (samples.length > 0) this.s['trimSamples']!.run(now - REJECTION_SAMPLE_DAYS * DAY_MS, REJECTION_SAMPLES_KEPT);
    if (counts.size > 0) this.s['trimCounts']!.run(hour - REJECTION_COUNT_DAYS * 24);
  }

  private openGallery(r: GalleryRow | undefined): GalleryEntry | undefined {
    if (!r) return undefined;
    const id = { subject: r.subject, modality: r.modality, templateFormat: r.template_format, modelSha256: r.model_sha256 };
    return { ...id, template: this.cipher.open(r.template, id), enrolledAt: r.enrolled_at };
  }

  /** Rows written before templates were encrypted at rest: encrypted in place, once. */
  private encryptPlaintextGallery(): void {
    const rows = (this.db.prepare('SELECT * FROM gallery').all() as GalleryRow[]).filter((r) => !isSealedTemplate(r.template));
    if (rows.length === 0) return;
    const update = this.db.prepare('UPDATE gallery SET template = ? WHERE subject = ? AND modality = ?');
    this.db.transaction(() => {
      for (const r of rows) update.run(this.cipher.seal(r.template, { subject: r.subject, modality: r.modality, templateFormat: r.template_format, modelSha256: r.model_sha256 }), r.subject, r.modality);
    })();
  }

  /** Runs fn after this process's earlier writes and batches (one connection: one transaction at a time). */
  private exclusive<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => {});
    return run;
  }
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED';
}

function schemaVersion(db: Database.Database): number {
  if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get()) return 0;
  return Number(db.prepare('SELECT coalesce(max(version), 0) FROM schema_migrations').pluck().get());
}

function checkSchema(db: Database.Database, path: string): void {
  const current = schemaVersion(db);
  if (current < LATEST_SCHEMA) throw new SchemaError(`${path} is at schema version ${current}; this build needs ${LATEST_SCHEMA}: run \`biokiosk verifier migrate\``);
  if (current > LATEST_SCHEMA) throw new SchemaError(`${path} is at schema version ${current}, newer than this build (${LATEST_SCHEMA}): upgrade biokiosk`);
}

/** Migrates a SQLite store file (creating it, 0600, when missing). */
export function migrateSqliteFile(path: string, onNotice?: NoticeSink): { from: number; applied: number[] } {
  ensurePrivateDatabase(path, onNotice);
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
    const from = schemaVersion(db);
    return { from, applied: migrateSqlite(db) };
  } finally {
    db.close();
  }
}

/** Applies the missing migrations in one transaction; returns the versions applied. */
export function migrateSqlite(db: Database.Database, now = Date.now()): number[] {
  const applied: number[] = [];
  db.transaction(() => {
    const current = schemaVersion(db);
    if (current > LATEST_SCHEMA) throw new SchemaError(`${db.name} is at schema version ${current}, newer than this build (${LATEST_SCHEMA}): upgrade biokiosk`);
    if (current === 0) adoptLegacy(db);
    db.exec(SCHEMA_MIGRATIONS_SQLITE);
    for (const m of pending(current)) {
      db.exec(m.sqlite);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, now);
      applied.push(m.version);
    }
  }).immediate();
  return applied;
}

/**
 * A file written before schema versions existed: its registry, nonces, gallery and rejection counts have the
 * version 1 shapes and stay; the highest-seq counters become replay windows (floor 256 below the highest seq:
 * what the old window refused); saved verdicts go (answers now come from the log). An audit log of that era
 * published its records in clear and cannot be turned into salted commitments without breaking every receipt
 * given: such a file is refused, with what to do.
 */
function adoptLegacy(db: Database.Database): void {
  const has = (t: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(t) !== undefined;
  if (!has('devices')) return;
  if (has('audit_tree_heads')) {
    const n = Number(db.prepare('SELECT count(*) FROM audit_leaves').pluck().get());
    if (n > 0) {
      throw new SchemaError(
        `${db.name} holds an audit log of ${n} entries in the format before checkpoints (records hashed in clear); keep the file as the archive of that log and start a new state folder (or move its verifier.db aside)`,
      );
    }
    db.exec('DROP TABLE audit_leaves; DROP TABLE audit_nodes; DROP TABLE audit_tree_heads;');
  }
  if (has('counters')) {
    db.exec('CREATE TABLE IF NOT EXISTS seq_windows (ueid TEXT PRIMARY KEY, floor INTEGER NOT NULL, seen TEXT NOT NULL)');
    const put = db.prepare('INSERT OR REPLACE INTO seq_windows (ueid, floor, seen) VALUES (?, ?, ?)');
    for (const c of db.prepare('SELECT ueid, last_seq FROM counters').all() as Array<{ ueid: string; last_seq: number }>) {
      const floor = Math.max(0, c.last_seq - 256);
      const seen = has('seen_seqs') ? (db.prepare('SELECT seq FROM seen_seqs WHERE ueid = ? AND seq > ?').pluck().all(c.ueid, floor) as number[]) : [];
      const w: WindowState = { floor, seen: new Set(seen) };
      put.run(c.ueid, w.floor, encodeSeen(w.seen));
    }
    db.exec('DROP TABLE counters; DROP TABLE IF EXISTS seen_seqs;');
  }
  if (has('verdicts')) db.exec('DROP TABLE verdicts');
}

interface GalleryRow {
  subject: string;
  modality: string;
  template: Buffer;
  template_format: string;
  model_sha256: string;
  enrolled_at: number;
}

