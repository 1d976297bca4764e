/**
 * Strict base64url (RFC 4648 §5, no padding). Node's own decoder skips characters it does not know, so a
 * tampered or truncated field would decode to *something*; everything that arrives over the wire goes through
 * `decodeBase64url`, which refuses such input instead.
 */

const ALPHABET = /^[A-Za-z0-9_-]*$/;

/** True when `s` is unpadded base64url whose length can be a whole number of bytes. */
export function isBase64url(s: string): boolean {
  return s.length % 4 !== 1 && ALPHABET.test(s);
}

/** Decodes strict base64url; returns undefined for anything else (bad characters, impossible length, stray bits). */
export function decodeBase64url(s: string): Buffer | undefined {
  if (!isBase64url(s) || !lastCharIsCanonical(s)) return undefined;
  return Buffer.from(s, 'base64url');
}

const INDEX = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Canonical form only: when the length leaves a partial byte, the unused low bits of the last character must be
 * zero, so every value has exactly one encoding (and a flipped "don't care" bit cannot hide in a signature).
 */
function lastCharIsCanonical(s: string): boolean {
  const rem = s.length % 4;
  if (rem === 0) return true;
  const v = INDEX.indexOf(s[s.length - 1] ?? 'A');
  return rem === 2 ? (v & 0x0f) === 0 : (v & 0x03) === 0;
}

export function encodeBase64url(bytes: Uint8Array | string): string {
  return (typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('base64url');
}
