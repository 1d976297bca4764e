/**
 * A real PostgreSQL server for tests: a fresh cluster (initdb) in a temp folder, a superuser `biokiosk` with a
 * random password (SCRAM-SHA-256 on TCP and on the unix socket), a free port, optionally inside a network
 * namespace (test/helpers/netns.ts) listening on that host's address. Restartable on the same port and data dir,
 * and killable (SIGKILL) for crash-recovery tests. fsync stays on: tests here are about durability.
 *
 * PostgreSQL refuses to run as root, so as root initdb and postgres run as the Debian user `postgres` (runuser).
 * Fails (never skips) when PostgreSQL is missing: `npm test` installs the Debian package postgresql
 * (scripts/test-env.mjs). Debian's own cluster on 5432 (auto-started after install) is left alone.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { chown, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './mosquitto.ts';

const run = promisify(execFile);

export class PostgresError extends Error {
  override name = 'PostgresError';
}

export interface PgServer {
  /** The address clients connect to (the listen address; 127.0.0.1 for a wildcard). */
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The namespace the server runs in, if any. */
  readonly netns: string | undefined;
  /** Holds the unix socket; a filesystem socket works across network namespaces (used for admin and readiness). */
  readonly socketDir: string;
  readonly dataDir: string;
  /** postgres's (and runuser's) stderr, all starts appended: start/stop/recovery LOG lines, warnings, errors. */
  readonly logFile: string;
  /** Whether a postmaster started by this helper is up. */
  readonly running: boolean;
  /** postgres://user:password@host:port/database (default database `postgres`). */
  url(database?: string): string;
  /** CREATE DATABASE (over the unix socket); returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Starts the server on the same port and data dir; resolves when it accepts connections. No-op when running. */
  start(): Promise<void>;
  /** Fast shutdown (SIGINT: abort transactions, checkpoint, exit). No-op when stopped. */
  stop(): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
  /** SIGKILL the postmaster and its children at once, as a crash would; start() then runs crash recovery. */
  kill(): Promise<void>;
  /** Stops the server and removes the temp folder. Safe to call twice. */
  cleanup(): Promise<void>;
}

export interface StartPostgresOptions {
  /** listen_addresses; default 127.0.0.1. */
  listen?: string;
  /** Default: a free port. */
  port?: number;
  /** Run the server inside this network namespace (ip netns exec). */
  netns?: string;
}

const SUPERUSER = 'biokiosk';

/** The bin folder of the highest PostgreSQL under /usr/lib/postgresql (Debian's layout; not on PATH). */
export function pgBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(join(root, v, 'bin', 'postgres')) && existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new PostgresError(
      'PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `npm test` (it installs the Debian package postgresql) or apt-get install postgresql',
    );
  }
  return join(root, versions[0]!, 'bin');
}

function findBinary(names: string[], pkg: string, what: string): string {
  for (const p of names) if (existsSync(p)) return p;
  throw new PostgresError(`${what} is not installed: apt-get install ${pkg}`);
}

/** Who runs initdb and postgres: ourselves, or as root the unprivileged `postgres` user (postgres refuses root). */
async function serverUser(): Promise<{ runuser: string; uid: number; gid: number } | null> {
  if (process.getuid?.() !== 0) return null;
  const runuser = findBinary(['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'], 'util-linux', 'runuser');
  try {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    return { runuser, uid, gid };
  } catch {
    throw new PostgresError(
      'running as root, PostgreSQL must run as the user `postgres`, which does not exist: apt-get install postgresql creates it',
    );
  }
}

/** Alive and not a zombie. */
function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** All descendants of pid (runuser's postgres, its backends, checkpointer, walwriter, ...), from /proc. */
function descendantsOf(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const [c, pp] of parent) if (pp === p && !out.includes(c)) (out.push(c), queue.push(c));
  }
  return out;
}

/**
 * SIGKILLs the postmaster and everything below it at once. Backends call setsid(), so a process-group kill would
 * miss them; they are listed before the postmaster dies (after that they are reparented).
 */
function sigkillTree(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** The postmaster's pid: the first line of postmaster.pid. */
function readPidFile(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function tail(file: string, chars = 3000): string {
  try {
    return readFileSync(file, 'utf8').slice(-chars).trim() || '(empty)';
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Servers not yet cleaned up, for the process-exit fallback (synchronous: SIGKILL and remove the folder).
const live = new Set<() => void>();
let exitHookInstalled = false;

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgServer> {
  const bin = pgBinDir();
  const user = await serverUser();
  const ip = opts.netns ? findBinary(['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'], 'iproute2', '`ip`') : '';
  const listen = opts.listen ?? '127.0.0.1';
  const first = listen.split(',')[0]!.trim();
  const host = first === '*' || first === '0.0.0.0' || first === '' ? '127.0.0.1' : first === '::' ? '::1' : first;
  // A free port in the root namespace is free in a fresh namespace too; never 5432 (Debian's own cluster).
  const port = opts.port ?? (await freePort());
  const password = randomBytes(18).toString('base64url');

  const dir = await mkdtemp(join(tmpdir(), 'bk-pg-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const pwfile = join(dir, 'pwfile');
  if (user) await chown(dir, user.uid, user.gid);
  await writeFile(pwfile, password + '\n', { mode: 0o600 });
  if (user) await chown(pwfile, user.uid, user.gid);

  const asServer = (cmd: string, args: string[]): [string, string[]] =>
    user ? [user.runuser, ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];

  try {
    const [cmd, args] = asServer(join(bin, 'initdb'), [
      '-D', dataDir,
      '-U', SUPERUSER,
      '-A', 'scram-sha-256',
      `--pwfile=${pwfile}`,
      '-E', 'UTF8',
      '--no-locale',
      // Only initdb's own final flush of the fresh cluster is skipped (saves seconds); the server runs with fsync on.
      '--no-sync',
      '--no-instructions',
    ]);
    await run(cmd, args, { cwd: dir, timeout: 60_000 });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    await rm(dir, { recursive: true, force: true });
    throw new PostgresError(
      `initdb failed: ${(err.stderr || err.stdout || err.message).trim()}` +
        (user ? `\n(it runs as the user postgres, which must be able to reach ${dir}; TMPDIR=${tmpdir()})` : ''),
    );
  }
  await unlink(pwfile);
  // initdb's pg_hba.conf allows TCP from loopback only; other namespace hosts must get in too, with a password.
  await writeFile(
    join(dataDir, 'pg_hba.conf'),
    ['local all all scram-sha-256', 'host all all 0.0.0.0/0 scram-sha-256', 'host all all ::/0 scram-sha-256', ''].join('\n'),
  );

  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let postmaster: number | null = null;
  let cleaned = false;

  const adminConfig = (database = 'postgres'): pg.ClientConfig => ({
    host: dir,
    port,
    user: SUPERUSER,
    password,
    database,
    connectionTimeoutMillis: 2_000,
  });

  const waitReady = async (proc: ChildProcess, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new PostgresError(`postgres exited (${proc.exitCode ?? proc.signalCode}) during startup; ${logFile}:\n${tail(logFile)}`);
      }
      const client = new pg.Client(adminConfig());
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('SELECT 1');
        return;
      } catch (e) {
        // ENOENT (no socket yet), 57P03 (starting up / in recovery): keep waiting.
        last = (e as Error).message;
      } finally {
        await client.end().catch(() => undefined);
      }
      if (Date.now() > deadline) {
        throw new PostgresError(`postgres did not accept connections within ${timeoutMs} ms (last: ${last}); ${logFile}:\n${tail(logFile)}`);
      }
      await sleep(100);
    }
  };

  const start = async (): Promise<void> => {
    if (cleaned) throw new PostgresError('this PostgreSQL was cleaned up');
    if (child) return;
    const settings = {
      listen_addresses: listen,
      unix_socket_directories: dir,
      fsync: 'on',
      synchronous_commit: 'on',
      max_connections: '100',
      shared_buffers: '64MB',
      // Server-log ranking puts LOG above WARNING: start, stop and recovery lines stay, chatter goes.
      log_min_messages: 'warning',
      // After a crash, startup first fsyncs every file of the data dir one by one (~1.5 s here); one syncfs() of
      // the file system is as durable and takes ~0.1 s.
      recovery_init_sync_method: 'syncfs',
      // stderr goes to logFile (opened by us, so it works as root and inside a namespace).
      logging_collector: 'off',
    };
    let [cmd, args] = asServer(join(bin, 'postgres'), [
      '-D', dataDir,
      '-p', String(port),
      ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    ]);
    if (opts.netns) [cmd, args] = [ip, ['netns', 'exec', opts.netns, cmd, ...args]];
    const fd = openSync(logFile, 'a');
    let proc: ChildProcess;
    try {
      proc = spawn(cmd, args, { cwd: dir, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    child = proc;
    exited = new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.once('error', () => resolve());
    });
    proc.once('exit', () => {
      if (child === proc) {
        child = null;
        postmaster = null;
      }
    });
    try {
      await waitReady(proc, 30_000);
      // With runuser in between, our child is runuser, not the postmaster: its pid is in postmaster.pid.
      postmaster = readPidFile(dataDir);
      if (postmaster === null) throw new PostgresError(`postgres accepts connections but ${dataDir}/postmaster.pid has no pid`);
    } catch (e) {
      await killNow();
      throw e;
    }
  };

  const killNow = async (): Promise<void> => {
    const proc = child;
    if (!proc || proc.pid === undefined) return;
    // Without runuser our child is the postmaster itself; with it, the postmaster is runuser's child.
    const server = user ? descendantsOf(proc.pid) : [proc.pid, ...descendantsOf(proc.pid)];
    const master = user ? server[0] : proc.pid;
    sigkillTree(server);
    // runuser reaps the postmaster and exits. Kill runuser only if it hangs: an unreaped postmaster zombie keeps
    // its pid alive, and the next postmaster then refuses to start ("lock file postmaster.pid already exists").
    if (!(await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]))) {
      proc.kill('SIGKILL');
      await exited;
    }
    // The next postmaster also refuses to start while old backends still hold the shared memory; exited ones
    // (zombies waiting for init to reap them) have released it.
    const deadline = Date.now() + 10_000;
    const stillThere = () => server.filter((p) => (p === master ? existsSync(`/proc/${p}`) : processAlive(p)));
    while (stillThere().length > 0) {
      if (Date.now() > deadline) throw new PostgresError(`PostgreSQL processes ${stillThere().join(', ')} survived SIGKILL`);
      await sleep(20);
    }
    child = null;
    postmaster = null;
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    if (!proc) return;
    if (postmaster === null) return killNow();
    process.kill(postmaster, 'SIGINT'); // fast shutdown
    const done = await Promise.race([exited.then(() => true), sleep(30_000).then(() => false)]);
    if (!done) {
      await killNow();
      throw new PostgresError(`postgres did not shut down within 30 s (killed); ${logFile}:\n${tail(logFile)}`);
    }
    child = null;
    postmaster = null;
  };

  const exitCleanup = (): void => {
    if (child?.pid !== undefined) sigkillTree([child.pid, ...descendantsOf(child.pid)]);
    rmSync(dir, { recursive: true, force: true });
  };
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const f of live) f();
    });
  }
  live.add(exitCleanup);

  const server: PgServer = {
    host,
    port,
    user: SUPERUSER,
    password,
    netns: opts.netns,
    socketDir: dir,
    dataDir,
    logFile,
    get running() {
      return child !== null && postmaster !== null;
    },
    url(database = 'postgres') {
      const h = host.includes(':') ? `[${host}]` : host;
      return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@${h}:${port}/${encodeURIComponent(database)}`;
    },
    async createDatabase(name) {
      if (name.length === 0 || name.length > 63 || name.includes('\0')) throw new PostgresError(`bad database name ${JSON.stringify(name)}`);
      const client = new pg.Client(adminConfig());
      client.on('error', () => undefined);
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      } finally {
        await client.end().catch(() => undefined);
      }
      return server.url(name);
    },
    start,
    stop,
    async restart() {
      await stop();
      await start();
    },
    kill: killNow,
    async cleanup() {
      if (cleaned) return;
      try {
        await stop();
      } catch {
        await killNow();
      }
      cleaned = true;
      live.delete(exitCleanup);
      await rm(dir, { recursive: true, force: true });
    },
  };

  try {
    await start();
  } catch (e) {
    await server.cleanup().catch(() => undefined);
    throw e;
  }
  return server;
}
