import { describe, expect, it } from 'vitest';
import { newAttestationId } from '../protocol/attestation.ts';
import { correlationOf, decodeEnvelope, encodeEnvelope, MAX_ENVELOPE_BYTES, requestProperties, statusMessage, statusPublishes } from '../protocol/envelope.ts';
import { Rejection } from '../protocol/rejections.ts';
import { allDevicesFilter, assertDeviceId, deviceIdFromTopic, deviceTopics, parseTopic, sharedSubscription, topicFor } from '../protocol/topics.ts';

function rejection(f: () => unknown): Rejection {
  try {
    f();
  } catch (e) {
    if (e instanceof Rejection) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('topics', () => {
  it('builds every topic of a device', () => {
    expect(deviceTopics('kiosk-0001')).toEqual({
      attestations: 'biokiosk/v1/kiosk-0001/attestations',
      verdicts: 'biokiosk/v1/kiosk-0001/verdicts',
      challengeRequest: 'biokiosk/v1/kiosk-0001/challenges/request',
      challengeResponse: 'biokiosk/v1/kiosk-0001/challenges/response',
      status: 'biokiosk/v1/kiosk-0001/status',
    });
    expect(allDevicesFilter('status')).toBe('biokiosk/v1/+/status');
    expect(sharedSubscription('verifiers')).toBe('$share/verifiers/biokiosk/v1/+/attestations');
    expect(sharedSubscription('verifiers', 'challenges/request')).toBe('$share/verifiers/biokiosk/v1/+/challenges/request');
  });

  it('parses topics back, and refuses anything outside the scheme', () => {
    expect(parseTopic('biokiosk/v1/kiosk-0001/challenges/response')).toEqual({ deviceId: 'kiosk-0001', kind: 'challenges/response' });
    expect(deviceIdFromTopic('biokiosk/v1/k.1_x-2/attestations', 'attestations')).toBe('k.1_x-2');
    for (const bad of ['biokiosk/v2/k/attestations', 'biokiosk/v1/k', 'biokiosk/v1//attestations', 'biokiosk/v1/k/other', 'biokiosk/v1/k/attestations/x', 'other/v1/k/status', 'biokiosk/v1/+/status']) {
      expect(rejection(() => parseTopic(bad)).code).toBe('malformed');
    }
    expect(rejection(() => deviceIdFromTopic('biokiosk/v1/k/verdicts', 'attestations')).message).toMatch(/verdicts topic, not attestations/);
  });

  it('device ids cannot break out of their topic level', () => {
    for (const bad of ['a/b', 'a+', '#', '$SYS', '', 'x'.repeat(65), 'a b']) {
      expect(rejection(() => topicFor('attestations', bad)).code).toBe('malformed');
      expect(() => assertDeviceId(bad)).toThrow(Rejection);
    }
    expect(() => sharedSubscription('a/b')).toThrow(Rejection);
  });
});

describe('envelope (MQTT 3.1.1 correlation in the payload)', () => {
  const attId = newAttestationId();

  it('round-trips each kind', () => {
    const att = { v: 1, kind: 'attestation', corr: attId, body: 'h.p.s' } as const;
    expect(decodeEnvelope(encodeEnvelope(att), 'attestation')).toEqual(att);
    const req = { v: 1, kind: 'challenge_request', corr: attId, body: { req_id: attId, ueid: 'kiosk-0001' } } as const;
    expect(decodeEnvelope(encodeEnvelope(req))).toEqual(req);
    const status = decodeEnvelope(statusMessage({ state: 'offline', ueid: 'kiosk-0001', at: 1_760_000_000, version: '0.1.0' }), 'status');
    expect(status.body.state).toBe('offline');
    const p = statusPublishes('kiosk-0001', '0.1.0', 1_760_000_000);
    expect(p.will).toMatchObject({ topic: 'biokiosk/v1/kiosk-0001/status', qos: 1, retain: true });
    expect(decodeEnvelope(p.will.payload, 'status').body).toEqual({ state: 'offline', ueid: 'kiosk-0001', at: 1_760_000_000, version: '0.1.0' });
    expect(decodeEnvelope(p.online.payload, 'status').body.state).toBe('online');
  });

  it('refuses malformed, oversized, wrong-kind and inconsistent envelopes', () => {
    expect(rejection(() => decodeEnvelope('{', 'attestation')).code).toBe('malformed');
    expect(rejection(() => decodeEnvelope(Buffer.alloc(MAX_ENVELOPE_BYTES + 1, 0x20))).code).toBe('oversized');
    expect(rejection(() => decodeEnvelope(JSON.stringify({ v: 2, kind: 'attestation', corr: attId, body: 'x' }))).message).toMatch(/v:/);
    expect(rejection(() => decodeEnvelope(JSON.stringify({ v: 1, kind: 'attestation', corr: 'short', body: 'x' }))).message).toMatch(/corr:/);
    expect(rejection(() => decodeEnvelope(JSON.stringify({ v: 1, kind: 'attestation', corr: attId, body: 'x', extra: 1 }))).message).toMatch(/Unrecognized key/);
    expect(rejection(() => decodeEnvelope(JSON.stringify({ v: 1, kind: 'verdict', corr: attId, body: 'x' }), 'attestation')).message).toMatch(/Expected a attestation envelope, got verdict/);
    const other = newAttestationId();
    expect(rejection(() => decodeEnvelope(JSON.stringify({ v: 1, kind: 'challenge_request', corr: attId, body: { req_id: other, ueid: 'k' } }))).message).toMatch(/does not match/);
  });

  it('MQTT 5 correlation data must agree with the envelope', () => {
    const env = decodeEnvelope(encodeEnvelope({ v: 1, kind: 'verdict', corr: attId, body: 'h.p.s' }));
    expect(correlationOf(env)).toBe(attId);
    const props = requestProperties(attId, 'biokiosk/v1/kiosk-0001/verdicts');
    expect(props.responseTopic).toBe('biokiosk/v1/kiosk-0001/verdicts');
    expect(correlationOf(env, props.correlationData)).toBe(attId);
    expect(rejection(() => correlationOf(env, Buffer.from(newAttestationId()))).code).toBe('malformed');
  });
});
