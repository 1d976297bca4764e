/**
 * C2SP signed notes, checkpoints and cosignatures: how the audit log's tree heads are signed, published and
 * witnessed, in the formats other parties' tools read.
 *
 * SPEC: https://c2sp.org/signed-note (text, a blank line, signature lines "— <name> base64(keyID || sig)";
 *       Ed25519 key ID = SHA-256(name || 0x0A || 0x01 || pubkey)[:4]; vkeys "<name>+<hex keyID>+base64(type || key)")
 * SPEC: https://c2sp.org/tlog-checkpoint (origin, decimal tree size, base64 root hash)
 * SPEC: https://c2sp.org/tlog-cosignature (type 0x04: Ed25519 over "cosignature/v1\ntime <t>\n" || note text,
 *       signature = u64 big-endian timestamp || 64-byte signature)
 *
 * Ed25519 through node:crypto. Pure functions but for the clock a cosigner is given.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { BiokioskError } from './errors.ts';

export const SIG_ED25519 = 0x01;
export const SIG_COSIGNATURE_V1 = 0x04;
const EM_DASH = '\u2014';
/** Notes larger than this are refused before parsing (a checkpoint with 16 signatures is under 2 KB). */
export const MAX_NOTE_BYTES = 16 * 1024;

export class NoteError extends BiokioskError {
  constructor(message: string) {
    super('BadNote', message, { kind: 'input' });
  }
}

export interface Checkpoint {
  origin: string;
  treeSize: number;
  /** 32 bytes. */
  rootHash: Buffer;
}

export interface NoteSignature {
  name: string;
  keyId: number;
  /** The signature bytes after the key ID. */
  signature: Buffer;
  /** The whole line, as it appeared (for passing signatures on unchanged). */
  line: string;
}

/** A public key a note can be checked against: a log key (Ed25519) or a witness's (cosignature/v1). */
export interface NoteVerifier {
  name: string;
  keyId: number;
  type: typeof SIG_ED25519 | typeof SIG_COSIGNATURE_V1;
  publicKey: Buffer;
}

function validName(name: string): boolean {
  return name.length > 0 && !/[\s+\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u.test(name);
}

export function keyId(name: string, type: number, publicKey: Uint8Array): number {
  return createHash('sha256').update(name, 'utf8').update(Buffer.from([0x0a, type])).update(publicKey).digest().readUInt32BE(0);
}

// ---- checkpoints -----------------------------------------------------------------------------------------

/** The note text of a checkpoint (ends with a newline). */
export function checkpointText(c: Checkpoint): string {
  if (!validName(c.origin)) throw new NoteError(`a checkpoint origin must be non-empty without spaces or '+': ${JSON.stringify(c.origin)}`);
  if (!Number.isSafeInteger(c.treeSize) || c.treeSize < 0) throw new NoteError(`a checkpoint tree size must be a non-negative integer, got ${c.treeSize}`);
  if (c.rootHash.length !== 32) throw new NoteError('a checkpoint root hash is 32 bytes');
  return `${c.origin}\n${c.treeSize}\n${c.rootHash.toString('base64')}\n`;
}

export function parseCheckpointText(text: string): Checkpoint {
  const lines = text.split('\n');
  if (lines.length < 4 || lines[lines.length - 1] !== '') throw new NoteError('a checkpoint is at least three lines, each ending in a newline');
  const [origin, size, root] = lines as [string, string, string];
  if (!validName(origin)) throw new NoteError('the checkpoint origin is empty or has spaces');
  if (!/^(0|[1-9][0-9]{0,15})$/.test(size) || !Number.isSafeInteger(Number(size))) throw new NoteError(`the checkpoint tree size ${JSON.stringify(size.slice(0, 20))} is not a decimal without leading zeroes`);
  const rootHash = Buffer.from(root, 'base64');
  if (rootHash.length !== 32 || rootHash.toString('base64') !== root) throw new NoteError('the checkpoint root hash is not 32 bytes of standard base64');
  return { origin, treeSize: Number(size), rootHash };
}

// ---- notes -----------------------------------------------------------------------------------------------

/** Splits a signed note into its text and signature lines (structure only; nothing verified). */
export function parseNote(note: string): { text: string; signatures: NoteSignature[] } {
  if (Buffer.byteLength(note, 'utf8') > MAX_NOTE_BYTES) throw new NoteError(`a note is at most ${MAX_NOTE_BYTES} bytes`);
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) throw new NoteError('a note must not contain control characters other than newline');
  const split = note.lastIndexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) throw new NoteError('a signed note is text, a blank line, and signature lines, each ending in a newline');
  const text = note.slice(0, split + 1);
  const signatures: NoteSignature[] = [];
  for (const line of note.slice(split + 2, -1).split('\n')) {
    const m = new RegExp(`^${EM_DASH} (\\S+) ([A-Za-z0-9+/]+={0,2})$`).exec(line);
    if (!m) throw new NoteError(`a note signature line must be "${EM_DASH} <name> <base64>": ${JSON.stringify(line.slice(0, 80))}`);
    const raw = Buffer.from(m[2]!, 'base64');
    // One spelling per signature: base64 whose unused low bits are set would give a second line for the same bytes.
    if (raw.toString('base64') !== m[2]) throw new NoteError('a note signature is not canonical base64');
    if (raw.length < 5) throw new NoteError('a note signature is a 4-byte key ID and a signature');
    signatures.push({ name: m[1]!, keyId: raw.readUInt32BE(0), signature: raw.subarray(4), line: `${line}\n` });
  }
  if (signatures.length === 0) throw new NoteError('a signed note has at least one signature');
  if (signatures.length > 64) throw new NoteError('too many signatures on one note');
  return { text, signatures };
}

function signatureLine(name: string, id: number, sig: Uint8Array): string {
  const raw = Buffer.alloc(4 + sig.length);
  raw.writeUInt32BE(id >>> 0, 0);
  raw.set(sig, 4);
  return `${EM_DASH} ${name} ${raw.toString('base64')}\n`;
}

/** The first verified signature of each known verifier: which of them signed the note's text. */
export function verifiedSigners(note: { text: string; signatures: NoteSignature[] }, verifiers: readonly NoteVerifier[]): { names: Set<string>; cosignedAt: Map<string, number>; bad: string[] } {
  const names = new Set<string>();
  const cosignedAt = new Map<string, number>();
  const bad: string[] = [];
  for (const s of note.signatures) {
    const v = verifiers.find((k) => k.name === s.name && k.keyId === s.keyId);
    if (!v) continue; // unknown keys are ignored (SPEC: signed-note)
    const key = ed25519Key(v.publicKey);
    let ok: boolean;
    if (v.type === SIG_ED25519) ok = s.signature.length === 64 && verify(null, Buffer.from(note.text, 'utf8'), key, s.signature);
    else {
      ok = s.signature.length === 72 && verify(null, cosignedMessage(note.text, Number(s.signature.readBigUInt64BE(0))), key, s.signature.subarray(8));
      if (ok) cosignedAt.set(v.name, Number(s.signature.readBigUInt64BE(0)));
    }
    if (ok) names.add(v.name);
    else bad.push(v.name);
  }
  return { names, cosignedAt, bad };
}

function cosignedMessage(text: string, timestamp: number): Buffer {
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${text}`, 'utf8');
}

// ---- keys ------------------------------------------------------------------------------------------------

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Public keys imported for verification, by their bytes: OpenSSL's import costs several times the verify itself. */
const importedKeys = new Map<string, KeyObject>();
const MAX_IMPORTED_KEYS = 1024;

function ed25519Key(publicKey: Buffer): KeyObject {
  const id = publicKey.toString('base64');
  let key = importedKeys.get(id);
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    if (importedKeys.size >= MAX_IMPORTED_KEYS) importedKeys.delete(importedKeys.keys().next().value!);
    importedKeys.set(id, key);
  }
  return key;
}

/** An Ed25519 signer for notes: a log key (type 0x01) or a witness cosigner (type 0x04). */
export class NoteSigner {
  readonly keyId: number;
  readonly publicKey: Buffer;
  private readonly key: KeyObject;

  constructor(
    readonly name: string,
    privateKeyPkcs8: Buffer,
    readonly type: typeof SIG_ED25519 | typeof SIG_COSIGNATURE_V1 = SIG_ED25519,
  ) {
    if (!validName(name)) throw new NoteError(`a key name must be non-empty without spaces or '+': ${JSON.stringify(name)}`);
    this.key = createPrivateKey({ key: privateKeyPkcs8, format: 'der', type: 'pkcs8' });
    if (this.key.asymmetricKeyType !== 'ed25519') throw new NoteError('a note key is an Ed25519 key');
    this.publicKey = createPublicKey(this.key).export({ format: 'der', type: 'spki' }).subarray(ED25519_SPKI_PREFIX.length);
    this.keyId = keyId(name, type, this.publicKey);
  }

  static generate(name: string, type: typeof SIG_ED25519 | typeof SIG_COSIGNATURE_V1 = SIG_ED25519): { signer: NoteSigner; pkcs8: Buffer } {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
    return { signer: new NoteSigner(name, pkcs8, type), pkcs8 };
  }

  /** The verifier key (vkey) others configure to check this signer. */
  get vkey(): string {
    return formatVkey({ name: this.name, keyId: this.keyId, type: this.type, publicKey: this.publicKey });
  }

  get verifier(): NoteVerifier {
    return { name: this.name, keyId: this.keyId, type: this.type, publicKey: this.publicKey };
  }

  /** A log key's signature line over the note text. */
  signText(text: string): string {
    if (this.type !== SIG_ED25519) throw new NoteError('a cosigner key signs with cosign()');
    return signatureLine(this.name, this.keyId, sign(null, Buffer.from(text, 'utf8'), this.key));
  }

  /** A witness's cosignature/v1 line over a checkpoint's text, timestamped `at` (POSIX seconds). */
  cosign(text: string, at: number): string {
    if (this.type !== SIG_COSIGNATURE_V1) throw new NoteError('a log key signs with signText()');
    const stamp = Buffer.alloc(8);
    stamp.writeBigUInt64BE(BigInt(at), 0);
    return signatureLine(this.name, this.keyId, Buffer.concat([stamp, sign(null, cosignedMessage(text, at), this.key)]));
  }
}

export function formatVkey(v: NoteVerifier): string {
  return `${v.name}+${v.keyId.toString(16).padStart(8, '0')}+${Buffer.concat([Buffer.from([v.type]), v.publicKey]).toString('base64')}`;
}

export function parseVkey(vkey: string): NoteVerifier {
  const parts = vkey.trim().split('+');
  // The base64 part may itself contain '+': the name and the ID are the first two fields.
  if (parts.length < 3) throw new NoteError(`a verifier key is <name>+<hex key ID>+<base64>: ${JSON.stringify(vkey.slice(0, 80))}`);
  const [name, hex] = parts as [string, string];
  const raw = Buffer.from(parts.slice(2).join('+'), 'base64');
  if (!validName(name) || !/^[0-9a-f]{8}$/.test(hex)) throw new NoteError(`a verifier key's name or key ID is malformed: ${JSON.stringify(vkey.slice(0, 80))}`);
  const type = raw[0];
  if ((type !== SIG_ED25519 && type !== SIG_COSIGNATURE_V1) || raw.length !== 33) throw new NoteError('only Ed25519 (0x01) and cosignature/v1 (0x04) verifier keys are supported');
  const publicKey = raw.subarray(1);
  const id = Number.parseInt(hex, 16);
  if (keyId(name, type, publicKey) !== id) throw new NoteError(`the key ID of verifier key ${name} does not match its key`);
  return { name, keyId: id, type, publicKey };
}

/** A checkpoint note signed by a log key. */
export function signCheckpoint(c: Checkpoint, signer: NoteSigner): string {
  const text = checkpointText(c);
  return `${text}\n${signer.signText(text)}`;
}

/** Adds signature lines (a witness's cosignatures) to a note, keeping one line per key. */
export function addSignatures(note: string, lines: string): string {
  const n = parseNote(note);
  const have = new Set(n.signatures.map((s) => `${s.name} ${s.keyId}`));
  const extra = lines.split('\n').filter((l) => l.length > 0).map((l) => `${l}\n`);
  const fresh = extra.filter((l) => {
    const s = parseNote(`x\n\n${l}`).signatures[0]!;
    return !have.has(`${s.name} ${s.keyId}`);
  });
  return `${n.text}\n${n.signatures.map((s) => s.line).join('')}${fresh.join('')}`;
}

/**
 * Opens a checkpoint note: the text must parse as a checkpoint and carry a valid signature by the log's key (one
 * of `logKeys`: several during a key rotation); witnesses' cosignatures are checked too and reported.
 */
export function openCheckpoint(note: string, logKeys: readonly NoteVerifier[], witnesses: readonly NoteVerifier[] = []): { checkpoint: Checkpoint; witnessedBy: Map<string, number> } {
  const n = parseNote(note);
  const checkpoint = parseCheckpointText(n.text);
  const logs = verifiedSigners(n, logKeys);
  if (logs.bad.length > 0) throw new NoteError(`the checkpoint's signature by ${logs.bad.join(', ')} does not verify`);
  if (logs.names.size === 0) throw new NoteError(`the checkpoint for ${checkpoint.origin} is not signed by a log key this party trusts`);
  const w = verifiedSigners(n, witnesses);
  if (w.bad.length > 0) throw new NoteError(`the cosignature of ${w.bad.join(', ')} does not verify`);
  return { checkpoint, witnessedBy: w.cosignedAt };
}
