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
import { attestationHash, parseAttestation } from '../protocol/attestation.ts';
import type { AttestationClaims, Receipt, Reason, VerdictClaims } from '../protocol/claims.ts';
import { correlationOf, decodeEnvelope } from '../protocol/envelope.ts';
import { decryptTemplate, type DecryptionKey } from '../protocol/jwe.ts';
import { Rejection } from '../protocol/rejections.ts';
import type { Signer } from '../protocol/signer.ts';
import { deviceIdFromTopic } from '../protocol/topics.ts';
import type { TrustedKey } from '../protocol/trust.ts';
import { createVerdict } from '../protocol/verdict.ts';
import type { TemplateMatcher } from './matchers.ts';
import type { VerifierStore } from './store.ts';

/** The audit log as the verifier uses it: appends inside the caller's transaction, then one signed head per batch. */
export interface BatchAuditLog {
  /** Appends (or finds, for a key already logged) a record; must run inside the store's open transaction. */
  append(key: string, record: object): { leafIndex: number; duplicate: boolean };
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

interface Pending {
  msg: IncomingMessage;
  ueid: string;
  attId: string | null;
  hash: string;
  claims: AttestationClaims | null;
  /** Set when a check failed before the transaction. */
  rejection: Rejection | null;
  probe: Uint8Array | null;
  matcher: TemplateMatcher | null;
}

export class Verifier {
  constructor(
    readonly config: VerifierConfig,
    private readonly store: VerifierStore & { begin(): void; commit(): void; rollback(): void },
    private readonly audit: BatchAuditLog,
    private readonly signer: Signer,
    private readonly fleetKey: DecryptionKey | KeyObject,
    private readonly matchers: Map<string, TemplateMatcher>,
  ) {}

  private resolveKey = (kid: string): TrustedKey | undefined => {
    const d = this.store.deviceByKid(kid);
    return d ? { owner: d.ueid, key: d.publicJwk as never, revoked: d.status === 'revoked' } : undefined;
  };

  /** Stateless checks, run in parallel for a batch: envelope, signature, claims, time, model, decryption. */
  private async precheck(msg: IncomingMessage): Promise<Pending> {
    let ueid = '';
    try {
      ueid = deviceIdFromTopic(msg.topic, 'attestations');
    } catch {
      ueid = '';
    }
    const p: Pending = { msg, ueid, attId: null, hash: attestationHash(msg.payload), claims: null, rejection: null, probe: null, matcher: null };
    try {
      const env = decodeEnvelope(msg.payload, 'attestation');
      p.attId = correlationOf(env, msg.correlationData) ?? null;
      p.hash = attestationHash(env.body);
      const parsed = await parseAttestation(env.body, this.resolveKey, {
        expectedUeid: ueid || undefined,
        maxAgeSeconds: this.config.maxAgeSeconds,
        maxFutureSeconds: this.config.maxFutureSeconds,
        now: (msg.receivedAt ?? Date.now()) / 1000,
      });
      p.claims = parsed.claims;
      if (parsed.claims.att_id !== p.attId) throw new Rejection('malformed', `The envelope's correlation id ${p.attId} is not the attestation's att_id ${parsed.claims.att_id}.`);
      if (this.config.requireNonce && !parsed.claims.eat_nonce) throw new Rejection('nonce_unknown', 'This verifier requires a nonce (online check) and the attestation has none.');
      const matcher = this.matchers.get(parsed.claims.template_format);
      if (!matcher) throw new Rejection('unsupported_modality', `No matcher for template format ${parsed.claims.template_format}.`);
      if (!this.config.allowedModels.includes(parsed.claims.model.sha256)) {
        throw new Rejection('untrusted_model', `Model ${parsed.claims.model.name} (sha256 ${parsed.claims.model.sha256}) is not on this verifier's allowed list.`);
      }
      const probe = await decryptTemplate(parsed.claims.template, this.fleetKey as DecryptionKey);
      let inner: string;
      try {
        inner = matcher.modelOf(probe);
      } catch (e) {
        throw new Rejection('bad_template', `The decrypted template cannot be read: ${(e as Error).message}.`);
      }
      if (inner !== parsed.claims.model.sha256) throw new Rejection('untrusted_model', `The template was made by model ${inner}, not the ${parsed.claims.model.sha256} the attestation claims.`);
      p.probe = probe;
      p.matcher = matcher;
    } catch (e) {
      if (!(e instanceof Rejection)) throw e;
      p.rejection = e;
    }
    return p;
  }

  /** Decides a batch: one transaction, one signed tree head, one verdict per message that can be answered. */
  async handleBatch(messages: IncomingMessage[]): Promise<VerdictOut[]> {
    const pending = await Promise.all(messages.map((m) => this.precheck(m)));
    const now = Date.now();
    const out: Array<VerdictOut & { claims?: VerdictClaims }> = [];
    this.store.begin();
    try {
      const fresh: Array<{ out: VerdictOut; claims: Omit<VerdictClaims, 'receipt'> }> = [];
      for (const p of pending) {
        // A valid signature ties the id to the device: key on it. Otherwise key on the bytes, so a forgery can
        // never take the place of a genuine attestation's verdict.
        const key = p.claims ? `att:${p.claims.ueid}:${p.claims.att_id}` : `raw:${p.hash}`;
        const earlier = this.store.verdictFor(key);
        if (earlier) {
          out.push({ ueid: p.ueid, attId: p.attId, verdict: earlier.verdict, decision: decisionOf(earlier.verdict), reasons: [], duplicate: true, leafIndex: -1 });
          continue;
        }
        let rejection = p.rejection;
        const c = p.claims;
        if (!rejection && c) rejection = this.checkReplay(c, now);
        let decision: VerdictClaims['decision'] = 'rejected';
        let score: number | null = null;
        let native: { name: string; value: number } | null = null;
        if (!rejection && c && p.probe && p.matcher) {
          const enrolled = this.store.galleryEntry(c.sub, c.modality);
          if (!enrolled) rejection = new Rejection('no_enrollment', `Subject ${c.sub} has no ${c.modality} enrolment.`);
          else {
            try {
              const m = p.matcher.match(p.probe, enrolled.template);
              decision = m.decision;
              score = m.score;
              native = m.native;
            } catch (e) {
              rejection = new Rejection('bad_template', `The templates cannot be compared: ${(e as Error).message}.`);
            }
          }
        }
        const reasons: Reason[] = rejection ? [reasonOf(rejection)] : [];
        if (rejection) decision = 'rejected';
        const record = {
          v: 1,
          verifier: this.config.id,
          decided_at: now,
          ueid: c?.ueid ?? p.ueid,
          att_id: c?.att_id ?? p.attId,
          att_hash: p.hash,
          seq: c?.seq ?? null,
          sub: c?.sub ?? null,
          modality: c?.modality ?? null,
          model_sha256: c?.model.sha256 ?? null,
          site: c?.site ?? null,
          decision,
          reasons: reasons.map((r) => r.code),
          score,
          distance: native?.value ?? null,
        };
        const { leafIndex } = this.audit.append(key, record);
        const o: VerdictOut = { ueid: record.ueid, attId: record.att_id, verdict: null, decision, reasons, duplicate: false, leafIndex };
        out.push(o);
        // No verdict without a device and an id to address it to: such a message is logged only.
        if (record.ueid && record.att_id) {
          fresh.push({
            out: o,
            claims: { iss: this.config.id, iat: Math.floor(now / 1000), att_id: record.att_id, att_hash: p.hash, ueid: record.ueid, seq: record.seq, decision, reasons, score },
          });
        }
        (o as VerdictOut & { key?: string }).key = key;
      }
      const head = await this.audit.sealBatch();
      for (const f of fresh) {
        const receipt: Receipt = {
          leafIndex: f.out.leafIndex,
          treeSize: head.treeSize,
          rootHash: head.rootHash,
          inclusionProof: this.audit.inclusionProof(f.out.leafIndex, head.treeSize),
          treeHeadTimestamp: head.timestamp,
          treeHeadSignature: head.signature,
        };
        f.out.verdict = await createVerdict({ ...f.claims, receipt }, this.signer);
        this.store.saveVerdict({ attHash: (f.out as VerdictOut & { key?: string }).key!, attId: f.out.attId!, verdict: f.out.verdict, createdAt: now });
      }
      this.store.commit();
    } catch (e) {
      this.store.rollback();
      throw e;
    }
    return out;
  }

  private checkReplay(c: AttestationClaims, now: number): Rejection | null {
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

function reasonOf(r: Rejection): Reason {
  return r.toReason();
}

/** The decision inside a verdict we signed earlier (for reporting a redelivery). */
function decisionOf(verdictJws: string): VerdictClaims['decision'] {
  const payload = JSON.parse(Buffer.from(verdictJws.split('.')[1] ?? '', 'base64url').toString('utf8')) as { decision: VerdictClaims['decision'] };
  return payload.decision;
}
