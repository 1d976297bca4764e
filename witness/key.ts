/**
 * The witness's own cosigner key: Ed25519, type 0x04 (cosignature/v1), in DIR/witness-key.json (mode 0600 in a
 * 0700 folder): {"name": ..., "pkcs8": base64}. Created on first use with the name the operator gives (a
 * schema-less URL naming the witness, e.g. `insurer.example/witness`); the name is part of the key ID, so it never
 * changes afterwards.
 *
 * SPEC: https://c2sp.org/tlog-cosignature (Ed25519 cosigner key ID = SHA-256(name || "\n" || 0x04 || key)[:4];
 *       "A cosigner operator that operates multiple Ed25519 cosigners ... MUST use distinct public keys")
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BiokioskError } from '../protocol/errors.ts';
import { NoteSigner, SIG_COSIGNATURE_V1 } from '../protocol/note.ts';
import { ensurePrivateDir, ensurePrivateFile, type NoticeSink } from '../protocol/private-files.ts';
import { writePrivateFileAtomic } from './state.ts';

export const KEY_FILE = 'witness-key.json';

export class WitnessKeyError extends BiokioskError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, { kind: 'input', details });
  }
}

export interface WitnessKey {
  signer: NoteSigner;
  name: string;
  /** `<name>+<key ID>+<base64(0x04 || key)>`: what submitters configure to check the cosignatures. */
  vkey: string;
  /** True when this call created the key. */
  created: boolean;
}

/**
 * Loads DIR's witness key, or creates it when there is none and `name` is given. A `name` that differs from the
 * stored key's is refused: the operator is about to publish the wrong identity.
 */
export async function loadWitnessKey(dir: string, opts: { name?: string; onNotice?: NoticeSink } = {}): Promise<WitnessKey> {
  const path = join(dir, KEY_FILE);
  if (opts.name === undefined && !existsSync(path)) throw noKey(dir);
  ensurePrivateDir(dir, opts.onNotice);
  const existing = await readKey(path, opts.onNotice);
  if (existing) return checkName(existing, opts.name, path);
  if (opts.name === undefined) throw noKey(dir);
  const { signer, pkcs8 } = NoteSigner.generate(opts.name, SIG_COSIGNATURE_V1);
  const doc = JSON.stringify({ name: signer.name, pkcs8: pkcs8.toString('base64') }, null, 2) + '\n';
  // Exclusive: two first starts at once keep one key, and both use it.
  if (await writePrivateFileAtomic(path, doc, { exclusive: true })) return { signer, name: signer.name, vkey: signer.vkey, created: true };
  const raced = await readKey(path, opts.onNotice);
  if (!raced) throw new WitnessKeyError('BadWitnessKey', `${path} vanished while it was being created`);
  return checkName(raced, opts.name, path);
}

const noKey = (dir: string) => new WitnessKeyError('NoWitnessKey', `there is no witness key in ${dir} yet: give --name to create one`, { dir });

function checkName(k: WitnessKey, name: string | undefined, path: string): WitnessKey {
  if (name !== undefined && name !== k.name) throw new WitnessKeyError('WitnessNameMismatch', `the witness key in ${path} is named ${k.name}, not ${name}`, { path });
  return k;
}

async function readKey(path: string, onNotice?: NoticeSink): Promise<WitnessKey | undefined> {
  ensurePrivateFile(path, onNotice, { onlyIfExists: true });
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let doc: { name?: unknown; pkcs8?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    throw new WitnessKeyError('BadWitnessKey', `${path} is not JSON`, { path });
  }
  if (typeof doc !== 'object' || doc === null || typeof doc.name !== 'string' || typeof doc.pkcs8 !== 'string') throw new WitnessKeyError('BadWitnessKey', `${path} must hold {"name": ..., "pkcs8": base64}`, { path });
  let signer: NoteSigner;
  try {
    signer = new NoteSigner(doc.name, Buffer.from(doc.pkcs8, 'base64'), SIG_COSIGNATURE_V1);
  } catch (e) {
    throw new WitnessKeyError('BadWitnessKey', `${path} does not hold a usable Ed25519 key: ${(e as Error).message}`, { path });
  }
  return { signer, name: signer.name, vkey: signer.vkey, created: false };
}
