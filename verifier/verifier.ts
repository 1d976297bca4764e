/**
 * The verifier's decision pipeline, independent of MQTT: a batch of attestation messages in, signed verdicts out.
 *
 * Checks, in order, each with its own rejection reason: envelope and size; signature, key ownership and
 * revocation, claims schema, topic and correlation id (authentication, precheck.ts); sealed content, `iat` window;
 * nonce issued and unused (when present or required) and `seq` not seen before (replay-window.ts); model hash
 * allowed; template parses; enrolment exists; then the match decides.
 *
 * What is bound to what: only a message that a registered, unrevoked device signed, exactly as it arrived, is
 * keyed, logged and answered, and it is keyed by the hash of its exact JWS. A forged, rebound or unreadable
 * copy of a genuine attestation therefore can never take the genuine one's place, its verdict or its log entry.
 * Messages no trusted device signed leave no permanent trace: they are counted per code and hour and a bounded,
 * rate-limited sample is kept, for the operators; no log leaf, no verdict.
 *
 * A batch goes through three stages, so that the fleet-wide decision lock is held only for what needs it:
 * 1. `prepare`: the stateless checks (on worker threads when configured);
 * 2. `commit`: the matches (the gallery is read before the lock: batches never change it), then one store
 *    batch under the decision lock: entries already logged found, nonces consumed, seqs accepted, the
 *    decisions appended to the audit log and its checkpoint signed, all committed together;
 * 3. `answer`: receipts (proofs from what the batch computed, the rest from the store in one query), against the
 *    batch's checkpoint or a witness-cosigned one covering it, and the signed verdicts.
 * A node that dies after stage 2 loses nothing: the attestation comes again from the kiosk's outbox, is found in
 * the log, and is answered from its entry (the verdict is rebuilt from the record: reasons are codes and fixed
 * sentences, never free text). The same JWS delivered again (in one batch or in two, to one node or another)
 * gets no new log entry.
 *
 * Isolation: each message is decided on its own. A failure to decide or to build one verdict becomes a
 * `verifier_error` rejection of that message alone.
 *
 * Privacy: the verdict goes back sealed under the attestation's reply key (protocol/reply.ts) when the sealed
 * content opened, and carries no score.
 */
import type { KeyObject } from 'node:crypto';
import { attestationHash } from '../protocol/attestation.ts';
import { DecisionRecord as DecisionRecordSchema, VerdictClaims as VerdictClaimsSchema, type DecisionRecord, type Receipt, type Reason, type VerdictClaims, type VerdictDetail } from '../protocol/claims.ts';
import { BiokioskError } from '../protocol/errors.ts';
import type { DecryptionKey } from '../protocol/jwe.ts';
import { addSignatures } from '../protocol/note.ts';
import { reasonFor, Rejection, sanitizeText, type RejectionCode } from '../protocol/rejections.ts';
import { sealReply } from '../protocol/reply.ts';
import type { Signer } from '../protocol/signer.ts';
import type { TrustedKey } from '../protocol/trust.ts';
import { createVerdict } from '../protocol/verdict.ts';
import { appendBatch, AuditProofs, logKeysChange, type AppendedLeaf, type AuditEntry, type ProofJob, type SubtreeMemory } from './audit/log.ts';
import type { CheckpointRow } from './audit/store.ts';
import type { LogSigner } from './log-key.ts';
import type { TemplateMatcher } from './matchers.ts';
import type { Prechecker } from './precheck-pool.ts';
import { peekKid, precheckAttestation, rejectionOf, type CheckedClaims, type PrecheckDeps, type PrecheckResult, type PrecheckTask } from './precheck.ts';
import { galleryKey, type AttemptRow, type BatchTx, type DeviceKeyStore, type RejectionSample, type StepUpRow, type VerifierStore } from './store.ts';
import { attemptsHorizonMs, decide, type DecisionOutput } from './decide.ts';
import type { DecisionPolicy } from './decision-policy.ts';
import type { EligibilitySource } from './eligibility.ts';
import { TokenBucket } from '../protocol/token-bucket.ts';

export interface VerifierConfig {
  id: string;
  maxAgeSeconds?: number;
  maxFutureSeconds?: number;
  /** Models whose templates are accepted (sha256, hex). Empty: none. */
  allowedModels: readonly string[];
  /** Refuse attestations without a verifier nonce. */
  requireNonce?: boolean;
  /** Unauthenticated rejections sampled into the store, at most: per second, and in a burst. */
  sampleRate?: { perSecond: number; burst: number };
  /** Told about internal failures that were turned into `verifier_error` rejections. */
  onInternalError?: (e: unknown, where: string) => void;
  /**
   * The decision policy (decision-policy.ts): scenarios, factors, thresholds, behaviour limits. Without one the
   * matcher decides alone, as before policies existed.
   */
  policy?: DecisionPolicy;
}

export interface IncomingMessage {
  topic: string;
  payload: Buffer;
  correlationData?: Buffer;
  receivedAt?: number;
  /** The header's kid when the intake already read it (precheck.ts prescreen). */
  kid?: string;
}

export interface VerdictOut {
  /** The device addressed: the signer when authenticated, else the topic's device ('' when none). */
  ueid: string;
  /** The signed att_id; null for messages that were not authenticated. */
  attId: string | null;
  /** What to publish as the verdict envelope's body (sealed for the kiosk when possible); null: nothing to send. */
  verdict: string | null;
  decision: VerdictClaims['decision'];
  reasons: Reason[];
  /** Sanitised detail of the rejection, for the operator's own output (never sent). */
  detail: string | null;
  /** The match score (for the operator's own output; verdicts do not carry it). */
  score: number | null;
  duplicate: boolean;
  leafIndex: number;
  /** A registered, unrevoked device signed the message as it arrived. */
  authenticated: boolean;
  /** Scenario, policy version, eligibility, step_up, lock, override (as logged). */
  outcome?: VerdictDetail;
}

/** A batch whose stateless checks are done: ready for `commit`. */
export interface PreparedBatch {
  messages: IncomingMessage[];
  results: PrecheckResult[];
  /** Where each message's signing key lives, as registered ('unknown' when not registered). */
  keyStores?: DeviceKeyStore[];
}

/** A checkpoint some witnesses cosigned, with their lines (the receipt carries them). */
export interface CosignedCheckpoint {
  checkpoint: CheckpointRow;
  lines: string[];
}

/** One logged (or already logged) decision waiting for its verdict. */
interface ToAnswer {
  out: VerdictOut;
  leaf: AppendedLeaf;
  entry: DecisionRecord;
  replyKey: Uint8Array | null;
  /** The kiosk's tree size, from its attestation (the receipt proves consistency from it). */
  logSize: number;
}

/** A batch committed to the store: its decisions are final; its verdicts are not signed yet. */
export interface CommittedBatch {
  outs: VerdictOut[];
  answers: ToAnswer[];
  /** Later copies of a message in the batch, answered with the first copy's verdict. */
  copies: Array<{ out: VerdictOut; of: VerdictOut }>;
  /** The checkpoint after the batch (undefined when nothing in it was authenticated). */
  checkpoint: CheckpointRow | undefined;
  known: SubtreeMemory | undefined;
}

/** The tentative outcome of an authenticated message before its replay checks. */
interface Candidate {
  p: PrecheckResult;
  c: CheckedClaims;
  key: string;
  out: VerdictOut;
  rejection: Rejection | null;
  decision: VerdictClaims['decision'];
  score: number | null;
  native: { name: string; value: number } | null;
  keyStore: DeviceKeyStore;
  /** What the decision policy made of it (under the lock). */
  final: DecisionOutput | null;
}

export interface VerifierDeps {
  store: VerifierStore;
  /** Signs verdicts (ES256). */
  signer: Signer;
  /** Signs the audit log's checkpoints (Ed25519). */
  logSigner: LogSigner;
  fleetKey: DecryptionKey | KeyObject;
  matchers: Map<string, TemplateMatcher>;
  /** Insurance eligibility (eligibility.ts), for scenarios that answer it. */
  eligibility?: EligibilitySource;
}

export class Verifier {
  private prechecker: Prechecker;
  private readonly sampler: TokenBucket;
  /** Rejections made before a message reached a batch (the intake's drops), written with the next batch. */
  private pendingCounts = new Map<string, number>();
  private pendingSamples: RejectionSample[] = [];
  /** Proofs for receipts, with a cache of committed subtree hashes. */
  readonly proofs: AuditProofs;
  private readonly store: VerifierStore;
  private readonly signer: Signer;
  private readonly logSigner: LogSigner;
  private readonly matchers: Map<string, TemplateMatcher>;
  private readonly eligibility: EligibilitySource | undefined;
  /** Set once the log has recorded the signing keys in use (logKeysChange). */
  private logKeysLogged = false;

  constructor(
    readonly config: VerifierConfig,
    deps: VerifierDeps,
  ) {
    this.store = deps.store;
    this.signer = deps.signer;
    this.logSigner = deps.logSigner;
    this.matchers = deps.matchers;
    this.eligibility = deps.eligibility;
    this.proofs = new AuditProofs(deps.store.audit);
    this.prechecker = inlinePrechecker({ config, fleetKey: deps.fleetKey as DecryptionKey, matchers: deps.matchers });
    const rate = config.sampleRate ?? { perSecond: 5, burst: 50 };
    this.sampler = new TokenBucket(rate.perSecond, rate.burst);
  }

  /** The log's origin and checkpoint keys (what `verifier keys` hands kiosks and witnesses). */
  get log(): LogSigner {
    return this.logSigner;
  }

  /** Runs the stateless checks elsewhere from now on (a PrecheckPool of worker threads); closes the one before. */
  async usePrechecker(p: Prechecker): Promise<void> {
    const old = this.prechecker;
    this.prechecker = p;
    await old.close();
  }

  async close(): Promise<void> {
    await this.prechecker.close();
  }

  /**
   * The stateless checks for a batch (envelope, signature, claims, time, model, decryption). The signing keys are
   * looked up here, in one query; the checks themselves may run on other threads.
   */
  async prepare(messages: IncomingMessage[]): Promise<PreparedBatch> {
    const kids = messages.map((m) => m.kid ?? peekKid(m.payload));
    const devices = await this.store.devicesByKids(kids.filter((k): k is string => k !== undefined));
    const tasks: PrecheckTask[] = messages.map((m, i) => {
      const kid = kids[i];
      const d = kid === undefined ? undefined : devices.get(kid);
      const trusted: TrustedKey | undefined = d ? { owner: d.ueid, key: d.publicJwk as never, revoked: d.status === 'revoked' } : undefined;
      return { topic: m.topic, payload: m.payload, correlationData: m.correlationData, receivedAt: m.receivedAt, kid, trusted };
    });
    const results = await this.prechecker.run(tasks);
    if (results.length !== messages.length) throw new BiokioskError('PrecheckFault', `${results.length} precheck results for ${messages.length} messages`, { kind: 'internal' });
    const keyStores = kids.map((k) => (k === undefined ? undefined : devices.get(k))?.keyStore ?? 'unknown');
    return { messages, results, keyStores };
  }

  /**
   * Counts (and, within the sampling rate, samples) a message refused before it reached a batch: dropped by the
   * intake as oversized, on no device topic, or from a device over its failure budget.
   */
  noteIntakeRejection(code: RejectionCode, ueid: string, detail: string, payload: Uint8Array, now = Date.now()): void {
    this.pendingCounts.set(code, (this.pendingCounts.get(code) ?? 0) + 1);
    if (this.sampler.take(now)) this.pendingSamples.push({ at: now, ueid: sanitizeText(ueid, 80), code, detail: sanitizeText(detail, 300), bytes: payload.byteLength, hash: attestationHash(payload) });
  }

  /** Writes the intake's pending counts and samples now. */
  async flushIntakeRejections(now = Date.now()): Promise<void> {
    if (this.pendingCounts.size === 0) return;
    const counts = this.pendingCounts;
    const samples = this.pendingSamples;
    this.pendingCounts = new Map();
    this.pendingSamples = [];
    await this.store.noteRejections(counts, samples, now);
  }

  /** prepare, commit, answer. */
  async handleBatch(messages: IncomingMessage[]): Promise<VerdictOut[]> {
    return this.decide(await this.prepare(messages));
  }

  /** commit, then answer against the batch's own checkpoint. */
  async decide(batch: PreparedBatch): Promise<VerdictOut[]> {
    return this.answer(await this.commit(batch));
  }

  /**
   * Decides a prepared batch and commits it: one store batch (the decision lock held only for the replay checks
   * and the log append), one checkpoint.
   */
  async commit(batch: PreparedBatch, now = Date.now()): Promise<CommittedBatch> {
    const counts = this.pendingCounts;
    const samples = this.pendingSamples;
    this.pendingCounts = new Map();
    this.pendingSamples = [];
    const outs: VerdictOut[] = [];
    const candidates: Candidate[] = [];
    const copies: CommittedBatch['copies'] = [];
    const firstByKey = new Map<string, VerdictOut>();
    for (const [i, p] of batch.results.entries()) {
      if (!p.authenticated || !p.claims) {
        const code: RejectionCode = p.rejection?.code ?? 'malformed';
        counts.set(code, (counts.get(code) ?? 0) + 1);
        const detail = p.rejection?.detail ?? 'The message was not authenticated.';
        if (this.sampler.take(now)) samples.push({ at: now, ueid: p.ueid, code, detail: sanitizeText(detail, 300), bytes: p.bytes, hash: p.hash });
        outs.push({ ueid: p.ueid, attId: null, verdict: null, decision: 'rejected', reasons: [reasonFor(code)], detail, score: null, duplicate: false, leafIndex: -1, authenticated: false });
        continue;
      }
      // Keyed by the exact signed bytes: only the device that signed them can make another key.
      const key = `att:${p.hash}`;
      const first = firstByKey.get(key);
      if (first) {
        const o: VerdictOut = { ...first, duplicate: true, leafIndex: -1 };
        outs.push(o);
        copies.push({ out: o, of: first });
        continue;
      }
      const o: VerdictOut = { ueid: p.claims.ueid, attId: p.claims.att_id, verdict: null, decision: 'rejected', reasons: [], detail: null, score: null, duplicate: false, leafIndex: -1, authenticated: true };
      outs.push(o);
      firstByKey.set(key, o);
      candidates.push({ p, c: p.claims, key, out: o, rejection: rejectionOf(p), decision: 'rejected', score: null, native: null, keyStore: batch.keyStores?.[i] ?? 'unknown', final: null });
    }
    if (candidates.length === 0) {
      if (counts.size > 0) await this.store.noteRejections(counts, samples, now);
      return { outs, answers: [], copies, checkpoint: undefined, known: undefined };
    }
    // Attestations already logged (redelivered after a decision) need no match; the batch checks again under the lock.
    const logged = await this.store.audit.leavesByKeys(candidates.map((x) => x.key));
    // Staff overrides carry no template: nothing to match.
    await this.match(candidates.filter((x) => !x.rejection && !logged.has(x.key) && !x.p.facts?.override));

    const result = await this.store.batch(async (tx) => this.decideLocked(tx, candidates, counts, samples, now));
    this.logKeysLogged = true;
    this.proofs.remember(result.known);
    for (const a of result.answers) {
      a.out.leafIndex = a.leaf.index;
      a.out.duplicate = a.leaf.duplicate;
      a.out.decision = a.entry.decision;
      a.out.outcome = a.entry.detail;
      if (a.leaf.duplicate) {
        a.out.reasons = a.entry.reasons.map((code) => reasonFor(code));
        a.out.detail = null;
        a.out.score = null;
      }
    }
    return { outs, answers: result.answers, copies, checkpoint: result.checkpoint, known: result.known };
  }

  /** Signs the verdicts of a committed batch, with receipts against its checkpoint or a cosigned one covering it. */
  async answer(c: CommittedBatch, cosigned?: CosignedCheckpoint, now = Date.now()): Promise<VerdictOut[]> {
    if (c.answers.length > 0 && c.checkpoint) {
      const target = cosigned && cosigned.checkpoint.treeSize >= c.checkpoint.treeSize ? cosigned : { checkpoint: c.checkpoint, lines: [] };
      const size = target.checkpoint.treeSize;
      const note = target.lines.length > 0 ? addSignatures(target.checkpoint.note, target.lines.join('')) : target.checkpoint.note;
      const jobs: ProofJob[] = [];
      for (const a of c.answers) {
        jobs.push({ kind: 'inclusion', index: a.leaf.index, size });
        if (a.logSize > 0 && a.logSize <= size) jobs.push({ kind: 'consistency', from: a.logSize, to: size });
      }
      const proofs = await this.proofs.prove(jobs, c.known);
      let j = 0;
      for (const a of c.answers) {
        const inclusion = proofs[j++]!;
        // A size the log never had (a kiosk of another log, or a log that shrank) gets no proof: the kiosk says so.
        const consistency = a.logSize > 0 && a.logSize <= size ? { from: a.logSize, proof: proofs[j++]!.map(b64u) } : null;
        const receipt: Receipt = {
          leafIndex: a.leaf.index,
          treeSize: size,
          rootHash: b64u(target.checkpoint.rootHash),
          inclusionProof: inclusion.map(b64u),
          checkpoint: note,
          entry: a.entry,
          salt: b64u(a.leaf.salt),
          consistency,
        };
        a.out.verdict = this.body(await this.signVerdict(a.entry, receipt, now), a.replyKey);
      }
    }
    for (const x of c.copies) Object.assign(x.out, { verdict: x.of.verdict, decision: x.of.decision, reasons: x.of.reasons });
    return c.outs;
  }

  /** The matches of a batch's fresh attestations: gallery entries read in one query, before the lock. */
  private async match(list: Candidate[]): Promise<void> {
    // A self-test is checked like any attestation (signature, freshness, replay, sealed content), never matched.
    for (const x of list) if (x.c.test) x.rejection = new Rejection('self_test', 'A self-test attestation.');
    list = list.filter((x) => !x.c.test);
    const wanted = list.filter((x) => x.p.probe && x.p.facts && this.matchers.has(x.c.template_format));
    const gallery = await this.store.galleryEntries(wanted.map((x) => ({ subject: x.p.facts!.subject, modality: x.c.modality })));
    for (const x of list) {
      const matcher = this.matchers.get(x.c.template_format);
      if (!x.p.probe || !x.p.facts || !matcher) {
        x.rejection = new Rejection('verifier_error', 'The precheck passed the message without a template or a matcher.');
        continue;
      }
      const enrolled = gallery.get(galleryKey(x.p.facts.subject, x.c.modality));
      if (!enrolled) {
        x.rejection = new Rejection('no_enrollment', `Subject ${x.p.facts.subject} has no ${x.c.modality} enrolment.`);
        continue;
      }
      if ('unreadable' in enrolled) {
        x.rejection = internalRejection(this.config, enrolled.unreadable, x);
        continue;
      }
      try {
        const m = matcher.match(x.p.probe, enrolled.template);
        x.decision = m.decision;
        x.score = m.score;
        x.native = m.native;
      } catch (e) {
        x.rejection = e instanceof BiokioskError && e.kind === 'internal' ? internalRejection(this.config, e, x) : new Rejection('bad_template', `The templates cannot be compared: ${(e as Error).message}.`);
      }
    }
  }

  /** Under the decision lock: what is already logged, the replay checks, the log append. Safe to run again. */
  private async decideLocked(tx: BatchTx, candidates: Candidate[], counts: Map<string, number>, samples: RejectionSample[], now: number): Promise<{ answers: ToAnswer[]; checkpoint: CheckpointRow; known: SubtreeMemory }> {
    const logged = await tx.audit.leavesByKeys(candidates.map((x) => x.key));
    const fresh = candidates.filter((x) => !logged.has(x.key));
    const rejected = new Map<Candidate, Rejection>();
    // Nonces first (a refused nonce leaves the seq unspent), then seqs, each in one round trip.
    const withNonce = fresh.filter((x) => !x.rejection && x.c.eat_nonce);
    const nonceChecks = await tx.consumeNonces(withNonce.map((x) => ({ ueid: x.c.ueid, nonce: x.c.eat_nonce! })), now);
    withNonce.forEach((x, i) => {
      const n = nonceChecks[i];
      if (n === 'unknown' || n === 'expired') rejected.set(x, new Rejection('nonce_unknown', `Nonce ${x.c.eat_nonce!.slice(0, 12)}... was ${n === 'expired' ? 'issued but has expired' : 'never issued to this device'}.`));
      else if (n === 'reused') rejected.set(x, new Rejection('nonce_reused', `Nonce ${x.c.eat_nonce!.slice(0, 12)}... was already used.`));
    });
    const forSeq = fresh.filter((x) => !x.rejection && !rejected.has(x));
    const seqChecks = await tx.acceptSeqs(forSeq.map((x) => ({ ueid: x.c.ueid, seq: x.c.seq })));
    forSeq.forEach((x, i) => {
      const s = seqChecks[i];
      if (s === 'replayed') rejected.set(x, new Rejection('replayed_seq', `Seq ${x.c.seq} of ${x.c.ueid} was already used.`));
      else if (s === 'too_old') rejected.set(x, new Rejection('replayed_seq', `Seq ${x.c.seq} of ${x.c.ueid} is below the device's replay window.`));
    });
    await this.applyPolicy(tx, fresh.filter((x) => !x.rejection && !rejected.has(x)), now);
    const entries: AuditEntry[] = [];
    const keysChange = this.logKeysLogged ? undefined : await logKeysChange(tx.audit, this.logSigner, now);
    if (keysChange?.entry) entries.push(keysChange.entry);
    const recordOf = new Map<string, { x: Candidate; entry: DecisionRecord }>();
    for (const x of fresh) {
      const entry = this.recordSafely(x, rejected.get(x) ?? x.rejection, now);
      recordOf.set(x.key, { x, entry });
      entries.push({ key: x.key, record: entry });
    }
    // Keys already logged: appendBatch returns their original entries (the record given is not used).
    for (const x of candidates) if (logged.has(x.key)) entries.push({ key: x.key, record: {} });
    const outcome = await appendBatch(tx.audit, this.logSigner, entries, now);
    if (keysChange) await tx.audit.setMeta('log_keys', keysChange.active);
    if (counts.size > 0 || samples.length > 0) await tx.noteRejections(counts, samples, now);
    const byKey = new Map(outcome.leaves.map((l) => [l.key, l]));
    const answers: ToAnswer[] = [];
    for (const x of candidates) {
      const leaf = byKey.get(x.key)!;
      let entry: DecisionRecord;
      if (leaf.duplicate) {
        const parsed = DecisionRecordSchema.safeParse(JSON.parse(leaf.record.toString('utf8')));
        if (!parsed.success) throw new BiokioskError('AuditLogCorrupt', `the log entry ${leaf.index} of ${x.c.ueid}/${x.c.att_id} is not a decision record`, { kind: 'internal' });
        entry = parsed.data;
      } else entry = recordOf.get(x.key)!.entry;
      if (!leaf.duplicate) {
        x.out.reasons = entry.reasons.map((code) => reasonFor(code));
        const rej = rejected.get(x) ?? x.rejection;
        x.out.detail = rej?.detail ?? null;
        x.out.score = entry.score;
      }
      answers.push({ out: x.out, leaf, entry, replyKey: x.p.replyKey, logSize: x.c.log_size ?? 0 });
    }
    return { answers, checkpoint: outcome.checkpoint, known: outcome.known };
  }

  /**
   * Under the lock: the decision policy over the behaviour signals (attempts of these subjects and devices from
   * every kiosk, pending step-ups), each attestation in order so that a batch's earlier attempts count for its
   * later ones; the attempts and step-ups are written in the same transaction.
   */
  private async applyPolicy(tx: BatchTx, list: Candidate[], now: number): Promise<void> {
    if (list.length === 0) return;
    const policy = this.config.policy;
    const attempts: AttemptRow[] = policy
      ? await tx.attempts({ subjects: list.map((x) => x.p.facts!.subject), ueids: list.map((x) => x.c.ueid), since: now - attemptsHorizonMs(policy) })
      : [];
    const stepOfs = list.map((x) => x.p.facts!.stepOf).filter((s): s is string => s !== null);
    const stepUps = policy && stepOfs.length > 0 ? await tx.stepUps(stepOfs) : new Map<string, StepUpRow>();
    const recorded: AttemptRow[] = [];
    const kept: StepUpRow[] = [];
    const consumed: string[] = [];
    for (const x of list) {
      const f = x.p.facts!;
      const out = decide(
        { policy, eligibility: this.eligibility },
        {
          now,
          attId: x.c.att_id,
          ueid: x.c.ueid,
          site: f.site,
          subject: f.subject,
          modality: x.c.modality,
          scenario: f.scenario,
          consent: f.consent,
          hasNonce: x.c.eat_nonce !== undefined,
          keyStore: x.keyStore,
          override: f.override,
          stepOf: f.stepOf,
          wantEligibility: f.wantEligibility,
          match: f.override ? null : { decision: x.decision === 'match' ? 'match' : 'no_match', score: x.score ?? 0, native: x.native },
        },
        attempts,
        stepUps,
      );
      x.final = out;
      if (out.attempt) {
        attempts.push(out.attempt);
        recorded.push(out.attempt);
      }
      if (out.consumed) {
        consumed.push(out.consumed);
        stepUps.delete(out.consumed);
      }
      if (out.stepUp) {
        kept.push(out.stepUp);
        stepUps.set(out.stepUp.attId, out.stepUp);
      }
    }
    if (!policy) return;
    if (recorded.length > 0) await tx.recordAttempts(recorded, now - 2 * attemptsHorizonMs(policy));
    if (kept.length > 0 || consumed.length > 0) await tx.putStepUps(kept, consumed, now);
  }

  /** The log record of a decision, or (when it would not pass its schema) a `verifier_error` one. */
  private recordSafely(x: Candidate, rejection: Rejection | null, now: number): DecisionRecord {
    const record = rejection ? this.recordOf(x, 'rejected', [rejection.code], x.final?.detail, now) : x.final ? this.recordOf(x, x.final.decision, x.final.reasons, x.final.detail, now) : this.recordOf(x, x.decision, [], undefined, now);
    const check = VerdictClaimsSchema.safeParse(this.verdictClaims(record, placeholderReceipt(record), now));
    if (check.success) return record;
    this.config.onInternalError?.(new BiokioskError('BadClaims', check.error.message, { kind: 'internal' }), `the verdict for ${x.c.ueid}/${x.c.att_id}`);
    return this.recordOf(x, 'rejected', ['verifier_error'], undefined, now);
  }

  private recordOf(x: Candidate, decision: VerdictClaims['decision'], reasons: RejectionCode[], detail: VerdictDetail | undefined, now: number): DecisionRecord {
    const f = x.p.facts;
    const scored = decision !== 'rejected' && !f?.override;
    return {
      v: 1,
      verifier: this.config.id,
      decided_at: now,
      ueid: x.c.ueid,
      att_id: x.c.att_id,
      att_hash: x.p.hash,
      seq: x.c.seq,
      sub: x.p.facts?.subject ?? null,
      modality: x.c.modality,
      model_sha256: x.c.model.sha256,
      site: x.p.facts?.site ?? null,
      decision,
      reasons,
      score: scored ? x.score : null,
      distance: scored ? (x.native?.value ?? null) : null,
      // Present only when there is something to say, so records of kiosks and verifiers without them stay as they were.
      ...(f?.consent ? { consent: f.consent } : {}),
      ...(f?.stepOf ? { step_of: f.stepOf } : {}),
      ...(detail ? { detail } : {}),
    };
  }

  /** What to publish: the verdict sealed for its kiosk when there is a reply key, else the plain JWS. */
  private body(jws: string, replyKey: Uint8Array | null): string {
    return replyKey ? sealReply(jws, replyKey) : jws;
  }

  /** The verdict for one logged record; a signer failing for this one message costs it only its own verdict. */
  private async signVerdict(entry: DecisionRecord, receipt: Receipt, now: number): Promise<string> {
    const claims = this.verdictClaims(entry, receipt, now);
    try {
      return await createVerdict(claims, this.signer);
    } catch (e) {
      this.config.onInternalError?.(e, `signing the verdict for ${entry.ueid}/${entry.att_id}`);
      return createVerdict({ ...claims, decision: 'rejected', reasons: [reasonFor('verifier_error')] }, this.signer);
    }
  }

  private verdictClaims(entry: DecisionRecord, receipt: Receipt, now: number): VerdictClaims {
    return { iss: this.config.id, iat: Math.floor(now / 1000), att_id: entry.att_id, att_hash: entry.att_hash, ueid: entry.ueid, seq: entry.seq, decision: entry.decision, reasons: entry.reasons.map((c) => reasonFor(c)), ...(entry.detail ? { detail: entry.detail } : {}), receipt };
  }
}

/** A receipt that passes the schema, to check a verdict's other claims before the real one exists. */
function placeholderReceipt(entry: DecisionRecord): Receipt {
  return { leafIndex: 0, treeSize: 1, rootHash: 'A'.repeat(43), inclusionProof: [], checkpoint: 'x', entry, salt: 'A'.repeat(43), consistency: null };
}

function internalRejection(config: VerifierConfig, e: unknown, x: Candidate): Rejection {
  config.onInternalError?.(e, `deciding ${x.c.ueid}/${x.c.att_id}`);
  return new Rejection('verifier_error', 'An internal failure while deciding.');
}

function b64u(b: Uint8Array): string {
  return Buffer.from(b).toString('base64url');
}

/** The checks on the calling thread, one message after the other. */
export function inlinePrechecker(deps: PrecheckDeps): Prechecker {
  return {
    run: async (tasks) => {
      const out: PrecheckResult[] = [];
      for (const t of tasks) out.push(await precheckAttestation(t, deps));
      return out;
    },
    close: async () => {},
  };
}
