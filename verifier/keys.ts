/**
 * The verifier's keys: its verdict-signing key (ES256) and the fleet's template-decryption key (ECDH-ES), each a
 * JWK file with mode 0600. Verifiers sign with node:crypto (the key is in process; no TPM on verifier nodes).
 */
import { createPrivateKey, generateKeyPairSync, sign as cryptoSign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BiokioskError } from '../protocol/errors.ts';
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
}

/** Reads the verifier's key file, creating it (mode 0600) when it does not exist. */
export async function openVerifierKeys(path: string, verifierId: string): Promise<VerifierKeyFile> {
  try {
    const st = await stat(path);
    if ((st.mode & 0o077) !== 0) throw new BiokioskError('KeyFilePermissions', `${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
    const doc = JSON.parse(await readFile(path, 'utf8')) as VerifierKeyFile;
    if (doc.kind !== 'biokiosk-verifier-keys/1') throw new BiokioskError('BadKeyFile', `${path} is not a biokiosk verifier key file`);
    return doc;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const doc: VerifierKeyFile = { kind: 'biokiosk-verifier-keys/1', verifierId, signing: NodeCryptoSigner.generate().privateJwk, fleet: generateFleetKeyPair() };
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  await chmod(path, 0o600);
  return doc;
}
