/** Runs the `biokiosk` command as a user would (a child process of bin/biokiosk.js), never throwing. */
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const BIN = join(import.meta.dirname, '..', '..', 'bin', 'biokiosk.js');

export async function biokiosk(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return biokioskWith({}, ...args);
}

export async function biokioskWith(opts: { timeout?: number }, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { timeout: opts.timeout ?? 60_000, maxBuffer: 1 << 26 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

export interface CliProcess {
  child: import('node:child_process').ChildProcess;
  /** Complete stdout lines so far. */
  out: string[];
  err: () => string;
  /** Sends SIGTERM (SIGKILL after 5 s) and waits for the exit. */
  stop(): Promise<void>;
}

/** A long-running `biokiosk` command (a verifier, a kiosk) as a child process. */
export function spawnBiokiosk(args: string[]): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: string[] = [];
  let err = '';
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    out.push(...lines);
  });
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  return {
    child,
    out,
    err: () => err,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
