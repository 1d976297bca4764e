/**
 * The software key store: a P-256 signing key in a file. FOR DEVELOPMENT AND DEMOS ONLY: the private key sits
 * on disk, readable by anyone who gets this account's files. Production kiosks keep the key in a TPM (a later
 * issue), behind the same `Signer` interface.
 *
 * The file is a small JSON document (a JWK plus a label saying what it is), created with mode 0600 in one
 * atomic step (written to a private temp file, then hard-linked into place, so a concurrent opener never reads
 * half a key). A file that group or others can read or write is refused, as ssh refuses such keys.
 */
import { constants, promises as fs } from 'node:fs';
import { createECDH, createPrivateKey, generateKeyPairSync, randomBytes, sign as cryptoSign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { dirname } from 'node:path';
import { decodeBase64url, encodeBase64url } from '../../protocol/base64url.ts';
import { BiokioskError } from '../../protocol/errors.ts';
import { jwkThumbprint, p256PublicJwk, type P256PublicJwk, type Signer } from '../../protocol/signer.ts';
import { signDigestP256 } from './ecdsa-p256.ts';

const LABEL = 'biokiosk software key store: DEVELOPMENT ONLY';
const FILE_KIND = 'biokiosk-software-keystore/1';

interface KeyFile {
  kind: typeof FILE_KIND;
  warning: string;
  created_at: string;
  jwk: JsonWebKey;
}

export interface OpenOptions {
  /** Create the key file when it does not exist (default true). */
  create?: boolean;
}

export class SoftwareKeyStore implements Signer {
  /** Print this wherever a software key store is opened. */
  static readonly warning =
    'Using the SOFTWARE key store: the device signing key is a plain file on disk. This is for development and demos only; production kiosks must use a hardware (TPM) key store.';
  readonly developmentOnly = true;
  readonly kid: string;
  readonly publicJwk: P256PublicJwk;
  /** The private scalar, and the same key for OpenSSL; ES private fields, so neither shows up in JSON.stringify or util.inspect. */
  readonly #d: Buffer;
  readonly #key: KeyObject;

  private constructor(
    privateScalar: Buffer,
    /** The key file, or null for an in-memory store. */
    readonly path: string | null,
    /** True when `open` created the key file just now. */
    readonly created: boolean,
  ) {
    this.#d = privateScalar;
    // Derived from d, never read from the file: a JWK's x/y could belong to another key.
    this.publicJwk = publicFromScalar(privateScalar);
    this.kid = jwkThumbprint(this.publicJwk);
    this.#key = createPrivateKey({ key: { ...this.publicJwk, d: encodeBase64url(privateScalar) }, format: 'jwk' });
  }

  /** Opens the key file at `path`, creating it (mode 0600) when absent. */
  static async open(path: string, opts: OpenOptions = {}): Promise<SoftwareKeyStore> {
    let created = false;
    if (opts.create !== false) created = await createIfAbsent(path);
    return new SoftwareKeyStore(await readKeyFile(path), path, created);
  }

  /** A throwaway key that lives only in memory (tests, demos). */
  static ephemeral(): SoftwareKeyStore {
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    return new SoftwareKeyStore(Buffer.from(String(jwk.d), 'base64url'), null, false);
  }

  async sign(digest: Uint8Array): Promise<Uint8Array> {
    return signDigestP256(this.#d, digest);
  }

  /** ES256 over the whole message by node:crypto (what signCompactJws prefers): a fraction of the JavaScript curve's cost. */
  async signMessage(message: Uint8Array): Promise<Uint8Array> {
    return cryptoSign('sha256', message, { key: this.#key, dsaEncoding: 'ieee-p1363' });
  }
}

/** Creates the key file atomically; returns false when it already exists (ours or a concurrent opener's). */
async function createIfAbsent(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return false;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw unreadable(path, e);
  }
  await fs.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  const pub = p256PublicJwk(jwk as Record<string, unknown>);
  const doc: KeyFile = {
    kind: FILE_KIND,
    warning: `${LABEL}. ${SoftwareKeyStore.warning}`,
    created_at: new Date().toISOString(),
    jwk: { ...jwk, use: 'sig', alg: 'ES256', kid: jwkThumbprint(pub), biokiosk: 'development-only' } as JsonWebKey,
  };
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  // 'wx' = O_CREAT|O_EXCL: never reuse or follow an existing file; chmod again in case the umask took owner bits.
  const fh = await fs.open(tmp, 'wx', 0o600);
  try {
    await fh.chmod(0o600);
    await fh.writeFile(`${JSON.stringify(doc, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.link(tmp, path); // atomic, and fails if someone else created the file meanwhile
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new BiokioskError('KeyFileUnwritable', `cannot create the key file ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    await fs.unlink(tmp).catch(() => undefined);
  }
}

async function readKeyFile(path: string): Promise<Buffer> {
  let fh;
  try {
    // O_NOFOLLOW: the permission check below must be about the key file itself, not a symlink's target.
    fh = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new BiokioskError('KeyFileInsecure', `refusing to use key file ${path}: it is a symbolic link`);
    throw unreadable(path, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BiokioskError('KeyFileInsecure', `refusing to use key file ${path}: it is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new BiokioskError('KeyFileInsecure', `refusing to use key file ${path}: its mode is ${mode}, so group or others can access the private key. Fix it with: chmod 600 ${path}`, { details: { path, mode } });
    }
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) {
      throw new BiokioskError('KeyFileInsecure', `refusing to use key file ${path}: it belongs to uid ${st.uid}, not to this user (uid ${uid})`);
    }
    if (st.size > 16 * 1024) throw new BiokioskError('KeyFileInvalid', `key file ${path} is ${st.size} bytes; not a biokiosk key file`);
    return parseKeyFile(path, await fh.readFile('utf8'));
  } finally {
    await fh.close();
  }
}

function parseKeyFile(path: string, text: string): Buffer {
  let doc: Partial<KeyFile>;
  try {
    doc = JSON.parse(text) as Partial<KeyFile>;
  } catch (e) {
    throw new BiokioskError('KeyFileInvalid', `key file ${path} is not JSON`, { cause: e });
  }
  if (doc?.kind !== FILE_KIND || typeof doc.jwk !== 'object' || doc.jwk === null) {
    throw new BiokioskError('KeyFileInvalid', `key file ${path} is not a biokiosk software key store file (expected "kind": "${FILE_KIND}")`);
  }
  const { kty, crv, x, y, d } = doc.jwk;
  const scalar = typeof d === 'string' ? decodeBase64url(d) : undefined;
  if (kty !== 'EC' || crv !== 'P-256' || !scalar || scalar.byteLength !== 32) {
    throw new BiokioskError('KeyFileInvalid', `key file ${path} does not hold an EC P-256 private key`);
  }
  let pub: P256PublicJwk;
  try {
    pub = publicFromScalar(scalar);
  } catch (e) {
    throw new BiokioskError('KeyFileInvalid', `key file ${path} holds an invalid P-256 private key`, { cause: e });
  }
  if (pub.x !== x || pub.y !== y) throw new BiokioskError('KeyFileInvalid', `key file ${path}: the public key (x, y) does not belong to the private key (d)`);
  return scalar;
}

/** The public point d·G, computed by OpenSSL (ECDH's public key is exactly that). Throws for d outside [1, n-1]. */
function publicFromScalar(d: Buffer): P256PublicJwk {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(d);
  const point = ecdh.getPublicKey(); // 0x04 || X || Y
  return { kty: 'EC', crv: 'P-256', x: encodeBase64url(point.subarray(1, 33)), y: encodeBase64url(point.subarray(33, 65)) };
}

function unreadable(path: string, e: unknown): BiokioskError {
  return new BiokioskError('KeyFileUnreadable', `cannot read the key file ${path}: ${(e as Error).message}`, { cause: e });
}
