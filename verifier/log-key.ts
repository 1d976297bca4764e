/**
 * The audit log's checkpoint-signing keys (Ed25519, C2SP signed-note), in a key ring file of their own (0600)
 * that can live anywhere: `--log-key PATH`, e.g. on a volume only the verifier service reads, apart from the log
 * and its folder. Every node of a fleet signs its batches' checkpoints with the same ring (one log, one origin).
 *
 * Rotation: `rotate` adds a key; while the ring has several active keys each checkpoint carries a signature by
 * each, so kiosks and witnesses that know only the old key keep verifying until they are given the new one;
 * `retire` then drops the old key from signing. The active set is logged: the first batch after it changes
 * appends a `log_keys` entry (verifier.ts), so the log itself says when each key began and ended.
 *
 * Not in a TPM: TPM 2.0 has no Ed25519, the signature witnesses and standard note tools verify.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BiokioskError } from '../protocol/errors.ts';
import { NoteSigner, SIG_ED25519, type NoteVerifier } from '../protocol/note.ts';
import { ensurePrivateDir, type NoticeSink } from '../protocol/private-files.ts';
import { writePrivateJson } from './keys.ts';

export interface LogKeyEntry {
  /** base64 PKCS#8 of the Ed25519 private key. */
  pkcs8: string;
  createdAt: number;
  retiredAt: number | null;
}

export interface LogKeyRing {
  kind: 'biokiosk-log-keys/1';
  /** The log's origin: the first line of its checkpoints, and the name its keys sign under. */
  origin: string;
  keys: LogKeyEntry[];
}

/** Signs checkpoint texts with every active key of a ring. */
export interface LogSigner {
  readonly origin: string;
  /** The signature lines (one per active key) over a note's text. */
  sign(text: string): string;
  /** The active keys, as verifiers (what `verifier keys` hands kiosks and witnesses). */
  readonly verifiers: readonly NoteVerifier[];
  /** Every key the ring ever held, retired ones too (an auditor checks old checkpoints with them). */
  readonly allVerifiers: readonly NoteVerifier[];
}

export class LogKeyError extends BiokioskError {
  constructor(message: string) {
    super('BadLogKey', message, { kind: 'input' });
  }
}

export function signerOf(ring: LogKeyRing): LogSigner {
  const all = ring.keys.map((k) => ({ entry: k, signer: new NoteSigner(ring.origin, Buffer.from(k.pkcs8, 'base64'), SIG_ED25519) }));
  const active = all.filter((k) => k.entry.retiredAt === null).map((k) => k.signer);
  if (active.length === 0) throw new LogKeyError(`the log key ring for ${ring.origin} has no active key`);
  return {
    origin: ring.origin,
    sign: (text) => active.map((s) => s.signText(text)).join(''),
    verifiers: active.map((s) => s.verifier),
    allVerifiers: all.map((k) => k.signer.verifier),
  };
}

/** Reads a key ring, creating one with a fresh key (for `origin`) when the file does not exist. */
export async function openLogKeys(path: string, origin: string, onNotice?: NoticeSink): Promise<LogKeyRing> {
  const existing = await readLogKeys(path, onNotice);
  if (existing) return existing;
  ensurePrivateDir(dirname(path), onNotice);
  const ring: LogKeyRing = { kind: 'biokiosk-log-keys/1', origin, keys: [newKey(origin)] };
  signerOf(ring); // checks the origin is a valid key name
  await writePrivateJson(path, ring, { replace: false });
  return ring;
}

/** Reads a key ring; undefined when the file does not exist. */
export async function readLogKeys(path: string, onNotice?: NoticeSink): Promise<LogKeyRing | undefined> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new LogKeyError(`${path} is not a regular file`);
    if ((st.mode & 0o077) !== 0) throw new LogKeyError(`${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}): treat the log key as exposed (rotate it), or if you are sure it is not, run: chmod 600 ${path}`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  void onNotice;
  let doc: LogKeyRing;
  try {
    doc = JSON.parse(await readFile(path, 'utf8')) as LogKeyRing;
  } catch (e) {
    throw new LogKeyError(`${path} is not JSON: ${(e as Error).message}`);
  }
  if (doc.kind !== 'biokiosk-log-keys/1' || typeof doc.origin !== 'string' || !Array.isArray(doc.keys)) throw new LogKeyError(`${path} is not a biokiosk log key file`);
  try {
    signerOf(doc);
  } catch (e) {
    throw e instanceof LogKeyError ? e : new LogKeyError(`${path}: ${(e as Error).message}`);
  }
  return doc;
}

/** Adds a new active key; the old ones keep signing until retired. */
export async function rotateLogKey(path: string, now = Date.now()): Promise<{ ring: LogKeyRing; added: NoteVerifier }> {
  const ring = await mustRead(path);
  const entry = newKey(ring.origin, now);
  ring.keys.push(entry);
  await writePrivateJson(path, ring, { replace: true });
  return { ring, added: new NoteSigner(ring.origin, Buffer.from(entry.pkcs8, 'base64')).verifier };
}

/** Stops a key signing (by its hex key ID); the last active key cannot be retired. */
export async function retireLogKey(path: string, keyIdHex: string, now = Date.now()): Promise<LogKeyRing> {
  const ring = await mustRead(path);
  const match = ring.keys.find((k) => k.retiredAt === null && new NoteSigner(ring.origin, Buffer.from(k.pkcs8, 'base64')).keyId.toString(16).padStart(8, '0') === keyIdHex.toLowerCase());
  if (!match) throw new LogKeyError(`no active key with ID ${keyIdHex} in ${path}`);
  if (ring.keys.filter((k) => k.retiredAt === null).length === 1) throw new LogKeyError(`${keyIdHex} is the only active log key: rotate first, then retire it`);
  match.retiredAt = now;
  await writePrivateJson(path, ring, { replace: true });
  return ring;
}

async function mustRead(path: string): Promise<LogKeyRing> {
  const ring = await readLogKeys(path);
  if (!ring) throw new LogKeyError(`${path} does not exist`);
  return ring;
}

function newKey(origin: string, now = Date.now()): LogKeyEntry {
  const { pkcs8 } = NoteSigner.generate(origin, SIG_ED25519);
  return { pkcs8: pkcs8.toString('base64'), createdAt: now, retiredAt: null };
}
