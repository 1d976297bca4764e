/**
 * The attestation `seq` of the software key store: a counter that only grows, in a table of the outbox's database
 * (outbox.db). Each value is on disk before an attestation carrying it leaves the kiosk, without a disk wait of
 * its own: attestations leave only from the outbox, and the enqueue's fsync'd commit that follows the count makes
 * it durable too (one write-ahead log). A power cut between the two can only hand the same value out again, to an
 * attestation that replaces the one never sent.
 *
 * With the TPM key store seq comes from a TPM NV counter instead (tpm-seq-counter.ts), so a restored disk image
 * cannot rewind it; this one can be rewound that way, and the verifier's replay check then refuses the repeated
 * values. Builds before kept this counter in its own file (state.db): its value is taken over once.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ensurePrivateDatabase, type NoticeSink } from '../protocol/private-files.ts';
import type { Outbox } from './outbox.ts';

export interface SeqSource {
  next(): Promise<number>;
}

export class SqliteSeqCounter implements SeqSource {
  private readonly bump: Database.Statement;

  /** On the outbox's database; `legacyPath` is the state.db of earlier builds, read when the table is new. */
  constructor(
    private readonly outbox: Outbox,
    legacyPath?: string,
    onNotice?: NoticeSink,
  ) {
    const db = outbox.db;
    db.exec('CREATE TABLE IF NOT EXISTS seq_counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)');
    if (!db.prepare('SELECT 1 FROM seq_counter WHERE id = 1').get()) {
      const start = legacyPath && existsSync(legacyPath) ? legacyValue(legacyPath, onNotice) : 0;
      // The one fsync'd write of the counter: a value taken over must not be lost.
      db.prepare('INSERT INTO seq_counter (id, value) VALUES (1, ?)').run(start);
    }
    this.bump = db.prepare('UPDATE seq_counter SET value = value + 1 WHERE id = 1 RETURNING value');
  }

  async next(): Promise<number> {
    return this.outbox.commitUnsynced(() => (this.bump.get() as { value: number }).value);
  }
}

/** The counter an earlier build kept in state.db (0 when that file has none). */
function legacyValue(path: string, onNotice?: NoticeSink): number {
  ensurePrivateDatabase(path, onNotice);
  const db = new Database(path);
  try {
    const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'seq_counter'").get();
    const row = table ? (db.prepare('SELECT value FROM seq_counter WHERE id = 1').get() as { value: number } | undefined) : undefined;
    return row?.value ?? 0;
  } finally {
    db.close();
  }
}
