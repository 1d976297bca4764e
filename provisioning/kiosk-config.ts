/**
 * The kiosk configuration file provisioning writes: `key = value` lines whose keys are the long flags of
 * `biokiosk run` (the format `biokiosk run --config` reads), written atomically (a temporary file, fsync, rename)
 * with mode 0600, so an interrupted provisioning never leaves half a configuration. Secrets are never in it:
 * the broker password is a file of its own beside the state (0600), named by `password-file`.
 */
import { mkdirSync, openSync, fsyncSync, closeSync, renameSync, writeSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { BiokioskError } from '../protocol/errors.ts';

/** The settings of an existing file (comments and blank lines ignored); an unreadable line is an error. */
export function readConfigValues(path: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!existsSync(path)) return out;
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const m = /^([a-z][a-z0-9-]*)\s*=\s*(.*)$/.exec(line);
      if (!m) throw new BiokioskError('BadConfig', `${path}:${i + 1}: expected "key = value", got "${line.slice(0, 60)}"`);
      out.set(m[1]!, m[2]!.trim());
    });
  return out;
}

/** Writes `values` (in order) to `path` atomically, 0600, after a header comment. */
export function writeConfigAtomically(path: string, values: Map<string, string>, header: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const text = `${header.split('\n').map((l) => `# ${l}`.trimEnd()).join('\n')}\n${[...values].map(([k, v]) => `${k} = ${v}`).join('\n')}\n`;
  writeFileAtomically(path, text);
}

/** A file written whole or not at all, mode 0600. */
export function writeFileAtomically(path: string, data: string | Buffer): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  const dfd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
