/**
 * The kiosk's configuration file (default /etc/biokiosk/kiosk.conf; deploy/kiosk.conf.example documents every key):
 * one `key = value` per line, `#` comments, blank lines ignored. Each key is the long name of a `biokiosk run` flag
 * without its dashes (`broker`, `camera`, `verifier-keys`, `ueid`, `ca`, `cert`, `key`, ...); flags given on the
 * command line win over the file. Switches take `true` or `false`. Unknown keys are refused with their line number,
 * so a typo never silently drops a setting.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../protocol/errors.ts';

export const DEFAULT_CONFIG_PATH = '/etc/biokiosk/kiosk.conf';

/** The keys of `biokiosk run` that take a value. */
const VALUE_KEYS = new Set([
  'broker', 'modality', 'camera', 'fingerprint-port', 'fingerprint-baud', 'verifier-keys', 'ueid', 'site', 'dir',
  'mqtt-version', 'max-frames', 'max-placements', 'verdict-timeout', 'tpm', 'tpm-handle', 'keystore',
  'ca', 'cert', 'key', 'username', 'password-file',
]);
/** The switches of `biokiosk run` (true adds the flag, false leaves it out). */
const SWITCH_KEYS = new Set(['online', 'require-nonce', 'json', 'events']);

export interface KioskConfigFile {
  path: string;
  /** Key to value, in file order (a switch set to false is absent). */
  values: Map<string, string | true>;
}

export function parseKioskConfig(text: string, path: string): KioskConfigFile {
  const values = new Map<string, string | true>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^([a-z][a-z0-9-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new UsageError(`${path}:${i + 1}: expected "key = value", got "${line}"`);
    const key = m[1]!;
    const value = m[2]!.trim();
    if (SWITCH_KEYS.has(key)) {
      if (value !== 'true' && value !== 'false') throw new UsageError(`${path}:${i + 1}: ${key} takes true or false, got "${value}"`);
      if (value === 'true') values.set(key, true);
      else values.delete(key);
    } else if (VALUE_KEYS.has(key)) {
      if (value === '') throw new UsageError(`${path}:${i + 1}: ${key} has no value`);
      values.set(key, value);
    } else {
      throw new UsageError(`${path}:${i + 1}: unknown key "${key}" (keys are the long flags of \`biokiosk run\`: ${[...VALUE_KEYS, ...SWITCH_KEYS].join(', ')})`);
    }
  });
  return { path, values };
}

export function readKioskConfig(path: string): KioskConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read the configuration file ${path}: ${(e as Error).message}`);
  }
  return parseKioskConfig(text, path);
}

/** The file's settings as command-line flags, to be placed before the flags actually given (which then win). */
export function configFlags(config: KioskConfigFile): string[] {
  const flags: string[] = [];
  for (const [key, value] of config.values) flags.push(...(value === true ? [`--${key}`] : [`--${key}`, value]));
  return flags;
}

/**
 * `argv` with every `--config FILE` (or `--config=FILE`) replaced by that file's flags, placed right after the
 * command's name so that the flags given on the command line come later and win.
 */
export function expandConfigArgs(argv: readonly string[], commandDepth: number): string[] {
  const rest: string[] = [];
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') {
      const file = argv[++i];
      if (file === undefined) throw new UsageError('--config needs a file');
      files.push(file);
    } else if (a.startsWith('--config=')) files.push(a.slice('--config='.length));
    else rest.push(a);
  }
  if (files.length === 0) return [...argv];
  const fromFiles = files.flatMap((f) => configFlags(readKioskConfig(f)));
  return [...rest.slice(0, commandDepth), ...fromFiles, ...rest.slice(commandDepth)];
}
