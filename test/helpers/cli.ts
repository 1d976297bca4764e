/** Runs the `biokiosk` command as a user would (a child process of bin/biokiosk.js), never throwing. */
import { execFile } from 'node:child_process';
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
