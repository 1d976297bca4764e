/**
 * ECDSA P-256 over a precomputed SHA-256 digest, for the development software key store only.
 *
 * node:crypto cannot sign a digest (`crypto.sign` always hashes its input), and a TPM signs digests, so the
 * `Signer` interface takes one. The software store answers that with @noble/curves (audited, RFC 6979
 * deterministic nonces, low-s), with prehashing off; its JWS signatures take the whole-message path
 * (`signMessage`, node:crypto) instead, which is much faster. Output: r||s, 64 bytes, as ES256 wants.
 */
import { p256 } from '@noble/curves/nist.js';

export function signDigestP256(privateScalar: Uint8Array, digest: Uint8Array): Uint8Array {
  if (digest.length !== 32) throw new Error(`signDigestP256: expected a 32-byte SHA-256 digest, got ${digest.length} bytes`);
  if (privateScalar.length !== 32) throw new Error(`signDigestP256: expected a 32-byte private scalar, got ${privateScalar.length} bytes`);
  return p256.sign(digest, privateScalar, { prehash: false, format: 'compact' });
}
