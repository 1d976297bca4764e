/**
 * The verifier's default store: one SQLite file (mode 0600), WAL, synchronous=FULL. Gallery templates are
 * encrypted at rest (gallery-cipher.ts) under the key kept with the verifier's other keys.
 */
import Database from 'better-sqlite3';
import type { JWK } from 'jose';
import { ensurePrivateDatabase, type NoticeSink } from '../protocol/private-files.ts';
import { GalleryCipher, isSealedTemplate } from './gallery-cipher.ts';
import {
  NONCE_GRACE_MS,
  REJECTION_COUNT_DAYS,
  REJECTION_SAMPLE_DAYS,
  REJECTION_SAMPLES_KEPT,
  type DeviceRecord,
  type GalleryEntry,
  type NonceCheck,
  type RejectionReport,
  type RejectionSample,
  type SeqCheck,
  type StoredVerdict,
  type VerifierStore,
} from './store.ts';

export interface SqliteVerifierStoreOptions {
  /** The AES-256 key gallery templates are encrypted with (verifier-keys.json's galleryKey). */
  galleryKey: Uint8Array;
  onNotice?: NoticeSink;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export class SqliteVerifierStore implements VerifierStore {
  readonly db: Database.Database;
  private readonly s: Record<string, Database.Statement>;
  private readonly cipher: GalleryCipher;

  constructor(path: string, options: SqliteVerifierStoreOptions) {
    this.cipher = new GalleryCipher(options.galleryKey);
    ensurePrivateDatabase(path, options.onNotice);
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS devices (
        ueid TEXT PRIMARY KEY, kid TEXT NOT NULL UNIQUE, jwk TEXT NOT NULL, site TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')), registered_at INTEGER NOT NULL, revoked_at INTEGER);
      CREATE TABLE IF NOT EXISTS counters (ueid TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS seen_seqs (ueid TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (ueid, seq)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS nonces (ueid TEXT NOT NULL, nonce TEXT NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER,
        PRIMARY KEY (ueid, nonce));
      CREATE TABLE IF NOT EXISTS gallery (subject TEXT NOT NULL, modality TEXT NOT NULL, template BLOB NOT NULL,
        template_format TEXT NOT NULL, model_sha256 TEXT NOT NULL, enrolled_at INTEGER NOT NULL, PRIMARY KEY (subject, modality));
      CREATE TABLE IF NOT EXISTS verdicts (att_hash TEXT PRIMARY KEY, att_id TEXT NOT NULL, verdict TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at);
      CREATE TABLE IF NOT EXISTS rejection_samples (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, ueid TEXT NOT NULL, code TEXT NOT NULL,
        detail TEXT NOT NULL, bytes INTEGER NOT NULL, hash TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS rejection_samples_at ON rejection_samples (at);
      CREATE TABLE IF NOT EXISTS rejection_counts (hour INTEGER NOT NULL, code TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (hour, code)) WITHOUT ROWID;
    `);
    this.encryptPlaintextGallery();
    const p = (sql: string) => this.db.prepare(sql);
    this.s = {
      register: p(`INSERT INTO devices (ueid, kid, jwk, site, status, registered_at) VALUES (?, ?, ?, ?, 'active', ?)
        ON CONFLICT (ueid) DO UPDATE SET kid = excluded.kid, jwk = excluded.jwk, site = excluded.site, status = 'active', revoked_at = NULL`),
      revoke: p(`UPDATE devices SET status = 'revoked', revoked_at = ? WHERE ueid = ? AND status = 'active'`),
      byKid: p('SELECT * FROM devices WHERE kid = ?'),
      byId: p('SELECT * FROM devices WHERE ueid = ?'),
      all: p('SELECT * FROM devices ORDER BY ueid'),
      advance: p(`INSERT INTO counters (ueid, last_seq) VALUES (?, ?)
        ON CONFLICT (ueid) DO UPDATE SET last_seq = excluded.last_seq WHERE excluded.last_seq > counters.last_seq`),
      markSeen: p('INSERT OR IGNORE INTO seen_seqs (ueid, seq) VALUES (?, ?)'),
      pruneSeen: p('DELETE FROM seen_seqs WHERE ueid = ? AND seq <= ?'),
      lastSeq: p('SELECT last_seq FROM counters WHERE ueid = ?'),
      issueNonce: p('INSERT OR REPLACE INTO nonces (ueid, nonce, expires_at, used_at) VALUES (?, ?, ?, NULL)'),
      pruneNonces: p('DELETE FROM nonces WHERE expires_at < ?'),
      capNonces: p(`DELETE FROM nonces WHERE ueid = ? AND nonce IN (
        SELECT nonce FROM nonces WHERE ueid = ? ORDER BY expires_at DESC LIMIT -1 OFFSET ?)`),
      countNonces: p('SELECT count(*) AS n FROM nonces'),
      countRejection: p(`INSERT INTO rejection_counts (hour, code, n) VALUES (?, ?, ?)
        ON CONFLICT (hour, code) DO UPDATE SET n = n + excluded.n`),
      sampleRejection: p('INSERT INTO rejection_samples (at, ueid, code, detail, bytes, hash) VALUES (?, ?, ?, ?, ?, ?)'),
      trimSamples: p(`DELETE FROM rejection_samples WHERE at < ? OR id <= (SELECT max(id) FROM rejection_samples) - ?`),
      trimCounts: p('DELETE FROM rejection_counts WHERE hour < ?'),
      reportCounts: p('SELECT code, sum(n) AS n FROM rejection_counts WHERE hour >= ? GROUP BY code ORDER BY code'),
      reportSamples: p('SELECT at, ueid, code, detail, bytes, hash FROM rejection_samples ORDER BY id DESC LIMIT ?'),
      getNonce: p('SELECT expires_at, used_at FROM nonces WHERE ueid = ? AND nonce = ?'),
      useNonce: p('UPDATE nonces SET used_at = ? WHERE ueid = ? AND nonce = ? AND used_at IS NULL'),
      enroll: p(`INSERT OR REPLACE INTO gallery (subject, modality, template, template_format, model_sha256, enrolled_at) VALUES (?, ?, ?, ?, ?, ?)`),
      gallery: p('SELECT * FROM gallery WHERE subject = ? AND modality = ?'),
      verdict: p('SELECT * FROM verdicts WHERE att_hash = ?'),
      saveVerdict: p('INSERT OR IGNORE INTO verdicts (att_hash, att_id, verdict, created_at) VALUES (?, ?, ?, ?)'),
    };
  }

  registerDevice(d: Omit<DeviceRecord, 'status' | 'registeredAt' | 'revokedAt'>, now = Date.now()): void {
    this.s['register']!.run(d.ueid, d.kid, JSON.stringify(d.publicJwk), d.site, now);
  }

  revokeDevice(ueid: string, now = Date.now()): boolean {
    return this.s['revoke']!.run(now, ueid).changes > 0;
  }

  deviceByKid(kid: string): DeviceRecord | undefined {
    return toDevice(this.s['byKid']!.get(kid));
  }

  device(ueid: string): DeviceRecord | undefined {
    return toDevice(this.s['byId']!.get(ueid));
  }

  devices(): DeviceRecord[] {
    return this.s['all']!.all().map((r) => toDevice(r)!);
  }

  acceptSeq(ueid: string, seq: number, window: number): SeqCheck {
    return this.transaction(() => {
      const highest = this.lastSeq(ueid);
      if (seq <= highest - window) return 'too_old';
      if (this.s['markSeen']!.run(ueid, seq).changes === 0) return 'replayed';
      if (seq > highest) {
        this.s['advance']!.run(ueid, seq);
        // Seqs at or below the window's floor are refused by the comparison above: their rows can go.
        if (seq - window > 0 && seq % 64 === 0) this.s['pruneSeen']!.run(ueid, seq - window);
      }
      return 'ok';
    });
  }

  lastSeq(ueid: string): number {
    return (this.s['lastSeq']!.get(ueid) as { last_seq: number } | undefined)?.last_seq ?? 0;
  }

  issueNonce(ueid: string, nonce: string, expiresAt: number, opts: { now?: number; maxPerDevice?: number } = {}): void {
    const now = opts.now ?? Date.now();
    this.transaction(() => {
      // Expired nonces go (after a grace period, so a late attestation hears "expired", not "unknown"); a device
      // keeps at most maxPerDevice outstanding, the newest.
      this.s['pruneNonces']!.run(now - NONCE_GRACE_MS);
      this.s['issueNonce']!.run(ueid, nonce, expiresAt);
      this.s['capNonces']!.run(ueid, ueid, opts.maxPerDevice ?? 16);
    });
  }

  nonceCount(): number {
    return (this.s['countNonces']!.get() as { n: number }).n;
  }

  consumeNonce(ueid: string, nonce: string, now: number): NonceCheck {
    const row = this.s['getNonce']!.get(ueid, nonce) as { expires_at: number; used_at: number | null } | undefined;
    if (!row) return 'unknown';
    if (row.used_at !== null) return 'reused';
    if (row.expires_at < now) return 'expired';
    return this.s['useNonce']!.run(now, ueid, nonce).changes > 0 ? 'ok' : 'reused';
  }

  enroll(e: Omit<GalleryEntry, 'enrolledAt'>, now = Date.now()): void {
    this.s['enroll']!.run(e.subject, e.modality, this.cipher.seal(e.template, e), e.templateFormat, e.modelSha256, now);
  }

  galleryEntry(subject: string, modality: string): GalleryEntry | undefined {
    const r = this.s['gallery']!.get(subject, modality) as GalleryRow | undefined;
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

  noteRejections(counts: ReadonlyMap<string, number>, samples: readonly RejectionSample[], now: number): void {
    this.transaction(() => {
      const hour = Math.floor(now / HOUR_MS);
      for (const [code, n] of counts) this.s['countRejection']!.run(hour, code, n);
      for (const x of samples) this.s['sampleRejection']!.run(x.at, x.ueid, x.code, x.detail, x.bytes, x.hash);
      if (samples.length > 0) this.s['trimSamples']!.run(now - REJECTION_SAMPLE_DAYS * DAY_MS, REJECTION_SAMPLES_KEPT);
      if (counts.size > 0) this.s['trimCounts']!.run(hour - REJECTION_COUNT_DAYS * 24);
    });
  }

  rejectionReport(now = Date.now(), opts: { hours?: number; samples?: number } = {}): RejectionReport {
    const since = Math.floor(now / HOUR_MS) - (opts.hours ?? 24) + 1;
    const counts = Object.fromEntries((this.s['reportCounts']!.all(since) as Array<{ code: string; n: number }>).map((r) => [r.code, r.n]));
    const samples = this.s['reportSamples']!.all(opts.samples ?? 20) as RejectionSample[];
    return { sinceHour: since, counts, samples };
  }

  verdictFor(attHash: string): StoredVerdict | undefined {
    const r = this.s['verdict']!.get(attHash) as { att_hash: string; att_id: string; verdict: string; created_at: number } | undefined;
    return r ? { attHash: r.att_hash, attId: r.att_id, verdict: r.verdict, createdAt: r.created_at } : undefined;
  }

  saveVerdict(v: StoredVerdict): void {
    this.s['saveVerdict']!.run(v.attHash, v.attId, v.verdict, v.createdAt);
  }

  /** Manual transaction control, for a batch whose work awaits (signing) between statements. */
  begin(): void {
    this.db.exec('BEGIN IMMEDIATE');
  }

  commit(): void {
    this.db.exec('COMMIT');
  }

  rollback(): void {
    if (this.db.inTransaction) this.db.exec('ROLLBACK');
  }

  /** Runs fn atomically: in a transaction of its own, or as part of the caller's open one (which rolls back whole). */
  transaction<T>(fn: () => T): T {
    return this.db.inTransaction ? fn() : this.db.transaction(fn)();
  }

  close(): void {
    if (this.db.open) this.db.close();
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

function toDevice(row: unknown): DeviceRecord | undefined {
  if (!row) return undefined;
  const r = row as { ueid: string; kid: string; jwk: string; site: string; status: 'active' | 'revoked'; registered_at: number; revoked_at: number | null };
  return { ueid: r.ueid, kid: r.kid, publicJwk: JSON.parse(r.jwk) as JWK, site: r.site, status: r.status, registeredAt: r.registered_at, revokedAt: r.revoked_at };
}
