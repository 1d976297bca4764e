/**
 * The MQTT payload envelope. MQTT 5 carries correlation data and a response topic as packet properties, but a
 * 3.1.1 broker has no properties; so every payload is a small JSON envelope that carries the correlation id
 * itself, and works the same on both:
 *
 *   { "v": 1, "kind": "attestation", "corr": "<att_id>", "body": "<compact JWS>" }
 *
 * For attestations and verdicts `corr` is the att_id (the verifier must check it equals the attestation's
 * claims.att_id before it binds anything to it: the envelope is not signed); for challenges it is the req_id
 * (checked here against the body). `att_hash` is computed over the body JWS, never over the envelope.
 */
import { z } from 'zod';
import { ChallengeRequest, ChallengeResponse, describeIssues, DeviceStatus, MessageId } from './claims.ts';
import { BiokioskError } from './errors.ts';
import { MAX_ATTESTATION_BYTES } from './attestation.ts';
import { Rejection } from './rejections.ts';
import { topicFor } from './topics.ts';
import { MAX_SEALED_VERDICT_BYTES } from './verdict.ts';

export const ENVELOPE_VERSION = 1;

/** Largest envelope accepted: the largest attestation plus room for the envelope's own fields. */
export const MAX_ENVELOPE_BYTES = MAX_ATTESTATION_BYTES + 512;

const Jws = (max: number) => z.string().min(1).max(max);

export const Envelope = z.discriminatedUnion('kind', [
  z.strictObject({ v: z.literal(ENVELOPE_VERSION), kind: z.literal('attestation'), corr: MessageId, body: Jws(MAX_ATTESTATION_BYTES) }),
  // A verdict's body is its JWS sealed for the kiosk (reply.ts), or the plain JWS when there was no reply key.
  z.strictObject({ v: z.literal(ENVELOPE_VERSION), kind: z.literal('verdict'), corr: MessageId, body: Jws(MAX_SEALED_VERDICT_BYTES) }),
  z.strictObject({ v: z.literal(ENVELOPE_VERSION), kind: z.literal('challenge_request'), corr: MessageId, body: ChallengeRequest }),
  z.strictObject({ v: z.literal(ENVELOPE_VERSION), kind: z.literal('challenge_response'), corr: MessageId, body: ChallengeResponse }),
  z.strictObject({ v: z.literal(ENVELOPE_VERSION), kind: z.literal('status'), body: DeviceStatus }),
]);
export type Envelope = z.infer<typeof Envelope>;
export type EnvelopeKind = Envelope['kind'];
export type EnvelopeOf<K extends EnvelopeKind> = Extract<Envelope, { kind: K }>;

export function encodeEnvelope(env: Envelope): Buffer {
  const checked = Envelope.safeParse(env);
  if (!checked.success) throw new BiokioskError('BadEnvelope', `envelope does not follow the schema: ${describeIssues(checked.error)}`, { kind: 'internal' });
  checkCorrelation(checked.data);
  return Buffer.from(JSON.stringify(checked.data), 'utf8');
}

/**
 * Decodes and validates an MQTT payload. With `kind`, an envelope of another kind is `malformed` (a verdict
 * published on an attestation topic, say).
 */
export function decodeEnvelope<K extends EnvelopeKind>(payload: Uint8Array | string, kind: K, opts?: { maxBytes?: number }): EnvelopeOf<K>;
export function decodeEnvelope(payload: Uint8Array | string, kind?: undefined, opts?: { maxBytes?: number }): Envelope;
export function decodeEnvelope(payload: Uint8Array | string, kind?: EnvelopeKind, opts: { maxBytes?: number } = {}): Envelope {
  const max = opts.maxBytes ?? MAX_ENVELOPE_BYTES;
  const size = typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.byteLength;
  if (size > max) throw new Rejection('oversized', `The MQTT payload is ${size} bytes; at most ${max} allowed.`);
  let v: unknown;
  try {
    v = JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch (e) {
    throw new Rejection('malformed', 'The MQTT payload is not JSON.', { cause: e });
  }
  const parsed = Envelope.safeParse(v);
  if (!parsed.success) throw new Rejection('malformed', `Envelope: ${describeIssues(parsed.error)}.`);
  if (kind !== undefined && parsed.data.kind !== kind) throw new Rejection('malformed', `Expected a ${kind} envelope, got ${parsed.data.kind}.`);
  checkCorrelation(parsed.data);
  return parsed.data;
}

function checkCorrelation(env: Envelope): void {
  if ((env.kind === 'challenge_request' || env.kind === 'challenge_response') && env.corr !== env.body.req_id) {
    throw new Rejection('malformed', `Envelope corr ${env.corr} does not match the body's req_id ${env.body.req_id}.`);
  }
}

/**
 * The correlation id of a message: the envelope's, cross-checked against MQTT 5 correlation data when the
 * packet has some (the two disagreeing means someone rewrote one of them).
 */
export function correlationOf(env: Envelope, correlationData?: Uint8Array): string | undefined {
  const corr = 'corr' in env ? env.corr : undefined;
  if (correlationData !== undefined && correlationData.byteLength > 0) {
    const fromPacket = Buffer.from(correlationData.buffer, correlationData.byteOffset, correlationData.byteLength).toString('utf8');
    if (corr !== undefined && fromPacket !== corr) throw new Rejection('malformed', `MQTT correlation data ${JSON.stringify(fromPacket.slice(0, 64))} does not match the envelope's corr ${corr}.`);
    return corr ?? fromPacket;
  }
  return corr;
}

/** MQTT 5 publish properties for a request: where to answer, and the correlation id (ignored by 3.1.1 clients). */
export function requestProperties(corr: string, responseTopic: string): { responseTopic: string; correlationData: Buffer } {
  return { responseTopic, correlationData: Buffer.from(corr, 'utf8') };
}

/** The retained status message (an envelope of kind 'status'). */
export function statusMessage(status: DeviceStatus): Buffer {
  return encodeEnvelope({ v: ENVELOPE_VERSION, kind: 'status', body: status });
}

/**
 * Retained publishes for a device's status topic: `online` to send after connecting, and `will` to register at
 * connect time so the broker itself announces 'offline' when the kiosk vanishes. `at` is when each was composed.
 */
export function statusPublishes(ueid: string, version: string, at: number): Record<'online' | 'offline' | 'will', { topic: string; payload: Buffer; qos: 1; retain: true }> {
  const topic = topicFor('status', ueid);
  const online = { topic, payload: statusMessage({ state: 'online', ueid, at, version }), qos: 1 as const, retain: true as const };
  const offline = { topic, payload: statusMessage({ state: 'offline', ueid, at, version }), qos: 1 as const, retain: true as const };
  return { online, offline, will: offline };
}
