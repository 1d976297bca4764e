/**
 * State folders and files that hold secrets (keys, the gallery, outboxes, audit logs): folders 0700, files 0600,
 * whatever order the commands that create them run in and whatever the umask. Shared by the kiosk and the
 * verifier (both keep such state); synchronous because SQLite stores open synchronously.
 *
 * A folder or file of ours that is looser is tightened, and the caller is told so (`onNotice`); one that
 * belongs to another user, or is not what it should be (a symlink, a FIFO where a file belongs), is refused.
 */
import { chmodSync, closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, type Stats } from 'node:fs';
import { BiokioskError } from './errors.ts';

export type NoticeSink = (message: string) => void;

const mode = (st: Stats) => (st.mode & 0o777).toString(8).padStart(4, '0');

function checkOwner(path: string, st: Stats): void {
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new BiokioskError('StateNotOurs', `${path} belongs to user ${st.uid}, not to this process (${uid}): refusing to keep secrets there`, { details: { path } });
  }
}

/** Creates `dir` (and missing parents) as 0700, or checks and tightens an existing one. */
export function ensurePrivateDir(dir: string, onNotice?: NoticeSink): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new BiokioskError('StateNotADirectory', `${dir} is not a directory${st.isSymbolicLink() ? ' (a symbolic link)' : ''}: refusing to keep state there`, { details: { path: dir } });
  checkOwner(dir, st);
  if ((st.mode & 0o077) !== 0) {
    chmodSync(dir, 0o700);
    onNotice?.(`${dir} was mode ${mode(st)} (group or others could enter it); tightened to 0700`);
  }
}

/**
 * Makes sure `path` is a regular file of ours with mode 0600: created empty when missing (O_EXCL, never through
 * a symlink), tightened when looser. With `onlyIfExists`, a missing file is left missing (SQLite's -wal and -shm).
 */
export function ensurePrivateFile(path: string, onNotice?: NoticeSink, opts: { onlyIfExists?: boolean } = {}): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      if (opts.onlyIfExists) return;
      try {
        closeSync(openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
      } catch (e2) {
        if ((e2 as NodeJS.ErrnoException).code !== 'EEXIST') throw e2;
      }
      chmodSync(path, 0o600);
      return ensurePrivateFile(path, onNotice, opts);
    }
    if (code === 'ELOOP') throw new BiokioskError('StateNotAFile', `${path} is a symbolic link: refusing to keep secrets through it`, { details: { path } });
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new BiokioskError('StateNotAFile', `${path} is not a regular file: refusing to use it`, { details: { path } });
    checkOwner(path, st);
    if ((st.mode & 0o077) !== 0) {
      chmodSync(path, 0o600);
      onNotice?.(`${path} was mode ${mode(st)} (group or others could read it); tightened to 0600`);
    }
  } finally {
    closeSync(fd);
  }
}

/** A SQLite database file and its WAL companions, all 0600 (SQLite gives new -wal/-shm files the main file's mode). */
export function ensurePrivateDatabase(path: string, onNotice?: NoticeSink): void {
  ensurePrivateFile(path, onNotice);
  for (const suffix of ['-wal', '-shm', '-journal']) ensurePrivateFile(path + suffix, onNotice, { onlyIfExists: true });
}
