/**
 * Template encryption: a compact JWE (ECDH-ES+A256KW key wrap, A256GCM content) to the verifier fleet's P-256
 * key, so a template is readable by verifiers only, never by the broker or anyone relaying it. All JOSE work is
 * jose's; this module only pins the algorithms, bounds sizes and turns every failure into one typed rejection.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, type JsonWebKey } from 'node:crypto';
import { CompactEncrypt, compactDecrypt } from 'jose';
import { BiokioskError } from './errors.ts';
import { Rejection } from './rejections.ts';
import { jwkThumbprint, p256PublicJwk } from './signer.ts';
import { MAX_TEMPLATE_JWE } from './claims.ts';

export const TEMPLATE_KEY_ALG = 'ECDH-ES+A256KW';
export const TEMPLATE_ENC = 'A256GCM';

/** Largest plaintext template accepted either way (the JWE bound leaves room for base64url and headers). */
export const MAX_TEMPLATE_BYTES = 44 * 1024;

export interface FleetKeyPair {
  /** Give to kiosks: EC P-256, use 'enc', alg ECDH-ES+A256KW, kid = RFC 7638 thumbprint. */
  publicJwk: JsonWebKey;
  /** Keep on verifiers only. */
  privateJwk: JsonWebKey;
}

/** A fresh ECDH P-256 key pair for the verifier fleet. */
export function generateFleetKeyPair(): FleetKeyPair {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const priv = privateKey.export({ format: 'jwk' });
  const pub = p256PublicJwk(priv as Record<string, unknown>);
  const meta = { use: 'enc', alg: TEMPLATE_KEY_ALG, kid: jwkThumbprint(pub) };
  return { publicJwk: { ...pub, ...meta }, privateJwk: { ...priv, ...meta } };
}

export async function encryptTemplate(template: Uint8Array, recipientPublicJwk: JsonWebKey, opts: { kid?: string } = {}): Promise<string> {
  if (template.byteLength > MAX_TEMPLATE_BYTES) {
    throw new BiokioskError('TemplateTooLarge', `template is ${template.byteLength} bytes; at most ${MAX_TEMPLATE_BYTES} fit in an attestation`);
  }
  const pub = p256PublicJwk(recipientPublicJwk as Record<string, unknown>);
  const key = createPublicKey({ key: { kty: pub.kty, crv: pub.crv, x: pub.x, y: pub.y }, format: 'jwk' });
  // The kid lets a verifier holding several fleet keys (during rotation) pick the right one.
  const kid = opts.kid ?? (typeof recipientPublicJwk.kid === 'string' ? recipientPublicJwk.kid : jwkThumbprint(pub));
  const jwe = await new CompactEncrypt(template).setProtectedHeader({ alg: TEMPLATE_KEY_ALG, enc: TEMPLATE_ENC, kid }).encrypt(key);
  if (jwe.length > MAX_TEMPLATE_JWE) throw new BiokioskError('TemplateTooLarge', `the encrypted template is ${jwe.length} characters; at most ${MAX_TEMPLATE_JWE}`);
  return jwe;
}

/** A fleet private key, or a lookup by the JWE's `kid` for verifiers that hold more than one. */
export type DecryptionKey = KeyObject | JsonWebKey | ((kid: string | undefined) => KeyObject | JsonWebKey | undefined);

/**
 * Decrypts a template JWE. Everything that can go wrong with the ciphertext (tampered tag, ciphertext, IV,
 * encrypted key or header; wrong recipient; other algorithms) is `template_undecryptable`; too long is `oversized`.
 */
export async function decryptTemplate(jwe: string, privateKey: DecryptionKey, opts: { maxBytes?: number } = {}): Promise<Uint8Array> {
  const max = opts.maxBytes ?? MAX_TEMPLATE_JWE;
  if (jwe.length > max) throw new Rejection('oversized', `The template JWE is ${jwe.length} characters; at most ${max} allowed.`);
  let plaintext: Uint8Array;
  try {
    const result = await compactDecrypt(
      jwe,
      async (header) => {
        const k = typeof privateKey === 'function' ? privateKey(header.kid) : privateKey;
        if (k === undefined) throw new Error(`no fleet key with kid ${String(header.kid)}`);
        return k instanceof KeyObject ? k : importPrivate(k);
      },
      // Pin the algorithms: the header is attacker-controlled and must not choose weaker ones.
      { keyManagementAlgorithms: [TEMPLATE_KEY_ALG], contentEncryptionAlgorithms: [TEMPLATE_ENC] },
    );
    plaintext = result.plaintext;
  } catch (e) {
    throw new Rejection('template_undecryptable', describeJoseError(e), { cause: e });
  }
  if (plaintext.byteLength > MAX_TEMPLATE_BYTES) throw new Rejection('oversized', `The decrypted template is ${plaintext.byteLength} bytes; at most ${MAX_TEMPLATE_BYTES} allowed.`);
  return plaintext;
}

const importedPrivate = new WeakMap<object, KeyObject>();

/** Imports a private JWK once per object: the fleet key is one object used for every message. */
function importPrivate(jwk: JsonWebKey): KeyObject {
  let k = importedPrivate.get(jwk);
  if (!k) {
    k = createPrivateKey({ key: jwk, format: 'jwk' });
    importedPrivate.set(jwk, k);
  }
  return k;
}

function describeJoseError(e: unknown): string {
  const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : '';
  const msg = e instanceof Error ? e.message : String(e);
  return `${code ? `${code}: ` : ''}${msg}`.slice(0, 200);
}
