/**
 * Template encryption: a compact JWE (ECDH-ES+A256KW key wrap, A256GCM content) to the verifier fleet's P-256
 * key, so a template is readable by verifiers only, never by the broker or anyone relaying it. Encryption (the
 * kiosk's side) is jose's. Decryption (the verifier's hot path) is jwe-fast.ts, node:crypto only and synchronous;
 * jose's decryption stays available as `decryptTemplateWithJose` to cross-check it. This module pins the
 * algorithms, bounds sizes and turns every failure into one typed rejection.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, type JsonWebKey } from 'node:crypto';
import { CompactEncrypt, compactDecrypt } from 'jose';
import { BiokioskError } from './errors.ts';
import { Rejection } from './rejections.ts';
import { jwkThumbprint, p256PublicJwk } from './signer.ts';
import { MAX_SEALED_JWE } from './claims.ts';
import { decryptTemplateJweSync } from './jwe-fast.ts';

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
  if (jwe.length > MAX_SEALED_JWE) throw new BiokioskError('TemplateTooLarge', `the encrypted template is ${jwe.length} characters; at most ${MAX_SEALED_JWE}`);
  return jwe;
}

/** A fleet private key, or a lookup by the JWE's `kid` for verifiers that hold more than one. */
export type DecryptionKey = KeyObject | JsonWebKey | ((kid: string | undefined) => KeyObject | JsonWebKey | undefined);

/**
 * Decrypts a template JWE. Everything that can go wrong with the ciphertext (tampered tag, ciphertext, IV,
 * encrypted key or header; wrong recipient; other algorithms) is `template_undecryptable`; too long is `oversized`.
 *
 * This is the fast path (jwe-fast.ts: node:crypto, synchronous, no thread-pool hops); it is async only to keep
 * the signature callers already await. `decryptTemplateWithJose` is the same contract through jose.
 */
export async function decryptTemplate(jwe: string, privateKey: DecryptionKey, opts: { maxBytes?: number } = {}): Promise<Uint8Array> {
  return decryptTemplateSync(jwe, privateKey, opts);
}

/** `decryptTemplate`, synchronously: for callers on a hot path that need no promise per message. */
export function decryptTemplateSync(jwe: string, privateKey: DecryptionKey, opts: { maxBytes?: number } = {}): Uint8Array {
  checkJweLength(jwe, opts.maxBytes);
  return checkPlaintextLength(decryptTemplateJweSync(jwe, privateKey));
}

/**
 * The same contract as `decryptTemplate`, through jose's compactDecrypt (WebCrypto): kept to cross-check the
 * fast path. Same pins, same refusals (compression, a non-string kid), same size bounds, same rejection codes.
 */
export async function decryptTemplateWithJose(jwe: string, privateKey: DecryptionKey, opts: { maxBytes?: number } = {}): Promise<Uint8Array> {
  checkJweLength(jwe, opts.maxBytes);
  let plaintext: Uint8Array;
  try {
    const result = await compactDecrypt(
      jwe,
      async (header) => {
        if (header.kid !== undefined && typeof header.kid !== 'string') throw new Error('kid must be a string');
        const k = typeof privateKey === 'function' ? privateKey(header.kid) : privateKey;
        if (k === undefined) throw new Error(`no fleet key with kid ${String(header.kid)}`);
        return k instanceof KeyObject ? k : importPrivate(k);
      },
      // Pin the algorithms: the header is attacker-controlled and must not choose weaker ones. No compression
      // (jose would inflate zip:DEF up to 250 kB by default; templates are never compressed).
      { keyManagementAlgorithms: [TEMPLATE_KEY_ALG], contentEncryptionAlgorithms: [TEMPLATE_ENC], maxDecompressedLength: 0 },
    );
    plaintext = result.plaintext;
  } catch (e) {
    throw new Rejection('template_undecryptable', describeJoseError(e), { cause: e });
  }
  return checkPlaintextLength(plaintext);
}

function checkJweLength(jwe: string, maxBytes: number | undefined): void {
  const max = maxBytes ?? MAX_SEALED_JWE;
  if (typeof jwe !== 'string') throw new Rejection('template_undecryptable', 'JWE: not a string');
  if (jwe.length > max) throw new Rejection('oversized', `The template JWE is ${jwe.length} characters; at most ${max} allowed.`);
}

function checkPlaintextLength(plaintext: Uint8Array): Uint8Array {
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
