/**
 * The one thing a kiosk key store must do: sign a SHA-256 digest with a P-256 key and return r||s. Digest in,
 * not message in, because that is what a TPM (or any HSM) signs; the software key store of this repository and
 * the TPM key store of a later issue both implement this interface.
 */
import { createHash } from 'node:crypto';
import { BiokioskError } from './errors.ts';

/** A public P-256 key as a JWK: kty, crv, x, y (other members allowed, never `d`). */
export interface P256PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  [member: string]: unknown;
}

export interface Signer {
  /** The key's RFC 7638 JWK thumbprint; goes into the JWS header's `kid`. */
  readonly kid: string;
  /** The public half (EC P-256, x and y, no d). */
  readonly publicJwk: P256PublicJwk;
  /** ECDSA P-256 over a 32-byte SHA-256 digest; returns the 64-byte IEEE P1363 signature r||s. */
  sign(digest: Uint8Array): Promise<Uint8Array>;
  /**
   * Optional fast path for key stores that hold the key in process (a verifier's): ECDSA P-256 with SHA-256 over
   * the whole message, r||s. A TPM cannot offer it (it signs digests); node:crypto can, about 10x faster than
   * signing a digest in JavaScript.
   */
  signMessage?(message: Uint8Array): Promise<Uint8Array>;
}

/** Members that define each key type for the thumbprint (RFC 7638 §3.2), in lexicographic order. */
const REQUIRED_MEMBERS: Record<string, readonly string[]> = {
  EC: ['crv', 'kty', 'x', 'y'],
  RSA: ['e', 'kty', 'n'],
  OKP: ['crv', 'kty', 'x'],
  oct: ['k', 'kty'],
};

/**
 * RFC 7638 JWK thumbprint (SHA-256, base64url): JSON of the required members only, sorted, no whitespace.
 * Synchronous so a key store can know its kid at construction; cross-checked against jose in the tests.
 */
export function jwkThumbprint(jwk: { kty?: unknown; [member: string]: unknown }): string {
  const members = typeof jwk.kty === 'string' ? REQUIRED_MEMBERS[jwk.kty] : undefined;
  if (!members) throw new BiokioskError('BadKey', `cannot compute a thumbprint for key type ${JSON.stringify(jwk.kty)}`);
  const canonical: Record<string, string> = {};
  for (const m of members) {
    const v = jwk[m];
    if (typeof v !== 'string' || v.length === 0) throw new BiokioskError('BadKey', `the JWK has no "${m}" member`);
    canonical[m] = v;
  }
  // JSON.stringify keeps insertion order, and the members were inserted sorted.
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url');
}

/** Returns just the public members of a P-256 JWK, or throws when it is not one. */
export function p256PublicJwk(jwk: { [member: string]: unknown }): P256PublicJwk {
  const { kty, crv, x, y } = jwk;
  if (kty !== 'EC' || crv !== 'P-256' || typeof x !== 'string' || typeof y !== 'string' || x.length !== 43 || y.length !== 43) {
    throw new BiokioskError('BadKey', 'expected an EC P-256 JWK with 32-byte x and y');
  }
  return { kty, crv, x, y };
}
