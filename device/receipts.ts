/**
 * The kiosk's check of a verdict's audit receipt, before the attempt is settled: the entry is about this
 * attestation and says what the verdict says; the entry (with its salt) and the inclusion proof lead to the root
 * of a checkpoint signed by the log key the kiosk was given (cosignatures by the witnesses it is configured with
 * are checked and kept); and that checkpoint is consistent (RFC 9162 2.1.4) with the one this kiosk accepted
 * before and named in its attestation (`log_size`). Pure: the checkpoints the kiosk holds come in as functions,
 * and the result says whether the new one may become the latest.
 */
import { canonicalJson } from '../protocol/canonical.ts';
import { decodeBase64url } from '../protocol/base64url.ts';
import type { VerdictClaims } from '../protocol/claims.ts';
import { verifyConsistency } from '../protocol/merkle.ts';
import { checkReceiptProof, type LogTrust } from '../protocol/receipt.ts';

/** A checkpoint as the kiosk keeps it. */
export interface KeptHead {
  treeSize: number;
  /** base64url. */
  rootHash: string;
  /** The signed note, with the cosignatures it came with. */
  note: string;
  /** Witnesses (of those this kiosk trusts) that cosigned it. */
  witnesses: string[];
}

export interface AttestationFacts {
  ueid: string;
  attId: string;
  /** base64url SHA-256 of the attestation JWS. */
  hash: string;
  seq: number;
  /** The `log_size` the attestation named (0: none). */
  logSize: number;
}

export interface HeldHeads {
  /** The latest checkpoint this kiosk accepted through a proven chain (or its first one), if any. */
  latest(): KeptHead | undefined;
  /** A checkpoint of this size the kiosk accepted, if it still holds one. */
  at(treeSize: number): KeptHead | undefined;
}

export type ReceiptOutcome =
  | { ok: true; head: KeptHead; /** It extends the latest by a verified proof (or is the first): it becomes the latest. */ advances: boolean }
  | { ok: false; kind: 'mismatch' | 'forged' | 'inconsistent'; reason: string };

export function checkReceipt(v: VerdictClaims, a: AttestationFacts, held: HeldHeads, trust: LogTrust): ReceiptOutcome {
  const r = v.receipt;
  const e = r.entry;
  const fail = (kind: 'mismatch' | 'forged' | 'inconsistent', reason: string): ReceiptOutcome => ({ ok: false, kind, reason });
  // The entry must be this attestation's and say what the verdict says.
  if (e.ueid !== a.ueid || e.att_id !== a.attId || e.att_hash !== a.hash || e.seq !== a.seq) return fail('mismatch', `the receipt's log entry is for ${e.ueid}/${e.att_id} (seq ${e.seq}), not this attestation`);
  if (e.decision !== v.decision || e.reasons.join(',') !== v.reasons.map((x) => x.code).join(',')) return fail('mismatch', `the log entry says ${e.decision} (${e.reasons.join(', ') || 'no reasons'}), the verdict ${v.decision}`);
  // Scenario, policy version, eligibility, step_up, lock, override: the verdict must say what the log keeps.
  if (canonicalJson(e.detail ?? null) !== canonicalJson(v.detail ?? null)) return fail('mismatch', "the verdict's scenario, policy, eligibility or lock differ from its log entry's");
  const proof = checkReceiptProof(r, trust);
  if (!proof.ok) return fail('forged', proof.reason);
  const head: KeptHead = { treeSize: r.treeSize, rootHash: r.rootHash, note: r.checkpoint, witnesses: [...proof.witnessedBy.keys()].sort() };
  // Consistency with what this kiosk saw before.
  const same = held.at(r.treeSize);
  if (same && same.rootHash !== r.rootHash) return fail('inconsistent', `the log showed this kiosk two different trees of ${r.treeSize} entries: it was rewritten`);
  const latest = held.latest();
  if (r.consistency === null) {
    if (a.logSize > 0) return fail('inconsistent', `the verifier proved nothing from the tree of ${a.logSize} entries this kiosk holds (its log is smaller, or another one)`);
    return { ok: true, head, advances: latest === undefined };
  }
  if (r.consistency.from !== a.logSize) return fail('mismatch', `the consistency proof starts at ${r.consistency.from}, not at the ${a.logSize} this attestation named`);
  const from = held.at(r.consistency.from);
  // A checkpoint named at attest time and pruned since: the proof cannot be checked, and the head does not advance.
  if (!from) return { ok: true, head, advances: latest === undefined };
  const fromRoot = decodeBase64url(from.rootHash)!;
  const root = decodeBase64url(r.rootHash)!;
  const cproof = r.consistency.proof.map(decodeBase64url);
  if (cproof.some((p) => !p) || !verifyConsistency(from.treeSize, r.treeSize, fromRoot, root, cproof as Buffer[])) {
    return fail('inconsistent', `the tree of ${r.treeSize} entries does not extend the tree of ${from.treeSize} this kiosk accepted: the log was rewritten`);
  }
  return { ok: true, head, advances: latest === undefined || (from.treeSize === latest.treeSize && r.treeSize >= latest.treeSize) };
}
