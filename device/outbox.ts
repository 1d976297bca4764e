/**
 * The kiosk's durable outbox: every attestation is on disk (SQLite, WAL, synchronous=FULL: the commit is fsync'd)
 * before anyone is told it was sent, and leaves only when its verdict arrives (end-to-end acknowledgement, not the
 * broker's PUBACK). Keyed by attestation id, so a retry after a crash or a duplicate enqueue is harmless.
 * Retries back off exponentially with full jitter. The outbox is bounded: past `maxEntries` or `maxBytes`
 * enqueue fails with OutboxFullError and the alarm callback fires (the kiosk must stop attesting, not drop).
 */
import Database from 'better-sqlite3';
import { BiokioskError } from '../protocol/errors.ts';
import { ensurePrivateDatabase, type NoticeSink } from '../protocol/private-files.ts';

export class OutboxFullError extends BiokioskError {
  constructor(entries: number, bytes: number, limits: { maxEntries: number; maxBytes: number }) {
    super('OutboxFull', `the outbox is full (${entries} attestations, ${bytes} bytes; limits ${limits.maxEntries} / ${limits.maxBytes}): no new attestations until verdicts drain it`, {
      kind: 'internal',
      details: { entries, bytes, ...limits },
    });
  }
}

export interface OutboxEntry {
  attId: string;
  seq: number;
  payload: Buffer;
  /** The key the verdict for this attestation is sealed with (null for entries written before verdicts were sealed). */
  replyKey: Buffer | null;
  createdAt: number;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
}

export interface BackoffPolicy {
  /** first retry delay, ms */
  baseMs: number;
  /** longest delay, ms */
  maxMs: number;
}

export interface OutboxOptions {
  maxEntries?: number;
  maxBytes?: number;
  backoff?: Partial<BackoffPolicy>;
  /** Called when the outbox refuses an entry, and when it crosses 90% of a limit. */
  onAlarm?: (alarm: { level: 'warning' | 'full'; entries: number; bytes: number }) => void;
  /** Randomness for jitter (tests pass a seeded one). */
  random?: () => number;
  /** Told when the file was looser than 0600 and has been tightened. */
  onNotice?: NoticeSink;
}

const DEFAULTS = { maxEntries: 100_000, maxBytes: 512 * 1024 * 1024, backoff: { baseMs: 2_000, maxMs: 60_000 } };

/** Full jitter: a uniformly random delay in [0, min(max, base * 2^(attempt-1))]; never below 10% of the cap. */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const cap = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(cap * (0.1 + 0.9 * random()));
}

export class Outbox {
  /** The connection, for tables that commit with the outbox's (the kiosk's tree heads). */
  readonly db: Database.Database;
  private readonly limits: { maxEntries: number; maxBytes: number };
  private readonly backoff: BackoffPolicy;
  private readonly random: () => number;
  private readonly onAlarm: OutboxOptions['onAlarm'];
  private entries = 0;
  private bytes = 0;
  private warned = false;
  private readonly stmt: Record<'insert' | 'remove' | 'due' | 'attempt' | 'get' | 'all' | 'reschedule', Database.Statement>;

  constructor(path: string, options: OutboxOptions = {}) {
    ensurePrivateDatabase(path, options.onNotice);
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS outbox (
      att_id TEXT PRIMARY KEY,
      seq INTEGER NOT NULL,
      payload BLOB NOT NULL,
      created_at INTEGER NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_at INTEGER NOT NULL,
      last_error TEXT,
      reply_key BLOB
    );
    CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at, seq);`);
    // Outboxes from before sealed verdicts lack the column: their entries get plain verdicts.
    const columns = (this.db.prepare('PRAGMA table_info(outbox)').all() as Array<{ name: string }>).map((c) => c.name);
    if (!columns.includes('reply_key')) this.db.exec('ALTER TABLE outbox ADD COLUMN reply_key BLOB');
    this.limits = { maxEntries: options.maxEntries ?? DEFAULTS.maxEntries, maxBytes: options.maxBytes ?? DEFAULTS.maxBytes };
    this.backoff = { ...DEFAULTS.backoff, ...options.backoff };
    this.random = options.random ?? Math.random;
    this.onAlarm = options.onAlarm;
    this.stmt = {
      insert: this.db.prepare('INSERT OR IGNORE INTO outbox (att_id, seq, payload, created_at, next_attempt_at, reply_key) VALUES (?, ?, ?, ?, ?, ?)'),
      remove: this.db.prepare('DELETE FROM outbox WHERE att_id = ? RETURNING length(payload) AS n'),
      due: this.db.prepare('SELECT * FROM outbox WHERE next_attempt_at <= ? ORDER BY seq LIMIT ?'),
      attempt: this.db.prepare('UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE att_id = ?'),
      reschedule: this.db.prepare('UPDATE outbox SET next_attempt_at = ? WHERE att_id = ?'),
      get: this.db.prepare('SELECT * FROM outbox WHERE att_id = ?'),
      all: this.db.prepare('SELECT * FROM outbox ORDER BY seq'),
    };
    const row = this.db.prepare('SELECT count(*) AS n, coalesce(sum(length(payload)), 0) AS b FROM outbox').get() as { n: number; b: number };
    this.entries = row.n;
    this.bytes = row.b;
  }

  /** Durably stores an attestation (with its verdict's reply key). Returns false if that id is already queued (idempotent). */
  enqueue(attId: string, seq: number, payload: Uint8Array, now = Date.now(), replyKey: Uint8Array | null = null): boolean {
    if (this.entries + 1 > this.limits.maxEntries || this.bytes + payload.length > this.limits.maxBytes) {
      this.onAlarm?.({ level: 'full', entries: this.entries, bytes: this.bytes });
      throw new OutboxFullError(this.entries, this.bytes, this.limits);
    }
    const changes = this.stmt.insert.run(attId, seq, Buffer.from(payload), now, now, replyKey ? Buffer.from(replyKey) : null).changes;
    if (changes === 0) return false;
    this.entries++;
    this.bytes += payload.length;
    if (!this.warned && (this.entries >= 0.9 * this.limits.maxEntries || this.bytes >= 0.9 * this.limits.maxBytes)) {
      this.warned = true;
      this.onAlarm?.({ level: 'warning', entries: this.entries, bytes: this.bytes });
    }
    return true;
  }

  /** Entries whose next attempt is due, oldest sequence first. */
  due(now = Date.now(), limit = 100): OutboxEntry[] {
    return (this.stmt.due.all(now, limit) as RawRow[]).map(fromRow);
  }

  /**
   * Records a send attempt and schedules the next one (backoff with jitter). Returns the next attempt time. Not
   * fsync'd: it runs before each publish, and lost in a power cut it only makes the entry due at once again.
   */
  attempted(attId: string, now = Date.now(), error: string | null = null): number {
    const row = this.stmt.get.get(attId) as RawRow | undefined;
    if (!row) return -1;
    const next = now + backoffDelay(row.attempts + 1, this.backoff, this.random);
    this.commitUnsynced(() => this.stmt.attempt.run(next, error, attId));
    return next;
  }

  /** Makes every entry due now (e.g. when the connection comes back). */
  retryAllNow(now = Date.now()): void {
    this.db.prepare('UPDATE outbox SET next_attempt_at = ?').run(now);
  }

  /**
   * The verdict for this attestation arrived: it leaves the outbox (with `alongside`, run in the same
   * transaction). Returns false if it was not there. Not fsync'd (synchronous=NORMAL for this one commit): lost in
   * a power cut, the attestation is sent again and gets its stored verdict again, so the wait is not worth it.
   */
  acknowledge(attId: string, alongside?: () => void): boolean {
    const row = this.commitUnsynced(() => {
      const r = this.stmt.remove.get(attId) as { n: number } | undefined;
      if (r) alongside?.();
      return r;
    });
    if (!row) return false;
    this.entries--;
    this.bytes -= row.n;
    if (this.entries < 0.8 * this.limits.maxEntries && this.bytes < 0.8 * this.limits.maxBytes) this.warned = false;
    return true;
  }

  /**
   * Runs `fn` in one transaction whose commit does not wait for the disk (synchronous=NORMAL): for writes that
   * may be lost in a power cut. They are not lost on their own: the WAL is one file, so the next fsync'd commit
   * (an enqueue) makes them durable too.
   */
  commitUnsynced<T>(fn: () => T): T {
    this.db.pragma('synchronous = NORMAL');
    try {
      return this.db.transaction(fn)();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  get(attId: string): OutboxEntry | undefined {
    const row = this.stmt.get.get(attId) as RawRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  all(): OutboxEntry[] {
    return (this.stmt.all.all() as RawRow[]).map(fromRow);
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.entries, bytes: this.bytes };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

interface RawRow {
  att_id: string;
  seq: number;
  payload: Buffer;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  reply_key: Buffer | null;
}

function fromRow(r: RawRow): OutboxEntry {
  return { attId: r.att_id, seq: r.seq, payload: r.payload, replyKey: r.reply_key, createdAt: r.created_at, attempts: r.attempts, nextAttemptAt: r.next_attempt_at, lastError: r.last_error };
}
