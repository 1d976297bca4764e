/**
 * The verifier's decision pipeline, independent of MQTT: a batch of attestation messages in, signed verdicts out.
 *
 * Checks, in order, each with its own rejection reason: envelope and size; signature, key ownership and
 * revocation, claims schema, `iat` window (protocol/attestation.ts); nonce issued and unused (when present or
 * required) and `seq` not seen before (anti-replay window); model hash allowed; template decrypts and parses;
 * enrolment exists; then the match decides.
 *
 * Durability and idempotency: a batch is decided in one SQLite transaction on the store's connection, which also
 * holds the audit log: seq/nonce consumption, the log entry and the verdict commit together or not at all. A
 * message already answered (same device and attestation id, or the same bytes) gets the stored verdict again and
 * no new log entry.
 */
import type { KeyObject } from 'node:crypto';
import type { Receipt, Reason, VerdictClaims } from '../protocol/claims.ts';
import { BiokioskError } from '../protocol/errors.ts';
import type { DecryptionKey } from '../protocol/jwe.ts';
import { Rejection } from '../protocol/rejections.ts';
import type { Signer } from '../protocol/signer.ts';
import type { TrustedKey } from '../protocol/trust.ts';
import { createVerdict } from '../protocol/verdict.ts';
import type { TemplateMatcher } from './matchers.ts';
import type { Prechecker } from './precheck-pool.ts';
import { peekKid, precheckAttestation, rejectionOf, type CheckedClaims, type PrecheckDeps, type PrecheckResult, type PrecheckTask } from './precheck.ts';
import type { VerifierStore } from './store.ts';

/** The audit log as the verifier uses it: appends inside the caller's transaction, then one signed head per batch. */
export interface BatchAuditLog {
  /** Appends (or finds, for keys already logged) records; must run inside the store's open transaction. */
  appendBatch(entries: ReadonlyArray<{ key: string; record: object }>): Array<{ leafIndex: number; duplicate: boolean }>;
  /** Computes and signs the tree head for the current size (inside the transaction). */
  sealBatch(): Promise<{ treeSize: number; rootHash: string; signature: string; timestamp: number }>;
  /** Inclusion proof of a leaf in the tree of the given size. */
  inclusionProof(leafIndex: number, treeSize: number): string[];
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
}

export interface IncomingMessage {
  topic: string;
  payload: Buffer;
  correlationData?: Buffer;
  receivedAt?: number;
}

export interface VerdictOut {
  ueid: string;
  attId: string | null;
  verdict: string | null;
  decision: VerdictClaims['decision'];
  reasons: Reason[];
  duplicate: boolean;
  leafIndex: number;
}

/** One decision: the audit-log record (what the log keeps, byte for byte in canonical JSON) and its reasons. */
interface DecisionRecord {
  reasonList: Reason[];
  log: {
    v: 1;
    verifier: string;
    decided_at: number;
    ueid: string;
    att_id: string | null;
    att_hash: string;
    seq: number | null;
    sub: string | null;
    modality: string | null;
    model_sha256: string | null;
    site: string | null;
    decision: VerdictClaims['decision'];
    reasons: string[];
    score: number | null;
    distance: number | null;
  };
}

/** A batch whose stateless checks are done: ready for `decide`. */
export interface PreparedBatch {
  messages: IncomingMessage[];
  results: PrecheckResult[];
}

export class Verifier {
  private prechecker: Prechecker;

  constructor(
    readonly config: VerifierConfig,
    private readonly store: VerifierStore & { begin(): void; commit(): void; rollback(): void },
    private readonly audit: BatchAuditLog,
    private readonly signer: Signer,
    private readonly fleetKey: DecryptionKey | KeyObject,
    private readonly matchers: Map<string, TemplateMatcher>,
  ) {
    this.prechecker = inlinePrechecker({ config, fleetKey: fleetKey as DecryptionKey, matchers });
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
      const kid = peekKid(m.payload);
      return { topic: m.topic, payload: m.payload, correlationData: m.correlationData, receivedAt: m.receivedAt, kid, trusted: kid === undefined ? undefined : lookup(kid) };
    });
    const results = await this.prechecker.run(tasks);
    if (results.length !== messages.length) throw new BiokioskError('PrecheckFault', `${results.length} precheck results for ${messages.length} messages`, { kind: 'internal' });
    return { messages, results };
  }

  /** Decides a batch: prepare, then decide. */
  async handleBatch(messages: IncomingMessage[]): Promise<VerdictOut[]> {
    return this.decide(await this.prepare(messages));
  }

  /**
   * Decides a prepared batch: one transaction, one signed tree head, one verdict per message that can be
   * answered. Batches must be decided one at a time (the caller's loop does; the store has one connection).
   */
  async decide(batch: PreparedBatch): Promise<VerdictOut[]> {
    const now = Date.now();
    const out: VerdictOut[] = [];
    this.store.begin();
    try {
      const logged: Array<{ out: VerdictOut; key: string; record: DecisionRecord }> = [];
      /** Later copies of a message in this same batch: answered with the first copy's verdict. */
      const copies: Array<{ out: VerdictOut; of: VerdictOut }> = [];
      const firstByKey = new Map<string, VerdictOut>();
      const gallery = new Map<string, ReturnType<VerifierStore['galleryEntry']>>();
      for (const p of batch.results) {
        // A valid signature ties the id to the device: key on it. Otherwise key on the bytes, so a forgery can
        // never take the place of a genuine attestation's verdict.
        const key = p.claims ? `att:${p.claims.ueid}:${p.claims.att_id}` : `raw:${p.hash}`;
        const first = firstByKey.get(key);
        if (first) {
          const o: VerdictOut = { ...first, duplicate: true, leafIndex: -1 };
          out.push(o);
          copies.push({ out: o, of: first });
          continue;
        }
        const earlier = this.store.verdictFor(key);
        if (earlier) {
          out.push({ ueid: p.ueid, attId: p.attId, verdict: earlier.verdict, decision: decisionOf(earlier.verdict), reasons: [], duplicate: true, leafIndex: -1 });
          continue;
        }
        const record = this.decideOne(p, now, gallery);
        const o: VerdictOut = { ueid: record.ueid, attId: record.att_id, verdict: null, decision: record.decision, reasons: record.reasonList, duplicate: false, leafIndex: -1 };
        out.push(o);
        firstByKey.set(key, o);
        logged.push({ out: o, key, record });
      }
      // One append for the batch (one savepoint, one frontier update), then one signed tree head.
      const appended = this.audit.appendBatch(logged.map((l) => ({ key: l.key, record: l.record.log })));
      appended.forEach((a, i) => (logged[i]!.out.leafIndex = a.leafIndex));
      const head = await this.audit.sealBatch();
      for (const { out: o, key, record } of logged) {
        // No verdict without a device and an id to address it to: such a message is logged only.
        if (!o.ueid || !o.attId) continue;
        const receipt: Receipt = {
          leafIndex: o.leafIndex,
          treeSize: head.treeSize,
          rootHash: head.rootHash,
          inclusionProof: this.audit.inclusionProof(o.leafIndex, head.treeSize),
          treeHeadTimestamp: head.timestamp,
          treeHeadSignature: head.signature,
        };
        o.verdict = await createVerdict(
          { iss: this.config.id, iat: Math.floor(now / 1000), att_id: o.attId, att_hash: record.log.att_hash, ueid: o.ueid, seq: record.log.seq, decision: o.decision, reasons: o.reasons, score: record.log.score, receipt },
          this.signer,
        );
        this.store.saveVerdict({ attHash: key, attId: o.attId, verdict: o.verdict, createdAt: now });
      }
      for (const c of copies) Object.assign(c.out, { verdict: c.of.verdict, decision: c.of.decision, reasons: c.of.reasons });
      this.store.commit();
    } catch (e) {
      this.store.rollback();
      throw e;
    }
    return out;
  }

  /** The stateful checks (nonce, seq), the enrolment lookup and the match for one message: its log record. */
  private decideOne(p: PrecheckResult, now: number, gallery: Map<string, ReturnType<VerifierStore['galleryEntry']>>): DecisionRecord & { ueid: string; att_id: string | null; decision: VerdictClaims['decision'] } {
    let rejection = rejectionOf(p);
    const c = p.claims;
    const matcher = c ? this.matchers.get(c.template_format) : undefined;
    if (!rejection && c) rejection = this.checkReplay(c, now);
    let decision: VerdictClaims['decision'] = 'rejected';
    let score: number | null = null;
    let native: { name: string; value: number } | null = null;
    if (!rejection && c && p.probe && matcher) {
      // Looked up once per subject per batch: a kiosk queue often holds several attempts by one person.
      const gkey = `${c.modality}\u0000${c.sub}`;
      if (!gallery.has(gkey)) gallery.set(gkey, this.store.galleryEntry(c.sub, c.modality));
      const enrolled = gallery.get(gkey);
      if (!enrolled) rejection = new Rejection('no_enrollment', `Subject ${c.sub} has no ${c.modality} enrolment.`);
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
    }
    const reasonList: Reason[] = rejection ? [reasonOf(rejection)] : [];
    if (rejection) decision = 'rejected';
    const ueid = c?.ueid ?? p.ueid;
    const att_id = c?.att_id ?? p.attId;
    return {
      ueid,
      att_id,
      decision,
      reasonList,
      log: {
        v: 1,
        verifier: this.config.id,
        decided_at: now,
        ueid,
        att_id,
        att_hash: p.hash,
        seq: c?.seq ?? null,
        sub: c?.sub ?? null,
        modality: c?.modality ?? null,
        model_sha256: c?.model.sha256 ?? null,
        site: c?.site ?? null,
        decision,
        reasons: reasonList.map((r) => r.code),
        score,
        distance: native?.value ?? null,
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

function reasonOf(r: Rejection): Reason {
  return r.toReason();
}

/** The decision inside a verdict we signed earlier (for reporting a redelivery). */
function decisionOf(verdictJws: string): VerdictClaims['decision'] {
  const payload = JSON.parse(Buffer.from(verdictJws.split('.')[1] ?? '', 'base64url').toString('utf8')) as { decision: VerdictClaims['decision'] };
  return payload.decision;
}
