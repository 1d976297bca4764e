/**
 * The verifier's keys, in one JSON file of mode 0600 inside a 0700 folder: its verdict-signing key (ES256), the
 * fleet's template-decryption key (ECDH-ES) and the gallery's at-rest key (AES-256-GCM). Verifiers sign with
 * node:crypto (the key is in process; no TPM on verifier nodes).
 */
import { createPrivateKey, generateKeyPairSync, randomBytes, sign as cryptoSign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { chmod, open, readFile, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { decodeBase64url } from '../protocol/base64url.ts';
import { BiokioskError } from '../protocol/errors.ts';
import { ensurePrivateDir, type NoticeSink } from '../protocol/private-files.ts';
import { GALLERY_KEY_BYTES } from './gallery-cipher.ts';
import { generateFleetKeyPair, type FleetKeyPair } from '../protocol/jwe.ts';
import { jwkThumbprint, p256PublicJwk, type P256PublicJwk, type Signer } from '../protocol/signer.ts';

export class NodeCryptoSigner implements Signer {
  readonly kid: string;
  readonly publicJwk: P256PublicJwk;
  private readonly key: KeyObject;

  constructor(privateJwk: JsonWebKey) {
    this.key = createPrivateKey({ key: privateJwk, format: 'jwk' });
    this.publicJwk = p256PublicJwk(privateJwk as Record<string, unknown>);
    this.kid = jwkThumbprint(this.publicJwk);
  }

  static generate(): { signer: NodeCryptoSigner; privateJwk: JsonWebKey } {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const privateJwk = privateKey.export({ format: 'jwk' });
    return { signer: new NodeCryptoSigner(privateJwk), privateJwk };
  }

  async sign(): Promise<Uint8Array> {
    // node:crypto hashes what it signs: this signer only offers signMessage (signCompactJws prefers it).
    throw new BiokioskError('SignerFault', 'NodeCryptoSigner signs whole messages (signMessage), not digests', { kind: 'internal' });
  }

  async signMessage(message: Uint8Array): Promise<Uint8Array> {
    return cryptoSign('sha256', message, { key: this.key, dsaEncoding: 'ieee-p1363' });
  }
}

export interface VerifierKeyFile {
  kind: 'biokiosk-verifier-keys/1';
  verifierId: string;
  signing: JsonWebKey;
  fleet: FleetKeyPair;
  /** base64url AES-256 key for the gallery's templates at rest (added to older files on first open). */
  galleryKey: string;
}

/** The gallery key's bytes. */
export function galleryKeyOf(keys: VerifierKeyFile): Buffer {
  const k = decodeBase64url(keys.galleryKey);
  if (!k || k.byteLength !== GALLERY_KEY_BYTES) throw new BiokioskError('BadKeyFile', 'the verifier key file\'s galleryKey is not a base64url 256-bit key');
  return k;
}

/** Reads the verifier's key file, creating it (mode 0600, in a 0700 folder) when it does not exist. */
export async function openVerifierKeys(path: string, verifierId: string, onNotice?: NoticeSink): Promise<VerifierKeyFile> {
  ensurePrivateDir(dirname(path), onNotice);
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new BiokioskError('BadKeyFile', `${path} is not a regular file`);
    if ((st.mode & 0o077) !== 0) throw new BiokioskError('KeyFilePermissions', `${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}): treat its keys as exposed, or if you are sure they are not, run: chmod 600 ${path}`);
    const doc = JSON.parse(await readFile(path, 'utf8')) as VerifierKeyFile;
    if (doc.kind !== 'biokiosk-verifier-keys/1') throw new BiokioskError('BadKeyFile', `${path} is not a biokiosk verifier key file`);
    if (doc.galleryKey === undefined) {
      doc.galleryKey = randomBytes(GALLERY_KEY_BYTES).toString('base64url');
      await writePrivateJson(path, doc, { replace: true });
      onNotice?.(`${path}: added a gallery encryption key (templates are now encrypted at rest)`);
    }
    galleryKeyOf(doc);
    return doc;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const doc: VerifierKeyFile = {
    kind: 'biokiosk-verifier-keys/1',
    verifierId,
    signing: NodeCryptoSigner.generate().privateJwk,
    fleet: generateFleetKeyPair(),
    galleryKey: randomBytes(GALLERY_KEY_BYTES).toString('base64url'),
  };
  await writePrivateJson(path, doc, { replace: false });
  return doc;
}

/** Writes the key file with mode 0600 from its first byte: a new file (O_EXCL), or a temporary one renamed over the old. */
export async function writePrivateJson(path: string, doc: object, opts: { replace: boolean }): Promise<void> {
  const target = opts.replace ? `${path}.tmp-${process.pid}` : path;
  const fh = await open(target, 'wx', 0o600);
  try {
    await fh.chmod(0o600);
    await fh.writeFile(JSON.stringify(doc, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (opts.replace) await rename(target, path);
  await chmod(path, 0o600);
}
