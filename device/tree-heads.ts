/**
 * The audit-log checkpoints a kiosk has accepted: the latest one, which its attestations name so that each verdict
 * proves the log still extends it, and the others it saw, which `biokiosk kiosk heads` exports for
 * `verifier audit --known-heads`. Bounded: the oldest beyond `maxHeads` are forgotten (the latest never is).
 * A table in the outbox's database (outbox.db): a checkpoint is accepted in the same transaction that takes its
 * attestation out of the outbox. (The `tree_heads` table of builds before checkpoints held heads of a format that
 * no longer exists; it is dropped, and the kiosk's next attestation starts a new chain.)
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ensurePrivateDatabase, type NoticeSink } from '../protocol/private-files.ts';
import type { HeldHeads, KeptHead } from './receipts.ts';

export interface ExportedHead extends KeptHead {
  /** Accepted through a verified chain from the kiosk's earlier latest (or its first head). */
  linked: boolean;
  acceptedAt: number;
}

export class TreeHeadStore implements HeldHeads {
  private readonly s: Record<'latest' | 'at' | 'put' | 'link' | 'all' | 'trim', Database.Statement>;

  /** On an open database (the outbox's); creates the table when missing. */
  constructor(
    private readonly db: Database.Database,
    private readonly maxHeads = 1000,
  ) {
    this.db.exec(`DROP TABLE IF EXISTS tree_heads;
      CREATE TABLE IF NOT EXISTS log_checkpoints (tree_size INTEGER PRIMARY KEY, root_hash TEXT NOT NULL, note TEXT NOT NULL,
      witnesses TEXT NOT NULL, linked INTEGER NOT NULL, accepted_at INTEGER NOT NULL)`);
    this.s = {
      latest: this.db.prepare('SELECT * FROM log_checkpoints WHERE linked = 1 ORDER BY tree_size DESC LIMIT 1'),
      at: this.db.prepare('SELECT * FROM log_checkpoints WHERE tree_size = ?'),
      put: this.db.prepare(`INSERT INTO log_checkpoints (tree_size, root_hash, note, witnesses, linked, accepted_at) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (tree_size) DO UPDATE SET note = excluded.note, witnesses = excluded.witnesses WHERE length(excluded.witnesses) > length(log_checkpoints.witnesses)`),
      link: this.db.prepare('UPDATE log_checkpoints SET linked = 1 WHERE tree_size = ?'),
      all: this.db.prepare('SELECT * FROM log_checkpoints ORDER BY tree_size'),
      // Below the maxHeads-th largest size, but never the latest linked head: both found by walking the key's
      // index from the top, so a trim costs about the same with a thousand heads kept as with ten.
      trim: this.db.prepare(`DELETE FROM log_checkpoints WHERE tree_size < (SELECT tree_size FROM log_checkpoints ORDER BY tree_size DESC LIMIT 1 OFFSET ?)
        AND tree_size <> coalesce((SELECT tree_size FROM log_checkpoints WHERE linked = 1 ORDER BY tree_size DESC LIMIT 1), -1)`),
    };
  }

  latest(): KeptHead | undefined {
    return toHead(this.s.latest.get());
  }

  at(treeSize: number): KeptHead | undefined {
    return toHead(this.s.at.get(treeSize));
  }

  /** Records an accepted head; `advances` makes it part of the linked chain (the latest when it is the largest). */
  accept(head: KeptHead, advances: boolean, now = Date.now()): void {
    // Most verdicts of a batch share one checkpoint: nothing to write for those after the first (unless this copy
    // carries more cosignatures).
    const known = this.s.at.get(head.treeSize) as Row | undefined;
    const witnesses = JSON.stringify(head.witnesses);
    if (known && (known.linked === 1 || !advances) && witnesses.length <= known.witnesses.length) return;
    this.db.transaction(() => {
      this.s.put.run(head.treeSize, head.rootHash, head.note, witnesses, advances ? 1 : 0, now);
      if (advances) this.s.link.run(head.treeSize);
      this.s.trim.run(Math.max(0, this.maxHeads - 1));
    })();
  }

  /** The size the next attestation names (0: none accepted yet). */
  latestSize(): number {
    return this.latest()?.treeSize ?? 0;
  }

  all(): ExportedHead[] {
    return (this.s.all.all() as Row[]).map((r) => ({ ...toHead(r)!, linked: r.linked === 1, acceptedAt: r.accepted_at }));
  }
}

interface Row {
  tree_size: number;
  root_hash: string;
  note: string;
  witnesses: string;
  linked: number;
  accepted_at: number;
}

function toHead(row: unknown): KeptHead | undefined {
  if (!row) return undefined;
  const r = row as Row;
  return { treeSize: r.tree_size, rootHash: r.root_hash, note: r.note, witnesses: JSON.parse(r.witnesses) as string[] };
}

/** The tree heads of a kiosk's state folder, on their own (the CLI's export), without the rest of the kiosk. */
export function openTreeHeads(dir: string, onNotice?: NoticeSink): { store: TreeHeadStore; close(): void } {
  const path = join(dir, 'outbox.db');
  ensurePrivateDatabase(path, onNotice);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  return { store: new TreeHeadStore(db), close: () => db.close() };
}
