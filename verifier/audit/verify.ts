/**
 * Checking the audit log.
 *
 * `auditLog` (for `biokiosk verifier audit`) reads the whole store and checks, in one pass over the entries:
 * - the entries are contiguous, 0..n-1 (a deleted entry is reported at its index);
 * - each entry's stored leaf hash is SHA-256(0x00 || its record bytes) (a changed record is reported at its
 *   index), and the record bytes are canonical JSON;
 * - the stored perfect-subtree hashes (what proofs are built from) agree with the leaf hashes;
 * - every signed tree head: its signature, its root against the root recomputed from the entries (a root that
 *   does not match a validly signed head means entries were changed together with their stored hashes: the
 *   entry is pinned to the smallest range the evidence allows), its timestamp not before the previous head's,
 *   and an RFC 9162 consistency proof (built from the store) from the previous head;
 * - no signed head is for more entries than the log has (a truncated log).
 * `firstTampered` is the lowest entry index found changed or missing.
 *
 * `verifyReceipt` is what a kiosk or an outside auditor runs on a verdict's receipt: the record's leaf hash, the
 * inclusion proof up to the root, and the tree head's signature. It needs no store.
 */
import { decodeBase64url } from '../../protocol/base64url.ts';
import { canonicalBytes, isCanonicalJson } from '../../protocol/canonical.ts';
import { storeSubtreeHash, toSignedTreeHead } from './log.ts';
import { consistencyPath, HASH_BYTES, leafHash, MerkleFrontier, rootFromInclusionProof, verifyConsistency } from '../../protocol/merkle.ts';
import type { AuditStore, TreeHeadRow } from './store.ts';
import { treeHeadSigningInput, type SignedTreeHead, type TreeHeadVerify } from '../../protocol/tree-head.ts';

export type AuditProblemKind =
  | 'missing_leaf'
  | 'leaf_hash'
  | 'record_not_canonical'
  | 'node_missing'
  | 'node_hash'
  | 'tree_head_signature'
  | 'tree_head_root'
  | 'tree_head_timestamp'
  | 'tree_head_beyond_log'
  | 'tree_head_unchecked'
  | 'consistency'
  | 'known_tree_head_signature'
  | 'known_tree_head_root'
  | 'known_tree_head_beyond_log'
  | 'known_tree_head_unchecked';

export interface AuditProblem {
  kind: AuditProblemKind;
  message: string;
  /** The entry concerned, when there is one. */
  index?: number;
  /** The tree head concerned, when there is one. */
  treeSize?: number;
}

export interface AuditReport {
  ok: boolean;
  /** One past the highest entry index. */
  size: number;
  /** Entries read. */
  checkedLeaves: number;
  checkedTreeHeads: number;
  /** base64url root recomputed over all entries (absent when an entry is missing). */
  rootHash?: string;
  latestTreeHead?: SignedTreeHead;
  /** The lowest entry index found changed or missing, and why. */
  firstTampered?: { index: number; reason: string };
  /** The first `maxProblems` problems, in the order found. */
  problems: AuditProblem[];
  problemCount: number;
}

export interface AuditOptions {
  /** Entries read per query. */
  chunk?: number;
  /** Problems kept in the report (all are counted). */
  maxProblems?: number;
  /**
   * Tree heads obtained elsewhere (from verdict receipts kiosks kept, from a monitor): each is checked against
   * the entries like the stored ones. This is what catches a log rewritten together with its stored heads, or a
   * log that showed different trees to different parties.
   */
  knownTreeHeads?: readonly SignedTreeHead[];
}

export async function auditLog(store: AuditStore, verifyTreeHeadSignature: TreeHeadVerify, options: AuditOptions = {}): Promise<AuditReport> {
  return store.snapshot(() => audit(store, verifyTreeHeadSignature, options));
}

async function audit(store: AuditStore, verifyTreeHeadSignature: TreeHeadVerify, options: AuditOptions): Promise<AuditReport> {
  const chunk = options.chunk ?? 4096;
  const maxProblems = options.maxProblems ?? 100;
  const size = store.size();
  const problems: AuditProblem[] = [];
  let problemCount = 0;
  let firstTampered: AuditReport['firstTampered'];
  const problem = (p: AuditProblem) => {
    problemCount++;
    if (problems.length < maxProblems) problems.push(p);
  };
  const tampered = (index: number, reason: string) => {
    if (!firstTampered || index < firstTampered.index) firstTampered = { index, reason };
  };

  const frontier = MerkleFrontier.empty(); // over the stored leaf hashes, each checked against its record
  const proofs = storeSubtreeHash(store);
  let brokenAt: number | undefined; // first missing entry: no roots can be recomputed past it
  let lastGood = 0; // size of the last head whose signature and root both check
  let nodeEvidence: { start: number; end: number } | undefined; // first stored subtree that disagrees with its leaves
  let prev: TreeHeadRow | undefined;
  let checkedTreeHeads = 0;
  let unchecked = 0;
  let leaves = 0;
  let nextIndex = 0;

  // Tree heads, paged, in size order.
  let heads: TreeHeadRow[] = store.treeHeads(-1, 1024);
  let hp = 0;
  const peekHead = (): TreeHeadRow | undefined => {
    if (hp >= heads.length && heads.length > 0) {
      heads = store.treeHeads(heads[heads.length - 1]!.treeSize, 1024);
      hp = 0;
    }
    return heads[hp];
  };

  // Tree heads from elsewhere, in size order; ones that are not even well-formed are reported straight away.
  const known: TreeHeadRow[] = [];
  for (const k of options.knownTreeHeads ?? []) {
    const rootHash = decodeBase64url(k.root_hash);
    const signature = decodeBase64url(k.signature);
    if (!Number.isSafeInteger(k.tree_size) || k.tree_size < 0 || !Number.isSafeInteger(k.timestamp) || !rootHash || rootHash.length !== HASH_BYTES || !signature) {
      problem({ kind: 'known_tree_head_signature', treeSize: k.tree_size, message: `a tree head given for size ${k.tree_size} is malformed` });
    } else {
      known.push({ treeSize: k.tree_size, rootHash, timestamp: k.timestamp, signature });
    }
  }
  known.sort((a, b) => a.treeSize - b.treeSize);
  let kp = 0;

  /**
   * root: the recomputed root of the first h.treeSize entries, or why there is none. `external`: a head given
   * by the caller rather than stored (checked against the entries, not part of the stored sequence).
   */
  const checkHead = async (h: TreeHeadRow, root: Buffer | 'unchecked' | 'beyond', external = false) => {
    const s = h.treeSize;
    const kind = <K extends 'tree_head_signature' | 'tree_head_root' | 'tree_head_beyond_log'>(k: K) => (external ? (`known_${k}` as const) : k);
    const which = external ? 'given tree head' : 'tree head';
    if (!external) checkedTreeHeads++;
    const head = toSignedTreeHead(h);
    let sigOk = false;
    try {
      sigOk = (await verifyTreeHeadSignature(treeHeadSigningInput(head), h.signature)) === true;
    } catch {
      sigOk = false;
    }
    if (!sigOk) problem({ kind: kind('tree_head_signature'), treeSize: s, message: `the signature of the ${which} for size ${s} does not verify` });
    if (external && !sigOk) return; // not the log's statement: nothing to compare
    if (!external && prev && h.timestamp < prev.timestamp) {
      problem({ kind: 'tree_head_timestamp', treeSize: s, message: `the tree head for size ${s} is dated before the one for size ${prev.treeSize}` });
    }
    if (root === 'unchecked') {
      if (external) problem({ kind: 'known_tree_head_unchecked', treeSize: s, message: `the given tree head for size ${s} cannot be checked: entries are missing` });
      else unchecked++;
    } else if (root === 'beyond') {
      problem({ kind: kind('tree_head_beyond_log'), treeSize: s, message: `a ${which} is signed for ${s} entries but the log has ${size}` });
      if (sigOk && brokenAt === undefined) tampered(size, `entries from ${size} on are missing: a ${which} is signed for ${s} entries but the log has ${size}`);
    } else if (!root.equals(h.rootHash)) {
      problem({ kind: kind('tree_head_root'), treeSize: s, message: `the root of the ${which} for size ${s} is not the root of the first ${s} entries` });
      if (sigOk && !firstTampered) {
        // Every leaf hash matched its record, so entries were rewritten along with their hashes; the signed
        // head brackets the change, and a stored subtree still holding the old hash narrows it.
        const range = nodeEvidence && nodeEvidence.start >= lastGood && nodeEvidence.end <= s ? nodeEvidence : { start: lastGood, end: s };
        tampered(range.start, `an entry in [${range.start}, ${range.end}) was changed together with its stored hash: the signed ${which} for size ${s} does not match the entries`);
      }
    } else if (sigOk) {
      lastGood = Math.max(lastGood, s);
    }
    if (external) return;
    if (prev && (brokenAt === undefined || s <= brokenAt)) {
      let consistent: boolean;
      let why = '';
      try {
        consistent = verifyConsistency(prev.treeSize, s, prev.rootHash, h.rootHash, consistencyPath(prev.treeSize, s, proofs));
      } catch (e) {
        consistent = false;
        why = `: ${(e as Error).message}`;
      }
      if (!consistent) problem({ kind: 'consistency', treeSize: s, message: `no consistency proof from the tree head for size ${prev.treeSize} to the one for size ${s}${why}` });
    }
    prev = h;
  };

  const rootFor = (h: TreeHeadRow) => (h.treeSize > size ? 'beyond' : brokenAt === undefined && h.treeSize === frontier.size ? frontier.root() : 'unchecked');
  const headsUpTo = async (n: number) => {
    for (let h = peekHead(); h && h.treeSize <= n; h = peekHead()) {
      hp++;
      await checkHead(h, rootFor(h));
    }
    for (let h = known[kp]; h && h.treeSize <= n; h = known[kp]) {
      kp++;
      await checkHead(h, rootFor(h), true);
    }
  };

  await headsUpTo(0);
  for (let next = 0; next < size; next += chunk) {
    for (const row of store.range(next, Math.min(next + chunk, size))) {
      leaves++;
      if (row.index !== nextIndex) {
        const what = row.index - nextIndex === 1 ? `entry ${nextIndex} is missing` : `entries ${nextIndex}..${row.index - 1} are missing`;
        problem({ kind: 'missing_leaf', index: nextIndex, message: what });
        tampered(nextIndex, what);
        brokenAt ??= nextIndex;
        await headsUpTo(row.index); // heads inside the gap: signatures only
      }
      nextIndex = row.index + 1;
      const recomputed = leafHash(row.record);
      if (!recomputed.equals(row.leafHash)) {
        problem({ kind: 'leaf_hash', index: row.index, message: `entry ${row.index} (${row.key}): the record is not the one logged (its hash differs)` });
        tampered(row.index, `the record of entry ${row.index} (${row.key}) was changed: it no longer matches its leaf hash`);
      } else if (!isCanonicalJson(row.record)) {
        problem({ kind: 'record_not_canonical', index: row.index, message: `entry ${row.index} (${row.key}): the record is not canonical JSON` });
      }
      if (brokenAt !== undefined) continue;
      const completed = frontier.append(row.leafHash.length === HASH_BYTES ? row.leafHash : recomputed);
      for (const n of completed) {
        const stored = store.node(n.level, n.index);
        const start = n.index * 2 ** n.level;
        if (!stored) problem({ kind: 'node_missing', index: start, message: `the hash of subtree ${n.index} at level ${n.level} (entries ${start}..${start + 2 ** n.level - 1}) is missing` });
        else if (!stored.equals(n.hash)) {
          problem({ kind: 'node_hash', index: start, message: `the stored hash of subtree ${n.index} at level ${n.level} (entries ${start}..${start + 2 ** n.level - 1}) does not match them` });
          nodeEvidence ??= { start, end: start + 2 ** n.level };
        }
      }
      await headsUpTo(frontier.size);
    }
  }
  await headsUpTo(Number.MAX_SAFE_INTEGER); // heads in a trailing gap, and any beyond the last entry
  if (unchecked > 0) {
    problem({ kind: 'tree_head_unchecked', message: `the roots of ${unchecked} tree head(s) above size ${brokenAt ?? size} could not be recomputed because entries are missing` });
  }
  const latest = store.latestTreeHead();
  return {
    ok: problemCount === 0,
    size,
    checkedLeaves: leaves,
    checkedTreeHeads,
    ...(brokenAt === undefined ? { rootHash: frontier.root().toString('base64url') } : {}),
    ...(latest ? { latestTreeHead: toSignedTreeHead(latest) } : {}),
    ...(firstTampered ? { firstTampered } : {}),
    problems,
    problemCount,
  };
}

/** A receipt as AuditLog returns it, or in the flat form of a verdict's receipt plus the tree head's timestamp. */
export type ReceiptInput =
  | { leafIndex: number; inclusionProof: readonly string[]; signedTreeHead: SignedTreeHead; treeSize?: number; rootHash?: string }
  | { leafIndex: number; treeSize: number; rootHash: string; inclusionProof: readonly string[]; treeHeadSignature: string; treeHeadTimestamp: number };

export type ReceiptCheck = { ok: true; treeHead: SignedTreeHead } | { ok: false; reason: string };

/**
 * Checks that `record` (the decision record, or its canonical bytes) is entry `leafIndex` of the log whose signed
 * tree head the receipt carries: leaf hash, inclusion proof to the root, signature over the head.
 */
export async function verifyReceipt(record: object | Uint8Array, receipt: ReceiptInput, verifyTreeHeadSignature: TreeHeadVerify): Promise<ReceiptCheck> {
  const fail = (reason: string): ReceiptCheck => ({ ok: false, reason });
  let sth: SignedTreeHead;
  if ('signedTreeHead' in receipt) {
    sth = receipt.signedTreeHead;
    if (receipt.treeSize !== undefined && receipt.treeSize !== sth.tree_size) return fail('the receipt tree size is not its tree head one');
    if (receipt.rootHash !== undefined && receipt.rootHash !== sth.root_hash) return fail('the receipt root hash is not its tree head one');
  } else {
    sth = { tree_size: receipt.treeSize, root_hash: receipt.rootHash, timestamp: receipt.treeHeadTimestamp, signature: receipt.treeHeadSignature };
  }
  if (!Number.isSafeInteger(sth.tree_size) || !Number.isSafeInteger(sth.timestamp)) return fail('the tree head size or timestamp is not an integer');
  const root = decodeBase64url(sth.root_hash);
  const signature = decodeBase64url(sth.signature);
  const proof = receipt.inclusionProof.map((p) => decodeBase64url(p));
  if (!root || root.length !== HASH_BYTES) return fail('the root hash is not a base64url SHA-256');
  if (!signature) return fail('the tree head signature is not base64url');
  if (proof.some((p) => !p || p.length !== HASH_BYTES)) return fail('an inclusion proof hash is not a base64url SHA-256');
  let bytes: Uint8Array;
  try {
    bytes = record instanceof Uint8Array ? record : canonicalBytes(record);
  } catch (e) {
    return fail(`the record cannot be canonicalised: ${(e as Error).message}`);
  }
  const computed = rootFromInclusionProof(receipt.leafIndex, sth.tree_size, leafHash(bytes), proof as Buffer[]);
  if (!computed) return fail(`the inclusion proof does not fit entry ${receipt.leafIndex} of a tree of ${sth.tree_size}`);
  if (!computed.equals(root)) return fail('the record and inclusion proof do not lead to the tree head root');
  let sigOk = false;
  try {
    sigOk = (await verifyTreeHeadSignature(treeHeadSigningInput(sth), signature)) === true;
  } catch {
    sigOk = false;
  }
  if (!sigOk) return fail('the tree head signature does not verify');
  return { ok: true, treeHead: sth };
}

/** A human-readable summary of an audit, for the CLI. */
export function formatAuditReport(r: AuditReport): string {
  const lines = [
    `${r.ok ? 'OK' : 'FAILED'}: ${r.checkedLeaves} of ${r.size} entries and ${r.checkedTreeHeads} signed tree heads checked`,
    ...(r.rootHash ? [`root: ${r.rootHash}`] : []),
    ...(r.latestTreeHead ? [`latest signed tree head: size ${r.latestTreeHead.tree_size}, ${new Date(r.latestTreeHead.timestamp).toISOString()}`] : []),
    ...(r.firstTampered ? [`first tampered entry: ${r.firstTampered.index} (${r.firstTampered.reason})`] : []),
    ...r.problems.map((p) => `  ${p.kind}: ${p.message}`),
    ...(r.problemCount > r.problems.length ? [`  ... and ${r.problemCount - r.problems.length} more`] : []),
  ];
  return lines.join('\n');
}
