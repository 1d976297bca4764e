/**
 * The witness's memory: for each log origin, the latest checkpoint it cosigned. It is what makes a witness worth
 * anything: a cosignature says "as of this time, this is the largest tree I have seen consistent with all the
 * earlier ones", so the record may only move forward, and must be on disk before a cosignature leaves.
 *
 * SPEC: https://c2sp.org/tlog-witness ("For each log, uniquely identified by its origin line, the witness is only
 *       required to keep track of the latest checkpoint it observed and verified"; "The witness MUST persist the
 *       new checkpoint before responding")
 *
 * DIR/witness-state.json, replaced atomically (temp file, fsync, rename, fsync of the folder), mode 0600 in a 0700
 * folder. DIR/witness.lock holds the pid of the one process allowed to write it: two writers, each with its own
 * view in memory, could roll each other back.
 */
import { randomBytes } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { link, open, readFile, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BiokioskError } from '../protocol/errors.ts';
import { parseCheckpointText, parseNote } from '../protocol/note.ts';
import { ensurePrivateDir, ensurePrivateFile, type NoticeSink } from '../protocol/private-files.ts';

export const STATE_FILE = 'witness-state.json';
export const LOCK_FILE = 'witness.lock';
const STATE_VERSION = 1;

/** The latest checkpoint the witness cosigned for one log. */
export interface CosignedCheckpoint {
  origin: string;
  treeSize: number;
  /** 32 bytes. */
  rootHash: Buffer;
  /** The checkpoint text and the log signature lines the witness verified (no cosignatures). */
  note: string;
  /** This witness's cosignature line over the text (ends with a newline). */
  cosignature: string;
  /** The cosignature's timestamp, POSIX seconds. */
  cosignedAt: number;
}

/** The state folder cannot be read, written or locked: never the client's fault. */
export class WitnessStateError extends BiokioskError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('WitnessState', message, { kind: 'internal', ...options });
  }
}

/** The full cosigned note: what a monitor or `witness latest` hands out. */
export function cosignedNote(c: CosignedCheckpoint): string {
  return c.note + c.cosignature;
}

export class WitnessState {
  private writes: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly dir: string,
    private records: ReadonlyMap<string, CosignedCheckpoint>,
    private readonly lockPath: string | undefined,
  ) {}

  /**
   * Loads DIR's state (empty when there is none yet). A writer takes DIR/witness.lock; `readOnly` (for
   * `witness latest` next to a running witness) does not, and cannot commit.
   */
  static async open(dir: string, opts: { readOnly?: boolean; onNotice?: NoticeSink } = {}): Promise<WitnessState> {
    // A reader does not create the folder it was pointed at (a typo would otherwise leave an empty one).
    if (opts.readOnly && !existsSync(dir)) return new WitnessState(dir, new Map(), undefined);
    ensurePrivateDir(dir, opts.onNotice);
    const lockPath = opts.readOnly ? undefined : await takeLock(dir);
    try {
      return new WitnessState(dir, await loadRecords(join(dir, STATE_FILE), opts.onNotice), lockPath);
    } catch (e) {
      if (lockPath) await rm(lockPath, { force: true });
      throw e;
    }
  }

  get(origin: string): CosignedCheckpoint | undefined {
    return this.records.get(origin);
  }

  origins(): string[] {
    return [...this.records.keys()];
  }

  /**
   * Records a new cosigned checkpoint and resolves once it is on disk. Refuses a smaller tree than the one on
   * record (the caller checked consistency; this is the last line of defence). The in-memory view changes only
   * after the file did, so a failed write leaves both at the old state.
   */
  commit(record: CosignedCheckpoint): Promise<void> {
    const run = this.writes.then(async () => {
      if (this.closed || this.lockPath === undefined) throw new WitnessStateError(`the witness state in ${this.dir} is ${this.closed ? 'closed' : 'open read-only'}`);
      const prev = this.records.get(record.origin);
      if (prev && record.treeSize < prev.treeSize) {
        throw new WitnessStateError(`refusing to move the state of ${record.origin} back from size ${prev.treeSize} to ${record.treeSize}`);
      }
      const next = new Map(this.records);
      next.set(record.origin, { ...record, rootHash: Buffer.from(record.rootHash) });
      await writePrivateFileAtomic(join(this.dir, STATE_FILE), serialise(next));
      this.records = next;
    });
    this.writes = run.catch(() => undefined);
    return run;
  }

  /** Waits for pending writes and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writes;
    if (this.lockPath) await rm(this.lockPath, { force: true });
  }
}

// ---- the file ---------------------------------------------------------------------------------------------

interface StoredRecord {
  origin: string;
  treeSize: number;
  rootHash: string;
  note: string;
  cosignature: string;
  cosignedAt: number;
}

function serialise(records: ReadonlyMap<string, CosignedCheckpoint>): string {
  const logs: Record<string, StoredRecord> = {};
  for (const [origin, r] of records) {
    logs[origin] = { origin, treeSize: r.treeSize, rootHash: r.rootHash.toString('base64'), note: r.note, cosignature: r.cosignature, cosignedAt: r.cosignedAt };
  }
  return JSON.stringify({ version: STATE_VERSION, logs }, null, 2) + '\n';
}

async function loadRecords(path: string, onNotice?: NoticeSink): Promise<Map<string, CosignedCheckpoint>> {
  ensurePrivateFile(path, onNotice, { onlyIfExists: true });
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new WitnessStateError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  // A state file that does not parse is never treated as empty: that would let the witness go back to size 0.
  const bad = (why: string) => new WitnessStateError(`${path} is damaged (${why}); refusing to start rather than forget what was cosigned`, { details: { path } });
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  const d = doc as { version?: unknown; logs?: unknown };
  if (typeof d !== 'object' || d === null || d.version !== STATE_VERSION || typeof d.logs !== 'object' || d.logs === null) throw bad(`not a version ${STATE_VERSION} witness state`);
  const out = new Map<string, CosignedCheckpoint>();
  for (const [origin, raw] of Object.entries(d.logs as Record<string, unknown>)) {
    const r = raw as Partial<StoredRecord>;
    if (typeof r.note !== 'string' || typeof r.cosignature !== 'string' || typeof r.rootHash !== 'string' || typeof r.cosignedAt !== 'number') throw bad(`the record of ${origin} is incomplete`);
    let cp;
    try {
      cp = parseCheckpointText(parseNote(r.note).text);
      parseNote(`x\n\n${r.cosignature}`);
    } catch (e) {
      throw bad(`the record of ${origin}: ${(e as Error).message}`);
    }
    if (cp.origin !== origin || r.origin !== origin || cp.treeSize !== r.treeSize || cp.rootHash.toString('base64') !== r.rootHash) throw bad(`the record of ${origin} does not match its note`);
    out.set(origin, { origin, treeSize: cp.treeSize, rootHash: cp.rootHash, note: r.note, cosignature: r.cosignature, cosignedAt: r.cosignedAt });
  }
  return out;
}

/**
 * Writes `data` to `path` so that a crash leaves either the old file or the new one, never a mix: a 0600 temp
 * file in the same folder, fsync, rename over the target (or, with `exclusive`, link it there, which fails when
 * the target exists), fsync of the folder so the rename itself survives. Returns false when `exclusive` and the
 * target already existed.
 */
export async function writePrivateFileAtomic(path: string, data: string, opts: { exclusive?: boolean } = {}): Promise<boolean> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    if (opts.exclusive) {
      try {
        await link(tmp, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw e;
      }
    } else {
      await rename(tmp, path);
    }
  } finally {
    await rm(tmp, { force: true });
  }
  await fsyncDir(dir);
  return true;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// ---- the lock ---------------------------------------------------------------------------------------------

/** DIR/witness.lock with this pid; a lock left by a process that is gone is taken over. */
async function takeLock(dir: string): Promise<string> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    if (await writePrivateFileAtomic(path, `${process.pid}\n`, { exclusive: true })) return path;
    const holder = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isSafeInteger(holder) && holder > 0 && isAlive(holder)) {
      throw new BiokioskError('WitnessBusy', `another witness process (pid ${holder}) is using ${dir}; one process per state folder`, { details: { dir, pid: holder } });
    }
    await unlink(path).catch(() => undefined);
  }
  throw new WitnessStateError(`cannot take the lock ${path}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
