/**
 * Signed tree heads: the log's signed statement "my tree of tree_size leaves has root root_hash, as of
 * timestamp". The signed bytes are the canonical JSON of {root_hash, timestamp, tree_size} (root_hash base64url,
 * timestamp in milliseconds since the epoch), so anyone holding those three values and the log's public key can
 * check the signature. Signing and verification are injected: the verifier signs with its ES256 key.
 */
import { createHash, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { Signer } from './signer.ts';
import { canonicalBytes } from './canonical.ts';

export interface TreeHead {
  tree_size: number;
  /** base64url MTH of the first tree_size leaves. */
  root_hash: string;
  /** Milliseconds since the epoch. */
  timestamp: number;
}

export interface SignedTreeHead extends TreeHead {
  /** base64url signature over treeHeadSigningInput(head); for ES256, r||s. */
  signature: string;
}

/** Signs the bytes of a tree head; returns the raw signature. */
export type TreeHeadSign = (message: Uint8Array) => Promise<Uint8Array>;
/** Checks a tree head signature; false (or a rejected promise) when it does not verify. */
export type TreeHeadVerify = (message: Uint8Array, signature: Uint8Array) => boolean | Promise<boolean>;

/** The bytes a tree head signature covers. */
export function treeHeadSigningInput(head: TreeHead): Buffer {
  return canonicalBytes({ root_hash: head.root_hash, timestamp: head.timestamp, tree_size: head.tree_size });
}

/** ES256 over the message with an in-process P-256 private key (node:crypto; r||s). */
export function p256TreeHeadSigner(privateKey: KeyObject): TreeHeadSign {
  return async (message) => cryptoSign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' });
}

/** ES256 verification with a P-256 public key (KeyObject or JWK). */
export function p256TreeHeadVerifier(publicKey: KeyObject | JsonWebKey): TreeHeadVerify {
  const key = isKeyObject(publicKey) ? publicKey : createPublicKey({ key: publicKey, format: 'jwk' });
  return (message, signature) => {
    try {
      return cryptoVerify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, signature);
    } catch {
      return false;
    }
  };
}

/**
 * Tree heads signed by a biokiosk Signer (the verifier's key store): its whole-message fast path when it has
 * one, else ES256 over the SHA-256 digest. Both give signatures p256TreeHeadVerifier accepts.
 */
export function treeHeadSignerFrom(signer: Signer): TreeHeadSign {
  return async (message) => {
    if (signer.signMessage) return signer.signMessage(message);
    return signer.sign(createHash('sha256').update(message).digest());
  };
}

function isKeyObject(k: KeyObject | JsonWebKey): k is KeyObject {
  return typeof (k as KeyObject).export === 'function' && typeof (k as KeyObject).type === 'string';
}
