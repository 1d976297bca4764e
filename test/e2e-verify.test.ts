/** Kiosk -> real mosquitto (MQTT 5) -> verifier -> verdict, with the real protocol, stores and audit log. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { p256TreeHeadVerifier } from '../verifier/audit/tree-head.ts';
import { auditLog } from '../verifier/audit/verify.ts';
import { Mosquitto } from './helpers/mosquitto.ts';
import { faceTemplate, MODEL, startKiosk, startVerifier, tempDir, waitFor, type TestKiosk } from './helpers/e2e.ts';

let broker: Mosquitto;
beforeAll(async () => {
  broker = await Mosquitto.start();
});
afterAll(async () => {
  await broker?.stop();
});

describe('end to end on mosquitto', () => {
  it('answers genuine and impostor attempts with signed verdicts carrying audit receipts', async () => {
    const { v, node } = await startVerifier(broker.url, await tempDir('bk-ver-'));
    v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    const k: TestKiosk = await startKiosk(broker.url, v, 'kiosk-e2e-1');
    try {
      const genuine = await k.attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.05), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
      const impostor = await k.attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(2), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
      const unknown = await k.attester.attest({ subject: 'bob', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
      k.relay.nudge();
      await waitFor(() => k.verdicts.length === 3, 10_000, 'three verdicts');
      const by = new Map(k.verdicts.map((x) => [x.attId, x]));
      expect(by.get(genuine.attId)?.decision).toBe('match');
      expect(by.get(impostor.attId)?.decision).toBe('no_match');
      expect(by.get(unknown.attId)?.decision).toBe('rejected');
      expect((by.get(unknown.attId)?.['claims'] as { reasons: Array<{ code: string }> }).reasons[0]?.code).toBe('no_enrollment');
      expect(k.state.outbox.size.entries).toBe(0);
      const report = await auditLog(v.audit.store, p256TreeHeadVerifier(v.signer.publicJwk as never));
      expect(report.ok).toBe(true);
      expect(report.size).toBe(3);
    } finally {
      await k.stop();
      await node.stop();
      v.close();
    }
  });
});

import mqtt from 'mqtt';
import { createAttestation, newAttestationId } from '../protocol/attestation.ts';
import { decodeEnvelope, encodeEnvelope } from '../protocol/envelope.ts';
import { encryptTemplate } from '../protocol/jwe.ts';
import { deviceTopics } from '../protocol/topics.ts';
import { parseVerdict } from '../protocol/verdict.ts';

describe('rejections on mosquitto', () => {
  it('rejects forged, replayed, unknown-device, revoked-device, tampered-ciphertext and wrong-model attestations, each logged with its reason', async () => {
    const { v, node } = await startVerifier(broker.url, await tempDir('bk-ver-'));
    v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    const good = await startKiosk(broker.url, v, 'kiosk-good');
    const stranger = await startKiosk(broker.url, v, 'kiosk-stranger', { register: false });
    const revoked = await startKiosk(broker.url, v, 'kiosk-revoked');
    const spy = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    const seen: Array<{ ueid: string; attId: string; decision: string; codes: string[] }> = [];
    await spy.subscribeAsync('biokiosk/v1/+/verdicts', { qos: 1 });
    spy.on('message', async (_t, payload) => {
      const env = decodeEnvelope(payload, 'verdict');
      const p = await parseVerdict(env.body, () => ({ owner: v.keys.verifierId, key: v.signer.publicJwk as never }));
      seen.push({ ueid: p.claims.ueid, attId: p.claims.att_id, decision: p.claims.decision, codes: p.claims.reasons.map((r) => r.code) });
    });
    const publish = (ueid: string, attId: string, body: string) => spy.publishAsync(deviceTopics(ueid).attestations, encodeEnvelope({ v: 1, kind: 'attestation', corr: attId, body }), { qos: 1 });
    const claims = async (ueid: string, seq: number, overrides: Record<string, unknown> = {}) => ({
      ueid, iat: Math.floor(Date.now() / 1000), seq, att_id: newAttestationId(), sub: 'alice', modality: 'face' as const,
      template: await encryptTemplate(faceTemplate(1), v.keys.fleet.publicJwk), template_format: 'biokiosk-face/1', quality: 80, model: MODEL,
      sensor: { make: 'm', model: 'm', serial: 's', firmware: 'f' }, site: 'test-site', ...overrides,
    });
    const codeFor = (attId: string) => seen.find((s) => s.attId === attId)?.codes[0];
    try {
      // A genuine one first, then its exact bytes again: the same verdict, no second log entry.
      const c1 = await claims('kiosk-good', 1000);
      const jws1 = await createAttestation(c1, good.state.keystore);
      await publish('kiosk-good', c1.att_id, jws1);
      await waitFor(() => seen.some((s) => s.attId === c1.att_id), 5000, 'first verdict');
      const sizeAfterFirst = v.audit.size;
      await publish('kiosk-good', c1.att_id, jws1);
      await waitFor(() => seen.filter((s) => s.attId === c1.att_id).length === 2, 5000, 'redelivered verdict');
      expect(v.audit.size).toBe(sizeAfterFirst);

      // Forged: a claim changed after signing.
      const c2 = await claims('kiosk-good', 1001);
      const [h, p, s] = (await createAttestation(c2, good.state.keystore)).split('.');
      const forged = `${h}.${Buffer.from(JSON.stringify({ ...c2, sub: 'mallory' })).toString('base64url')}.${s}`;
      void p;
      await publish('kiosk-good', c2.att_id, forged);
      // Replayed: a new attestation reusing an accepted seq (a rewound counter or a cloned disk).
      const c3 = await claims('kiosk-good', 1000);
      await publish('kiosk-good', c3.att_id, await createAttestation(c3, good.state.keystore));
      // Unknown device.
      const c4 = await claims('kiosk-stranger', 1);
      await publish('kiosk-stranger', c4.att_id, await createAttestation(c4, stranger.state.keystore));
      // Revoked device.
      v.store.revokeDevice('kiosk-revoked');
      const c5 = await claims('kiosk-revoked', 1);
      await publish('kiosk-revoked', c5.att_id, await createAttestation(c5, revoked.state.keystore));
      // Tampered ciphertext, signed by the device (the signature is fine, the JWE is not).
      const jwe = (await encryptTemplate(faceTemplate(1), v.keys.fleet.publicJwk)).split('.');
      jwe[3] = (jwe[3]!.startsWith('A') ? 'B' : 'A') + jwe[3]!.slice(1);
      const c6 = await claims('kiosk-good', 1002, { template: jwe.join('.') });
      await publish('kiosk-good', c6.att_id, await createAttestation(c6, good.state.keystore));
      // A model the verifier does not allow.
      const c7 = await claims('kiosk-good', 1003, { model: { name: 'other-net', sha256: 'cd'.repeat(32) } });
      await publish('kiosk-good', c7.att_id, await createAttestation(c7, good.state.keystore));

      const expected: Array<[string, string]> = [
        [c2.att_id, 'bad_signature'],
        [c3.att_id, 'replayed_seq'],
        [c4.att_id, 'unknown_device'],
        [c5.att_id, 'revoked_device'],
        [c6.att_id, 'template_undecryptable'],
        [c7.att_id, 'untrusted_model'],
      ];
      await waitFor(() => expected.every(([id]) => codeFor(id)), 10_000, 'six rejections');
      for (const [id, code] of expected) expect(codeFor(id), code).toBe(code);
      await node.settled();
      expect(v.audit.size).toBe(sizeAfterFirst + 6);
      const logged = Array.from({ length: v.audit.size }, (_, i) => v.audit.entry(i)!.record as { att_id: string; reasons: string[]; decision: string });
      for (const [id, code] of expected) expect(logged.find((r) => r.att_id === id)).toMatchObject({ decision: 'rejected', reasons: [code] });
    } finally {
      await spy.endAsync();
      await Promise.all([good.stop(), stranger.stop(), revoked.stop()]);
      await node.stop();
      v.close();
    }
  });
});

describe('online checks with a verifier nonce', () => {
  for (const version of [5, 4] as const) {
    it(`gets a nonce by request/response (MQTT ${version === 5 ? '5' : '3.1.1'}), which verifies once and is refused when reused or unknown`, async () => {
      const { v, node } = await startVerifier(broker.url, await tempDir('bk-ver-'), { version });
      v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
      const k = await startKiosk(broker.url, v, `kiosk-nonce-${version}`, { version });
      try {
        await waitFor(() => k.relay.connected, 5000, 'kiosk connected');
        const { nonce, expiresAt } = await k.relay.requestNonce();
        expect(expiresAt).toBeGreaterThan(Date.now() / 1000);
        const base = { subject: 'alice', modality: 'face' as const, template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL };
        const first = await k.attester.attest({ ...base, nonce });
        const again = await k.attester.attest({ ...base, nonce });
        const invented = await k.attester.attest({ ...base, nonce: 'A'.repeat(22) });
        k.relay.nudge();
        await waitFor(() => k.verdicts.length === 3, 10_000, 'three verdicts');
        const codeOf = (id: string) => (k.verdicts.find((x) => x.attId === id)!['claims'] as { reasons: Array<{ code: string }> }).reasons[0]?.code;
        expect(k.verdicts.find((x) => x.attId === first.attId)?.decision).toBe('match');
        expect(codeOf(again.attId)).toBe('nonce_reused');
        expect(codeOf(invented.attId)).toBe('nonce_unknown');
      } finally {
        await k.stop();
        await node.stop();
        v.close();
      }
    });
  }
});
