/**
 * Verdicts encrypted for the one kiosk that asked: a compact JWE (RFC 7516) with `alg: dir`, `enc: A256GCM`
 * under the attestation's reply key (sealed.ts), which only that kiosk and the verifiers know. The broker and
 * other subscribers see that an answer was sent, not what it says. node:crypto only, synchronous.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { decodeBase64url, encodeBase64url } from './base64url.ts';
import { BiokioskError } from './errors.ts';
import { REPLY_KEY_BYTES } from './sealed.ts';

export const REPLY_ALG = 'dir';
export const REPLY_ENC = 'A256GCM';
const HEADER = encodeBase64url(JSON.stringify({ alg: REPLY_ALG, enc: REPLY_ENC, cty: 'JWT' }));

/** The part count tells a sealed verdict (5) from a plain JWS (3). */
export function isSealedReply(body: string): boolean {
  return body.split('.').length === 5;
}

export function sealReply(plaintext: string, key: Uint8Array): string {
  checkKey(key);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(HEADER, 'ascii'));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `${HEADER}..${encodeBase64url(iv)}.${encodeBase64url(ct)}.${encodeBase64url(cipher.getAuthTag())}`;
}

/** Decrypts a sealed verdict; anything but our exact header, a 96-bit IV and a 128-bit tag that verifies is refused. */
export function openReply(jwe: string, key: Uint8Array): string {
  checkKey(key);
  const parts = jwe.split('.');
  if (parts.length !== 5) throw bad('a sealed verdict has five parts');
  const [h, ek, ivB, ctB, tagB] = parts as [string, string, string, string, string];
  if (h !== HEADER) throw bad(`its header is not {"alg":"${REPLY_ALG}","enc":"${REPLY_ENC}","cty":"JWT"}`);
  if (ek !== '') throw bad('with alg dir the encrypted key is empty');
  const iv = decodeBase64url(ivB);
  const ct = decodeBase64url(ctB);
  const tag = decodeBase64url(tagB);
  if (!iv || iv.byteLength !== 12 || !ct || !tag || tag.byteLength !== 16) throw bad('its IV, ciphertext or tag is malformed');
  try {
    const d = createDecipheriv('aes-256-gcm', key, iv);
    d.setAAD(Buffer.from(h, 'ascii'));
    d.setAuthTag(tag);
    return Buffer.concat([d.update(ct), d.final()]).toString('utf8');
  } catch {
    throw bad('it does not decrypt under this attestation\'s reply key');
  }
}

function checkKey(key: Uint8Array): void {
  if (key.byteLength !== REPLY_KEY_BYTES) throw new BiokioskError('BadReplyKey', `a reply key is ${REPLY_KEY_BYTES} bytes, not ${key.byteLength}`, { kind: 'internal' });
}

function bad(why: string): BiokioskError {
  return new BiokioskError('BadSealedVerdict', `sealed verdict refused: ${why}`);
}
