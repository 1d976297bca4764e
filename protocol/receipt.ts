/**
 * Checking a verdict's audit receipt on its own (what a kiosk does before settling an attempt, and what anyone
 * holding a receipt can do): the entry and its salt give the published leaf, the inclusion proof leads from it
 * to the root, and the checkpoint carrying that root is signed by the log (one of its keys) and, where present,
 * cosigned by witnesses the checker trusts. Pure; no store.
 */
import { decodeBase64url } from './base64url.ts';
import { canonicalBytes } from './canonical.ts';
import type { Receipt } from './claims.ts';
import { createHash } from 'node:crypto';
import { leafHash, rootFromInclusionProof } from './merkle.ts';
import { openCheckpoint, type Checkpoint, type NoteVerifier } from './note.ts';

export interface LogTrust {
  /** The log's checkpoint keys (several during a rotation). */
  logKeys: readonly NoteVerifier[];
  /** Witnesses whose cosignatures count. */
  witnesses?: readonly NoteVerifier[];
}

export type ReceiptProofCheck =
  | { ok: true; checkpoint: Checkpoint; /** Witness name -> cosignature time (POSIX seconds). */ witnessedBy: Map<string, number> }
  | { ok: false; kind: 'forged'; reason: string };

/** The published leaf data: SHA-256(salt || record bytes). The record stays private; this is what the log shows. */
export function leafCommitment(salt: Uint8Array, record: Uint8Array): Buffer {
  return createHash('sha256').update(salt).update(record).digest();
}

/** The commitment to an entry given as an object (its canonical JSON). */
export function entryCommitment(salt: Uint8Array, entry: object): Buffer {
  return leafCommitment(salt, canonicalBytes(entry));
}

export function checkReceiptProof(r: Receipt, trust: LogTrust): ReceiptProofCheck {
  const fail = (reason: string): ReceiptProofCheck => ({ ok: false, kind: 'forged', reason });
  const root = decodeBase64url(r.rootHash);
  const salt = decodeBase64url(r.salt);
  const proof = r.inclusionProof.map(decodeBase64url);
  if (!root || !salt || proof.some((p) => !p)) return fail('the receipt has hashes that are not base64url');
  let opened: ReturnType<typeof openCheckpoint>;
  try {
    opened = openCheckpoint(r.checkpoint, trust.logKeys, trust.witnesses ?? []);
  } catch (e) {
    return fail(`its checkpoint: ${(e as Error).message}`);
  }
  const cp = opened.checkpoint;
  if (cp.treeSize !== r.treeSize || !cp.rootHash.equals(root)) return fail(`the checkpoint is for a tree of ${cp.treeSize} entries with another root than the receipt's tree of ${r.treeSize}`);
  const leaf = leafHash(entryCommitment(salt, r.entry));
  const computed = rootFromInclusionProof(r.leafIndex, r.treeSize, leaf, proof as Buffer[]);
  if (!computed || !computed.equals(root)) return fail(`the inclusion proof does not lead from entry ${r.leafIndex} to the root of the tree of ${r.treeSize}`);
  return { ok: true, checkpoint: cp, witnessedBy: opened.witnessedBy };
}
