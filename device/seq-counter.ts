/**
 * The attestation `seq` of the software key store: a counter in SQLite (synchronous=FULL) that only grows; each
 * value is on disk before it is used. (With the TPM key store, a later issue, seq comes from a TPM NV counter, so
 * a restored disk image cannot rewind it; this one can be rewound that way, and the verifier's replay check then
 * refuses the repeated values.)
 */
import Database from 'better-sqlite3';
import { ensurePrivateDatabase, type NoticeSink } from '../protocol/private-files.ts';

export interface SeqSource {
  next(): Promise<number>;
}

export class SqliteSeqCounter implements SeqSource {
  private readonly db: Database.Database;
  private readonly bump: Database.Statement;

  constructor(path: string, onNotice?: NoticeSink) {
    ensurePrivateDatabase(path, onNotice);
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec('CREATE TABLE IF NOT EXISTS seq_counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)');
    this.db.exec('INSERT OR IGNORE INTO seq_counter (id, value) VALUES (1, 0)');
    this.bump = this.db.prepare('UPDATE seq_counter SET value = value + 1 WHERE id = 1 RETURNING value');
  }

  async next(): Promise<number> {
    return (this.bump.get() as { value: number }).value;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
