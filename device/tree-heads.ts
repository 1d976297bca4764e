/**
 * The audit-log tree heads a kiosk has accepted: the latest one, which its attestations name so that each verdict
 * proves the log still extends it, and the others it saw, which `biokiosk kiosk heads` exports for
 * `verifier audit --known-heads`. Bounded: the oldest heads beyond `maxHeads` are forgotten (the latest never is).
 * A table in the outbox's database (outbox.db): a head is accepted in the same transaction that takes its
 * attestation out of the outbox.
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
    this.db.exec(`CREATE TABLE IF NOT EXISTS tree_heads (tree_size INTEGER PRIMARY KEY, root_hash TEXT NOT NULL, timestamp INTEGER NOT NULL,
      signature TEXT NOT NULL, linked INTEGER NOT NULL, accepted_at INTEGER NOT NULL)`);
    this.s = {
      latest: this.db.prepare('SELECT * FROM tree_heads WHERE linked = 1 ORDER BY tree_size DESC LIMIT 1'),
      at: this.db.prepare('SELECT * FROM tree_heads WHERE tree_size = ?'),
      put: this.db.prepare('INSERT OR IGNORE INTO tree_heads (tree_size, root_hash, timestamp, signature, linked, accepted_at) VALUES (?, ?, ?, ?, ?, ?)'),
      link: this.db.prepare('UPDATE tree_heads SET linked = 1 WHERE tree_size = ?'),
      all: this.db.prepare('SELECT * FROM tree_heads ORDER BY tree_size'),
      trim: this.db.prepare(`DELETE FROM tree_heads WHERE tree_size NOT IN (SELECT tree_size FROM tree_heads ORDER BY tree_size DESC LIMIT ?)
        AND tree_size <> coalesce((SELECT max(tree_size) FROM tree_heads WHERE linked = 1), -1)`),
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
    // Most verdicts of a batch share one tree head: nothing to write (and no fsync) for those after the first.
    const known = this.s.at.get(head.treeSize) as Row | undefined;
    if (known && (known.linked === 1 || !advances)) return;
    this.db.transaction(() => {
      this.s.put.run(head.treeSize, head.rootHash, head.timestamp, head.signature, advances ? 1 : 0, now);
      if (advances) this.s.link.run(head.treeSize);
      this.s.trim.run(this.maxHeads);
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
  timestamp: number;
  signature: string;
  linked: number;
  accepted_at: number;
}

function toHead(row: unknown): KeptHead | undefined {
  if (!row) return undefined;
  const r = row as Row;
  return { treeSize: r.tree_size, rootHash: r.root_hash, timestamp: r.timestamp, signature: r.signature };
}

/** The tree heads of a kiosk's state folder, on their own (the CLI's export), without the rest of the kiosk. */
export function openTreeHeads(dir: string, onNotice?: NoticeSink): { store: TreeHeadStore; close(): void } {
  const path = join(dir, 'outbox.db');
  ensurePrivateDatabase(path, onNotice);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  return { store: new TreeHeadStore(db), close: () => db.close() };
}
