/**
 * Turns a template into an attestation and puts it in the outbox: seal the person's part (subject, site,
 * template, quality, and a fresh key for the verdict) to the verifier fleet's key, take the next seq, sign
 * (through the key store's Signer), wrap in the MQTT envelope, store durably with the reply key.
 */
import type { JsonWebKey } from 'node:crypto';
import { createAttestation, newAttestationId } from '../protocol/attestation.ts';
import type { AttestationClaims, Consent, Override } from '../protocol/claims.ts';
import { encodeEnvelope, ENVELOPE_VERSION } from '../protocol/envelope.ts';
import { newReplyKey, sealContent } from '../protocol/sealed.ts';
import type { Signer } from '../protocol/signer.ts';
import type { Outbox } from './outbox.ts';
import type { SeqSource } from './seq-counter.ts';

export interface DeviceIdentity {
  ueid: string;
  site: string;
  sensor: AttestationClaims['sensor'];
}

export interface TemplateToAttest {
  subject: string;
  modality: AttestationClaims['modality'];
  template: Uint8Array;
  templateFormat: string;
  quality: number;
  model: { name: string; sha256: string };
  nonce?: string;
  /** A self-test attestation (`biokiosk selftest`): the verifier checks it but never matches it. */
  test?: boolean;
  /** The service asked for, the consent given for it, and whether to answer eligibility (sealed). */
  scenario?: string;
  consent?: Consent;
  wantEligibility?: boolean;
  /** The att_id whose step_up verdict this attempt answers. */
  stepOf?: string;
  /** A staff override (template empty). */
  override?: Override;
}

export interface Attested {
  attId: string;
  seq: number;
  jws: string;
  timings: { encrypt: number; sign: number; enqueue: number };
}

export class Attester {
  constructor(
    private readonly identity: DeviceIdentity,
    private readonly signer: Signer,
    private readonly fleetPublicJwk: JsonWebKey,
    private readonly seq: SeqSource,
    private readonly outbox: Outbox,
    /** The size of the latest audit-log tree head the kiosk accepted (named in each attestation; 0: none). */
    private readonly logSize: () => number = () => 0,
  ) {}

  async attest(t: TemplateToAttest): Promise<Attested> {
    const t0 = performance.now();
    const attId = newAttestationId();
    const replyKey = newReplyKey();
    const sealed = await sealContent(
      { attId, subject: t.subject, site: this.identity.site, quality: t.quality, template: t.template, scenario: t.scenario, consent: t.consent, wantEligibility: t.wantEligibility, stepOf: t.stepOf, override: t.override },
      this.fleetPublicJwk,
      replyKey,
    );
    const t1 = performance.now();
    const seq = await this.seq.next();
    const logSize = this.logSize();
    const claims: AttestationClaims = {
      ueid: this.identity.ueid,
      ...(t.nonce ? { eat_nonce: t.nonce } : {}),
      iat: Math.floor(Date.now() / 1000),
      seq,
      att_id: attId,
      modality: t.modality,
      template_format: t.templateFormat,
      model: t.model,
      sensor: this.identity.sensor,
      sealed,
      ...(logSize > 0 ? { log_size: logSize } : {}),
      ...(t.test ? { test: true as const } : {}),
    };
    const jws = await createAttestation(claims, this.signer);
    const t2 = performance.now();
    this.outbox.enqueue(attId, seq, encodeEnvelope({ v: ENVELOPE_VERSION, kind: 'attestation', corr: attId, body: jws }), Date.now(), replyKey);
    const t3 = performance.now();
    return { attId, seq, jws, timings: { encrypt: t1 - t0, sign: t2 - t1, enqueue: t3 - t2 } };
  }
}
