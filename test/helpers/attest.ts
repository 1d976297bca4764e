/** Attestations built by hand for tests and benchmarks: sealed content, claims, envelope, any field overridable. */
import type { JsonWebKey } from 'node:crypto';
import { createAttestation, newAttestationId } from '../../protocol/attestation.ts';
import type { AttestationClaims } from '../../protocol/claims.ts';
import { encodeEnvelope } from '../../protocol/envelope.ts';
import { newReplyKey, sealContent } from '../../protocol/sealed.ts';
import type { Signer } from '../../protocol/signer.ts';
import { deviceTopics } from '../../protocol/topics.ts';
import type { IncomingMessage } from '../../verifier/verifier.ts';
import { faceTemplate, MODEL } from './e2e.ts';

export interface ClaimsInput {
  ueid: string;
  seq: number;
  sub?: string;
  site?: string;
  quality?: number;
  template?: Uint8Array;
  attId?: string;
  /** Claims to override after sealing (e.g. a tampered `sealed`). */
  overrides?: Partial<AttestationClaims>;
}

export interface BuiltClaims {
  claims: AttestationClaims;
  replyKey: Buffer;
}

/** Claims of a face attestation (template of face 1 by default) sealed to the fleet key. */
export async function buildClaims(fleetPublicJwk: JsonWebKey, i: ClaimsInput): Promise<BuiltClaims> {
  const attId = i.overrides?.att_id ?? i.attId ?? newAttestationId();
  const replyKey = newReplyKey();
  const sealed = await sealContent({ attId, subject: i.sub ?? 'alice', site: i.site ?? 'test-site', quality: i.quality ?? 80, template: i.template ?? faceTemplate(1, 0.02) }, fleetPublicJwk, replyKey);
  const claims: AttestationClaims = {
    ueid: i.ueid,
    iat: Math.floor(Date.now() / 1000),
    seq: i.seq,
    att_id: attId,
    modality: 'face',
    template_format: 'biokiosk-face/1',
    model: MODEL,
    sensor: { make: 'm', model: 'm', serial: 's', firmware: 'f' },
    sealed,
    ...i.overrides,
  };
  return { claims, replyKey };
}

/** An MQTT message on the topic of `ueid` (default: the claims' device) carrying `body` under `corr`. */
export function message(ueid: string, corr: string, body: string): IncomingMessage {
  return { topic: deviceTopics(ueid).attestations, payload: encodeEnvelope({ v: 1, kind: 'attestation', corr, body }) };
}

/** Claims built, signed and wrapped: the JWS, the message, the reply key. */
export async function signedMessage(fleetPublicJwk: JsonWebKey, signer: Signer, i: ClaimsInput): Promise<{ claims: AttestationClaims; jws: string; msg: IncomingMessage; replyKey: Buffer }> {
  const { claims, replyKey } = await buildClaims(fleetPublicJwk, i);
  const jws = await createAttestation(claims, signer);
  return { claims, jws, msg: message(claims.ueid, claims.att_id, jws), replyKey };
}
