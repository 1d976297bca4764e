/**
 * The verifier's decision pipeline, independent of MQTT: a batch of attestation messages in, signed verdicts out.
 *
 * Checks, in order, each with its own rejection reason: envelope and size; signature, key ownership and
 * revocation, claims schema, topic and correlation id (authentication, precheck.ts); sealed content, `iat` window;
 * nonce issued and unused (when present or required) and `seq` not seen before (anti-replay window); model hash
 * allowed; template parses; enrolment exists; then the match decides.
 *
 * What is bound to what: only a message that a registered, unrevoked device signed, exactly as it arrived, is
 * keyed, logged and answered, and it is keyed by the hash of its exact JWS. A forged, rebound or unreadable
 * copy of a genuine attestation therefore can never take the genuine one's place, its verdict or its log entry.
 * Messages no trusted device signed leave no permanent trace: they are counted per code and hour and a bounded,
 * rate-limited sample is kept (store.noteRejections), for the operators; no log leaf, no verdict.
 *
 * Isolation: each message is decided on its own inside the batch. A failure to decide or to build one verdict
 * becomes a `verifier_error` rejection of that message alone; the batch commits. Verdict reasons carry codes and
 * fixed sentences only, never text the sender chose.
 *
 * Durability and idempotency: a batch is decided in one SQLite transaction on the store's connection, which also
 * holds the audit log: seq/nonce consumption, the log entry and the verdict commit together or not at all. The
 * same JWS delivered again (in one batch or in two) gets the stored verdict again and no new log entry.
 *
 * Privacy: the verdict goes back sealed under the attestation's reply key (protocol/reply.ts) when the sealed
 * content opened, and carries no score.
 */
import type { KeyObject } from 'node:crypto';
import { VerdictClaims as VerdictClaimsSchema, type DecisionRecord, type Receipt, type Reason, type VerdictClaims } from '../protocol/claims.ts';
import { BiokioskError } from '../protocol/errors.ts';
import type { DecryptionKey } from '../protocol/jwe.ts';
import { reasonFor, Rejection, sanitizeText, type RejectionCode } from '../protocol/rejections.ts';
import { sealReply } from '../protocol/reply.ts';
import type { Signer } from '../protocol/signer.ts';
import type { TrustedKey } from '../protocol/trust.ts';
import { createVerdict } from '../protocol/verdict.ts';
import { attestationHash } from '../protocol/attestation.ts';
import type { TemplateMatcher } from './matchers.ts';
import type { Prechecker } from './precheck-pool.ts';
import { peekKid, precheckAttestation, rejectionOf, type CheckedClaims, type PrecheckDeps, type PrecheckResult, type PrecheckTask } from './precheck.ts';
import { TokenBucket } from './token-bucket.ts';
import type { RejectionSample, VerifierStore } from './store.ts';

/** The audit log as the verifier uses it: appends inside the caller's transaction, then one signed head per batch. */
export interface BatchAuditLog {
  /** Appends (or finds, for keys already logged) records; must run inside the store's open transaction. */
  appendBatch(entries: ReadonlyArray<{ key: string; record: object }>): Array<{ leafIndex: number; duplicate: boolean }>;
  /** Computes and signs the tree head for the current size (inside the transaction). */
  sealBatch(): Promise<{ treeSize: number; rootHash: string; signature: string; timestamp: number }>;
  /** Inclusion proof of a leaf in the tree of the given size. */
  inclusionProof(leafIndex: number, treeSize: number): string[];
  /** Consistency proof between the trees of the first m and first n entries. */
  consistencyProof(m: number, n: number): string[];
}

export interface VerifierConfig {
  id: string;
  maxAgeSeconds?: number;
  maxFutureSeconds?: number;
  seqWindow?: number;
  /** Models whose templates are accepted (sha256, hex). Empty: none. */
  allowedModels: readonly string[];
  /** Refuse attestations without a verifier nonce. */
  requireNonce?: boolean;
  /** Unauthenticated rejections sampled into the store, at most: per second, and in a burst. */
  sampleRate?: { perSecond: number; burst: number };
  /** Told about internal failures that were turned into `verifier_error` rejections. */
  onInternalError?: (e: unknown, where: string) => void;
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
}

/** One decision: the audit-log record (what the log keeps, byte for byte in canonical JSON) and its reasons. */
interface Decided {
  ueid: string;
  att_id: string;
  decision: VerdictClaims['decision'];
  reasonList: Reason[];
  detail: string | null;
  /** The kiosk's tree size, from its attestation (the receipt proves consistency from it). */
  logSize: number;
  log: DecisionRecord;
}

/** A batch whose stateless checks are done: ready for `decide`. */
export interface PreparedBatch {
  messages: IncomingMessage[];
  results: PrecheckResult[];
}

/** A receipt that passes the schema, to check a verdict's other claims before the real one exists. */
const placeholderReceipt = (entry: DecisionRecord): Receipt => ({ leafIndex: 0, treeSize: 1, rootHash: 'A'.repeat(43), inclusionProof: [], treeHeadTimestamp: 0, treeHeadSignature: 'AA', entry, consistency: null });

export class Verifier {
  private prechecker: Prechecker;
  private readonly sampler: TokenBucket;
  /** Rejections made before a message reached a batch (the intake's drops), written with the next batch. */
  private pendingCounts = new Map<string, number>();
  private pendingSamples: RejectionSample[] = [];

  constructor(
    readonly config: VerifierConfig,
    private readonly store: VerifierStore & { begin(): void; commit(): void; rollback(): void },
    private readonly audit: BatchAuditLog,
    private readonly signer: Signer,
    private readonly fleetKey: DecryptionKey | KeyObject,
    private readonly matchers: Map<string, TemplateMatcher>,
  ) {
    this.prechecker = inlinePrechecker({ config, fleetKey: fleetKey as DecryptionKey, matchers });
    const rate = config.sampleRate ?? { perSecond: 5, burst: 50 };
    this.sampler = new TokenBucket(rate.perSecond, rate.burst);
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
   * looked up here, where the store is; the checks themselves may run on other threads.
   */
  async prepare(messages: IncomingMessage[]): Promise<PreparedBatch> {
    // Looked up once per key per batch: a batch often holds several attestations of one kiosk.
    const keys = new Map<string, TrustedKey | undefined>();
    const lookup = (kid: string): TrustedKey | undefined => {
      if (keys.has(kid)) return keys.get(kid);
      const d = this.store.deviceByKid(kid);
      const trusted: TrustedKey | undefined = d ? { owner: d.ueid, key: d.publicJwk as never, revoked: d.status === 'revoked' } : undefined;
      keys.set(kid, trusted);
      return trusted;
    };
    const tasks: PrecheckTask[] = messages.map((m) => {
      const kid = m.kid ?? peekKid(m.payload);
      return { topic: m.topic, payload: m.payload, correlationData: m.correlationData, receivedAt: m.receivedAt, kid, trusted: kid === undefined ? undefined : lookup(kid) };
    });
    const results = await this.prechecker.run(tasks);
    if (results.length !== messages.length) throw new BiokioskError('PrecheckFault', `${results.length} precheck results for ${messages.length} messages`, { kind: 'internal' });
    return { messages, results };
  }

  /**
   * Counts (and, within the sampling rate, samples) a message refused before it reached a batch: dropped by the
   * intake as oversized, on no device topic, or from a device over its failure budget.
   */
  noteIntakeRejection(code: RejectionCode, ueid: string, detail: string, payload: Uint8Array, now = Date.now()): void {
    this.pendingCounts.set(code, (this.pendingCounts.get(code) ?? 0) + 1);
    if (this.sampler.take(now)) this.pendingSamples.push({ at: now, ueid: sanitizeText(ueid, 80), code, detail: sanitizeText(detail, 300), bytes: payload.byteLength, hash: attestationHash(payload) });
  }

  /** Writes the intake's pending counts and samples now (call only between batches). */
  flushIntakeRejections(now = Date.now()): void {
    if (this.pendingCounts.size === 0) return;
    const counts = this.pendingCounts;
    const samples = this.pendingSamples;
    this.pendingCounts = new Map();
    this.pendingSamples = [];
    this.store.noteRejections(counts, samples, now);
  }

  /** Decides a batch: prepare, then decide. */
  async handleBatch(messages: IncomingMessage[]): Promise<VerdictOut[]> {
    return this.decide(await this.prepare(messages));
  }

  /**
   * Decides a prepared batch: one transaction, one signed tree head, one verdict per authenticated message.
   * Batches must be decided one at a time (the caller's loop does; the store has one connection).
   */
  async decide(batch: PreparedBatch): Promise<VerdictOut[]> {
    const now = Date.now();
    const out: VerdictOut[] = [];
    const counts = this.pendingCounts;
    const samples = this.pendingSamples;
    this.pendingCounts = new Map();
    this.pendingSamples = [];
    this.store.begin();
    try {
      const logged: Array<{ out: VerdictOut; key: string; record: Decided; replyKey: Uint8Array | null }> = [];
      /** Later copies of a message in this same batch: answered with the first copy's verdict. */
      const copies: Array<{ out: VerdictOut; of: VerdictOut }> = [];
      const firstByKey = new Map<string, VerdictOut>();
      const gallery = new Map<string, ReturnType<VerifierStore['galleryEntry']>>();
      for (const p of batch.results) {
        if (!p.authenticated || !p.claims) {
          const code: RejectionCode = p.rejection?.code ?? 'malformed';
          counts.set(code, (counts.get(code) ?? 0) + 1);
          const detail = p.rejection?.detail ?? 'The message was not authenticated.';
          if (this.sampler.take(now)) samples.push({ at: now, ueid: p.ueid, code, detail: sanitizeText(detail, 300), bytes: p.bytes, hash: p.hash });
          out.push({ ueid: p.ueid, attId: null, verdict: null, decision: 'rejected', reasons: [reasonFor(code)], detail, score: null, duplicate: false, leafIndex: -1, authenticated: false });
          continue;
        }
        // Keyed by the exact signed bytes: only the device that signed them can make another key.
        const key = `att:${p.hash}`;
        const first = firstByKey.get(key);
        if (first) {
          const o: VerdictOut = { ...first, duplicate: true, leafIndex: -1 };
          out.push(o);
          copies.push({ out: o, of: first });
          continue;
        }
        const earlier = this.store.verdictFor(key);
        if (earlier) {
          const d = storedDecision(earlier.verdict);
          out.push({ ueid: p.claims.ueid, attId: p.claims.att_id, verdict: this.body(earlier.verdict, p.replyKey), decision: d.decision, reasons: d.reasons, detail: null, score: null, duplicate: true, leafIndex: -1, authenticated: true });
          continue;
        }
        const record = this.decideSafely(p, p.claims, now, gallery);
        const o: VerdictOut = { ueid: record.ueid, attId: record.att_id, verdict: null, decision: record.decision, reasons: record.reasonList, detail: record.detail, score: record.log.score, duplicate: false, leafIndex: -1, authenticated: true };
        out.push(o);
        firstByKey.set(key, o);
        logged.push({ out: o, key, record, replyKey: p.replyKey });
      }
      if (logged.length > 0) {
        // One append for the batch (one savepoint, one frontier update), then one signed tree head.
        const appended = this.audit.appendBatch(logged.map((l) => ({ key: l.key, record: l.record.log })));
        appended.forEach((a, i) => (logged[i]!.out.leafIndex = a.leafIndex));
        const head = await this.audit.sealBatch();
        for (const { out: o, key, record, replyKey } of logged) {
          const m = record.logSize;
          const receipt: Receipt = {
            leafIndex: o.leafIndex,
            treeSize: head.treeSize,
            rootHash: head.rootHash,
            inclusionProof: this.audit.inclusionProof(o.leafIndex, head.treeSize),
            treeHeadTimestamp: head.timestamp,
            treeHeadSignature: head.signature,
            entry: record.log,
            // A size the log never had (a kiosk of another log, or a log that shrank) gets no proof: the kiosk says so.
            consistency: m > 0 && m <= head.treeSize ? { from: m, proof: this.audit.consistencyProof(m, head.treeSize) } : null,
          };
          const jws = await this.signVerdict(record, receipt, now);
          o.verdict = this.body(jws, replyKey);
          this.store.saveVerdict({ attHash: key, attId: record.att_id, verdict: jws, createdAt: now });
        }
      }
      for (const c of copies) Object.assign(c.out, { verdict: c.of.verdict, decision: c.of.decision, reasons: c.of.reasons });
      if (counts.size > 0) this.store.noteRejections(counts, samples, now);
      this.store.commit();
    } catch (e) {
      this.store.rollback();
      throw e;
    }
    return out;
  }

  /** What to publish: the verdict sealed for its kiosk when there is a reply key, else the plain JWS. */
  private body(jws: string, replyKey: Uint8Array | null): string {
    return replyKey ? sealReply(jws, replyKey) : jws;
  }

  /**
   * The verdict for one logged record. Its claims were checked against the schema when it was decided; a signer
   * failing for this one message still costs it only its own verdict (a `verifier_error` instead).
   */
  private async signVerdict(record: Decided, receipt: Receipt, now: number): Promise<string> {
    const claims = this.verdictClaims(record, receipt, now);
    try {
      return await createVerdict(claims, this.signer);
    } catch (e) {
      this.config.onInternalError?.(e, `signing the verdict for ${record.ueid}/${record.att_id}`);
      return createVerdict({ ...claims, decision: 'rejected', reasons: [reasonFor('verifier_error')] }, this.signer);
    }
  }

  private verdictClaims(record: Decided, receipt: Receipt, now: number): VerdictClaims {
    return { iss: this.config.id, iat: Math.floor(now / 1000), att_id: record.att_id, att_hash: record.log.att_hash, ueid: record.ueid, seq: record.log.seq, decision: record.decision, reasons: record.reasonList, receipt };
  }

  /** decideOne, with any failure (or a verdict that would not pass its schema) turned into a `verifier_error` for this message. */
  private decideSafely(p: PrecheckResult, c: CheckedClaims, now: number, gallery: Map<string, ReturnType<VerifierStore['galleryEntry']>>): Decided {
    try {
      const record = this.decideOne(p, c, now, gallery);
      const check = VerdictClaimsSchema.safeParse(this.verdictClaims(record, placeholderReceipt(record.log), now));
      if (check.success) return record;
      this.config.onInternalError?.(new BiokioskError('BadClaims', check.error.message, { kind: 'internal' }), `the verdict for ${c.ueid}/${c.att_id}`);
      return this.recordOf(p, c, now, 'rejected', new Rejection('verifier_error', 'The verdict could not be built.'), null, null);
    } catch (e) {
      this.config.onInternalError?.(e, `deciding ${c.ueid}/${c.att_id}`);
      return this.recordOf(p, c, now, 'rejected', new Rejection('verifier_error', 'An internal failure while deciding.'), null, null);
    }
  }

  /** The stateful checks (nonce, seq), the enrolment lookup and the match for one message: its log record. */
  private decideOne(p: PrecheckResult, c: CheckedClaims, now: number, gallery: Map<string, ReturnType<VerifierStore['galleryEntry']>>): Decided {
    let rejection = rejectionOf(p);
    const matcher = this.matchers.get(c.template_format);
    if (!rejection) rejection = this.checkReplay(c, now);
    let decision: VerdictClaims['decision'] = 'rejected';
    let score: number | null = null;
    let native: { name: string; value: number } | null = null;
    if (!rejection && p.probe && p.facts && matcher) {
      // Looked up once per subject per batch: a kiosk queue often holds several attempts by one person.
      const gkey = `${c.modality}\u0000${p.facts.subject}`;
      if (!gallery.has(gkey)) gallery.set(gkey, this.store.galleryEntry(p.facts.subject, c.modality));
      const enrolled = gallery.get(gkey);
      if (!enrolled) rejection = new Rejection('no_enrollment', `Subject ${p.facts.subject} has no ${c.modality} enrolment.`);
      else {
        try {
          const m = matcher.match(p.probe, enrolled.template);
          decision = m.decision;
          score = m.score;
          native = m.native;
        } catch (e) {
          rejection = new Rejection('bad_template', `The templates cannot be compared: ${(e as Error).message}.`);
        }
      }
    } else if (!rejection) rejection = new Rejection('verifier_error', 'The precheck passed the message without a template or a matcher.');
    return this.recordOf(p, c, now, rejection ? 'rejected' : decision, rejection, score, native);
  }

  private recordOf(p: PrecheckResult, c: CheckedClaims, now: number, decision: VerdictClaims['decision'], rejection: Rejection | null, score: number | null, native: { name: string; value: number } | null): Decided {
    const reasonList: Reason[] = rejection ? [rejection.toReason()] : [];
    return {
      ueid: c.ueid,
      att_id: c.att_id,
      decision,
      reasonList,
      detail: rejection?.detail ?? null,
      logSize: c.log_size ?? 0,
      log: {
        v: 1,
        verifier: this.config.id,
        decided_at: now,
        ueid: c.ueid,
        att_id: c.att_id,
        att_hash: p.hash,
        seq: c.seq,
        sub: p.facts?.subject ?? null,
        modality: c.modality,
        model_sha256: c.model.sha256,
        site: p.facts?.site ?? null,
        decision,
        reasons: reasonList.map((r) => r.code),
        score: rejection ? null : score,
        distance: rejection ? null : (native?.value ?? null),
      },
    };
  }

  private checkReplay(c: CheckedClaims, now: number): Rejection | null {
    if (c.eat_nonce) {
      const n = this.store.consumeNonce(c.ueid, c.eat_nonce, now);
      if (n === 'unknown' || n === 'expired') return new Rejection('nonce_unknown', `Nonce ${c.eat_nonce.slice(0, 12)}... was ${n === 'expired' ? 'issued but has expired' : 'never issued to this device'}.`);
      if (n === 'reused') return new Rejection('nonce_reused', `Nonce ${c.eat_nonce.slice(0, 12)}... was already used.`);
    }
    const s = this.store.acceptSeq(c.ueid, c.seq, this.config.seqWindow ?? 256);
    if (s === 'replayed') return new Rejection('replayed_seq', `Seq ${c.seq} of ${c.ueid} was already used.`);
    if (s === 'too_old') return new Rejection('replayed_seq', `Seq ${c.seq} of ${c.ueid} is below the replay window (highest seen ${this.store.lastSeq(c.ueid)}).`);
    return null;
  }
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

/** The decision and reasons inside a verdict we signed earlier (for reporting a redelivery). */
function storedDecision(verdictJws: string): { decision: VerdictClaims['decision']; reasons: Reason[] } {
  const payload = JSON.parse(Buffer.from(verdictJws.split('.')[1] ?? '', 'base64url').toString('utf8')) as { decision: VerdictClaims['decision']; reasons: Reason[] };
  return { decision: payload.decision, reasons: payload.reasons };
}
