/**
 * Checking the audit log (`biokiosk verifier audit`), by someone with access to the store, against evidence the
 * log's operator cannot forge.
 *
 * One pass over the entries checks: they are contiguous, 0..n-1 (a deleted entry is reported at its index); each
 * entry's leaf hash is that of SHA-256(salt || record), the record canonical JSON; the stored perfect-subtree
 * hashes (what proofs and tiles are built from) agree with the leaves. Then every checkpoint, each against the
 * root recomputed from the entries at its size:
 * - the log's own stored checkpoints: note well-formed, signed by one of the log's keys, root matching. These
 *   catch a change that was not re-signed, but not an insider holding the log key, who rewrites the entries,
 *   their hashes and the checkpoints together;
 * - independent evidence, which does catch that insider: checkpoints cosigned by trusted witnesses (stored with
 *   the log, or exported by a witness: `biokiosk witness latest`) and checkpoints kiosks accepted (`biokiosk kiosk
 *   heads`). Such a checkpoint whose tree the entries no longer give means the log was rewritten; the largest
 *   independent checkpoint that still matches and the smallest that does not bracket the change, and the report
 *   names the entries in that range. One for more entries than the log has means entries were removed.
 *
 * The receipt check for a single verdict is protocol/receipt.ts (no store needed).
 */
import { isCanonicalJson } from '../../protocol/canonical.ts';
import { HASH_BYTES, MerkleFrontier } from '../../protocol/merkle.ts';
import { openCheckpoint, parseCheckpointText, parseNote, verifiedSigners, type NoteVerifier } from '../../protocol/note.ts';
import { entryLeafHash, SALT_BYTES } from './log.ts';
import type { AuditReader, CheckpointRow } from './store.ts';

export type AuditProblemKind =
  | 'missing_leaf'
  | 'leaf_hash'
  | 'record_not_canonical'
  | 'node_missing'
  | 'node_hash'
  | 'checkpoint_note'
  | 'checkpoint_signature'
  | 'checkpoint_root'
  | 'checkpoint_timestamp'
  | 'checkpoint_beyond_log'
  | 'checkpoint_unchecked'
  | 'cosignature'
  | 'witnessed_root'
  | 'witnessed_beyond_log'
  | 'known_note'
  | 'known_root'
  | 'known_beyond_log'
  | 'known_unchecked';

export interface AuditProblem {
  kind: AuditProblemKind;
  message: string;
  /** The entry concerned, when there is one. */
  index?: number;
  /** The checkpoint concerned, when there is one. */
  treeSize?: number;
}

export interface AuditReport {
  ok: boolean;
  origin: string | undefined;
  /** One past the highest entry index. */
  size: number;
  checkedLeaves: number;
  checkedCheckpoints: number;
  /** Checkpoints checked that the operator could not have made alone (witness-cosigned, or from kiosks). */
  independentCheckpoints: number;
  /** base64url root recomputed over all entries (absent when an entry is missing). */
  rootHash?: string;
  latestCheckpoint?: { treeSize: number; timestamp: number; witnesses: string[] };
  /** The lowest entry index found changed or missing, and why. */
  firstTampered?: { index: number; reason: string };
  /** The first `maxProblems` problems, in the order found. */
  problems: AuditProblem[];
  problemCount: number;
}

export interface AuditTrust {
  /** Every key the log ever signed checkpoints with (retired ones too). */
  logKeys: readonly NoteVerifier[];
  /** Witnesses whose cosignatures are independent evidence. */
  witnesses?: readonly NoteVerifier[];
}

export interface AuditOptions {
  /** Entries read per query. */
  chunk?: number;
  /** Problems kept in the report (all are counted). */
  maxProblems?: number;
  /** Checkpoint notes obtained elsewhere (kiosks' heads, a witness's latest). */
  knownCheckpoints?: readonly string[];
}

/** A checkpoint to compare with the entries, and how much it proves. */
interface Claim {
  treeSize: number;
  rootHash: Buffer;
  /** Where it came from, for messages. */
  source: string;
  kind: 'stored' | 'witnessed' | 'known';
  row?: CheckpointRow;
}

export async function auditLog(reader: AuditReader, trust: AuditTrust, options: AuditOptions = {}): Promise<AuditReport> {
  return reader.snapshot((r) => audit(r, trust, options));
}

async function audit(store: AuditReader, trust: AuditTrust, options: AuditOptions): Promise<AuditReport> {
  const chunk = options.chunk ?? 4096;
  const maxProblems = options.maxProblems ?? 100;
  const size = await store.size();
  const origin = await store.meta('origin');
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

  // The evidence: stored checkpoints (with any witness cosignatures), then the ones given.
  const claims: Claim[] = [];
  let checkedCheckpoints = 0;
  let latestCheckpoint: AuditReport['latestCheckpoint'];
  let prevTimestamp = -Infinity;
  for (let after = -1; ; ) {
    const page = await store.checkpoints(after, 1024);
    if (page.length === 0) break;
    for (const row of page) {
      checkedCheckpoints++;
      const s = row.treeSize;
      let verified = false;
      try {
        const note = parseNote(row.note);
        const cp = parseCheckpointText(note.text);
        if (cp.treeSize !== s || !cp.rootHash.equals(row.rootHash) || (origin !== undefined && cp.origin !== origin)) {
          problem({ kind: 'checkpoint_note', treeSize: s, message: `the stored checkpoint for size ${s} does not say what its row says (size, root or origin)` });
        }
        const signers = verifiedSigners(note, trust.logKeys);
        verified = signers.names.size > 0 && signers.bad.length === 0;
        if (!verified) problem({ kind: 'checkpoint_signature', treeSize: s, message: `the checkpoint for size ${s} is not signed by the log's keys` });
      } catch (e) {
        problem({ kind: 'checkpoint_note', treeSize: s, message: `the stored checkpoint for size ${s} is not a valid note: ${(e as Error).message}` });
      }
      if (row.timestamp < prevTimestamp) problem({ kind: 'checkpoint_timestamp', treeSize: s, message: `the checkpoint for size ${s} is dated before the one before it` });
      prevTimestamp = row.timestamp;
      if (verified) claims.push({ treeSize: s, rootHash: row.rootHash, source: `the log's checkpoint for size ${s}`, kind: 'stored', row });
      const lines = await store.cosignatures(s);
      const witnesses: string[] = [];
      if (lines.length > 0 && trust.witnesses && trust.witnesses.length > 0) {
        try {
          const note = parseNote(`${row.note.slice(0, row.note.indexOf('\n\n') + 1)}\n${lines.join('')}`);
          const w = verifiedSigners(note, trust.witnesses);
          for (const bad of w.bad) problem({ kind: 'cosignature', treeSize: s, message: `the cosignature of ${bad} stored for size ${s} does not verify` });
          for (const name of w.names) {
            witnesses.push(name);
            claims.push({ treeSize: s, rootHash: row.rootHash, source: `the checkpoint for size ${s} cosigned by ${name}`, kind: 'witnessed' });
          }
        } catch (e) {
          problem({ kind: 'cosignature', treeSize: s, message: `the cosignatures stored for size ${s} are malformed: ${(e as Error).message}` });
        }
      }
      latestCheckpoint = { treeSize: s, timestamp: row.timestamp, witnesses };
    }
    after = page[page.length - 1]!.treeSize;
  }
  for (const [i, note] of (options.knownCheckpoints ?? []).entries()) {
    try {
      const opened = openCheckpointLenient(note, trust);
      if (origin !== undefined && opened.origin !== origin) {
        problem({ kind: 'known_note', message: `given checkpoint ${i + 1} is for the log ${opened.origin}, not ${origin}` });
        continue;
      }
      claims.push({ treeSize: opened.treeSize, rootHash: opened.rootHash, source: `${opened.by} (given checkpoint ${i + 1}, size ${opened.treeSize})`, kind: opened.witnessed ? 'witnessed' : 'known' });
    } catch (e) {
      problem({ kind: 'known_note', message: `given checkpoint ${i + 1}: ${(e as Error).message}` });
    }
  }
  claims.sort((a, b) => a.treeSize - b.treeSize);

  // The entries, in one pass; claims are compared as the recomputed tree reaches their size.
  const frontier = MerkleFrontier.empty();
  let brokenAt: number | undefined;
  let lastIndependentGood = 0;
  let lastGood = 0;
  let leaves = 0;
  let nextIndex = 0;
  let cp = 0;
  let independent = 0;
  const mismatches: Claim[] = [];
  const compare = (c: Claim, root: Buffer | 'unchecked' | 'beyond') => {
    const s = c.treeSize;
    const isIndependent = c.kind !== 'stored';
    if (isIndependent) independent++;
    if (root === 'beyond') {
      const kind = c.kind === 'stored' ? 'checkpoint_beyond_log' : c.kind === 'witnessed' ? 'witnessed_beyond_log' : 'known_beyond_log';
      problem({ kind, treeSize: s, message: `${c.source} covers ${s} entries but the log has ${size}: entries were removed` });
      tampered(Math.min(size, lastIndependentGood), `entries were removed: ${c.source} covers ${s} entries, the log has ${size}`);
    } else if (root === 'unchecked') {
      problem({ kind: c.kind === 'stored' ? 'checkpoint_unchecked' : 'known_unchecked', treeSize: s, message: `${c.source} cannot be checked: entries below ${s} are missing` });
    } else if (!root.equals(c.rootHash)) {
      const kind = c.kind === 'stored' ? 'checkpoint_root' : c.kind === 'witnessed' ? 'witnessed_root' : 'known_root';
      problem({ kind, treeSize: s, message: `${c.source} is not the tree the first ${s} entries give: the log was rewritten` });
      mismatches.push(c);
    } else {
      lastGood = Math.max(lastGood, s);
      if (isIndependent) lastIndependentGood = Math.max(lastIndependentGood, s);
    }
  };
  const claimsUpTo = (n: number) => {
    for (let c = claims[cp]; c && c.treeSize <= n; c = claims[cp]) {
      cp++;
      compare(c, c.treeSize > size ? 'beyond' : brokenAt === undefined && c.treeSize === frontier.size ? (c.treeSize === 0 ? MerkleFrontier.empty().root() : frontier.root()) : 'unchecked');
    }
  };
  const narrowings: Array<{ start: number; end: number; source: string }> = [];
  const noteMismatches = () => {
    for (const m of mismatches.splice(0)) narrowings.push({ start: m.kind === 'stored' ? lastGood : lastIndependentGood, end: m.treeSize, source: m.source });
  };

  claimsUpTo(0);
  for (let next = 0; next < size; next += chunk) {
    for (const row of await store.range(next, Math.min(next + chunk, size))) {
      leaves++;
      if (row.index !== nextIndex) {
        const what = row.index - nextIndex === 1 ? `entry ${nextIndex} is missing` : `entries ${nextIndex}..${row.index - 1} are missing`;
        problem({ kind: 'missing_leaf', index: nextIndex, message: what });
        tampered(nextIndex, what);
        brokenAt ??= nextIndex;
        claimsUpTo(row.index);
      }
      nextIndex = row.index + 1;
      const recomputed = row.salt.length === SALT_BYTES ? entryLeafHash(row.salt, row.record) : undefined;
      if (!recomputed || !recomputed.equals(row.leafHash)) {
        problem({ kind: 'leaf_hash', index: row.index, message: `entry ${row.index} (${row.key}): the record is not the one logged (its commitment differs)` });
        tampered(row.index, `the record of entry ${row.index} (${row.key}) was changed: it no longer matches its leaf`);
      } else if (!isCanonicalJson(row.record)) {
        problem({ kind: 'record_not_canonical', index: row.index, message: `entry ${row.index} (${row.key}): the record is not canonical JSON` });
      }
      if (brokenAt !== undefined) continue;
      const completed = frontier.append(row.leafHash.length === HASH_BYTES ? row.leafHash : (recomputed ?? Buffer.alloc(HASH_BYTES)));
      if (completed.length > 0) {
        const stored = await store.nodes(completed);
        completed.forEach((n, i) => {
          const start = n.index * 2 ** n.level;
          const h = stored[i];
          if (!h) problem({ kind: 'node_missing', index: start, message: `the hash of subtree ${n.index} at level ${n.level} (entries ${start}..${start + 2 ** n.level - 1}) is missing` });
          else if (!h.equals(n.hash)) problem({ kind: 'node_hash', index: start, message: `the stored hash of subtree ${n.index} at level ${n.level} (entries ${start}..${start + 2 ** n.level - 1}) does not match them` });
        });
      }
      claimsUpTo(frontier.size);
      noteMismatches();
    }
  }
  claimsUpTo(Number.MAX_SAFE_INTEGER);
  noteMismatches();
  // A rewrite: between the last independent checkpoint the entries still give and the first they do not.
  for (const n of narrowings) {
    const names = (await store.range(n.start, Math.min(n.end, n.start + 8))).map((l) => `${l.index} (${describe(l.record)})`);
    const more = n.end - n.start > 8 ? ` and ${n.end - n.start - 8} more` : '';
    tampered(n.start, `an entry in [${n.start}, ${n.end}) was changed or removed, and the log re-signed: ${n.source} does not match; the entries now there: ${names.join(', ')}${more}`);
  }
  return {
    ok: problemCount === 0,
    origin,
    size,
    checkedLeaves: leaves,
    checkedCheckpoints,
    independentCheckpoints: independent,
    ...(brokenAt === undefined ? { rootHash: frontier.root().toString('base64url') } : {}),
    ...(latestCheckpoint ? { latestCheckpoint } : {}),
    ...(firstTampered ? { firstTampered } : {}),
    problems,
    problemCount,
  };
}

/** An entry for messages: the device and attestation it is about, or the kind of record. */
function describe(record: Buffer): string {
  try {
    const r = JSON.parse(record.toString('utf8')) as { ueid?: string; att_id?: string; decision?: string; type?: string };
    if (r.type) return r.type;
    return `${r.ueid}/${r.att_id}: ${r.decision}`;
  } catch {
    return 'unreadable record';
  }
}

/**
 * A given checkpoint note: it counts when the log signed it (a kiosk's kept head) or a trusted witness cosigned it
 * (a witness's export; then the log's own signature is not needed: the witness checked it when it cosigned).
 */
function openCheckpointLenient(note: string, trust: AuditTrust): { origin: string; treeSize: number; rootHash: Buffer; witnessed: boolean; by: string } {
  const n = parseNote(note);
  const cp = parseCheckpointText(n.text);
  const w = verifiedSigners(n, trust.witnesses ?? []);
  if (w.bad.length > 0) throw new Error(`the cosignature of ${w.bad.join(', ')} does not verify`);
  if (w.names.size > 0) return { origin: cp.origin, treeSize: cp.treeSize, rootHash: cp.rootHash, witnessed: true, by: `the checkpoint cosigned by ${[...w.names].join(', ')}` };
  openCheckpoint(note, trust.logKeys);
  return { origin: cp.origin, treeSize: cp.treeSize, rootHash: cp.rootHash, witnessed: false, by: 'a checkpoint a kiosk accepted' };
}

/** A human-readable summary of an audit, for the CLI. */
export function formatAuditReport(r: AuditReport): string {
  const lines = [
    `${r.ok ? 'OK' : 'FAILED'}: ${r.checkedLeaves} of ${r.size} entries, ${r.checkedCheckpoints} checkpoints and ${r.independentCheckpoints} independent ones (witnessed, or from kiosks) checked`,
    ...(r.origin ? [`log: ${r.origin}`] : []),
    ...(r.rootHash ? [`root: ${r.rootHash}`] : []),
    ...(r.latestCheckpoint ? [`latest checkpoint: size ${r.latestCheckpoint.treeSize}, ${new Date(r.latestCheckpoint.timestamp).toISOString()}${r.latestCheckpoint.witnesses.length > 0 ? `, cosigned by ${r.latestCheckpoint.witnesses.join(', ')}` : ''}`] : []),
    ...(r.firstTampered ? [`first tampered entry: ${r.firstTampered.index} (${r.firstTampered.reason})`] : []),
    ...r.problems.map((p) => `  ${p.kind}: ${p.message}`),
    ...(r.problemCount > r.problems.length ? [`  ... and ${r.problemCount - r.problems.length} more`] : []),
  ];
  return lines.join('\n');
}
