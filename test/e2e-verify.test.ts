/** Kiosk -> real mosquitto (MQTT 5) -> verifier -> verdict, with the real protocol, stores and audit log. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLog } from '../verifier/audit/verify.ts';
import { Mosquitto } from './helpers/mosquitto.ts';
import { faceTemplate, MODEL, startKiosk, startVerifier, tempDir, waitFor, type TestKiosk, logSize, auditTrust, logRecords } from './helpers/e2e.ts';

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
    await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
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
      expect(by.get(unknown.attId)?.claims.reasons[0]?.code).toBe('no_enrollment');
      expect(k.state.outbox.size.entries).toBe(0);
      const report = await auditLog(v.store.audit, auditTrust(v));
      expect(report.ok).toBe(true);
      expect(report.size).toBe(3);
    } finally {
      await k.stop();
      await node.stop();
      await v.close();
    }
  });
});

import mqtt from 'mqtt';
import { createAttestation } from '../protocol/attestation.ts';
import { decodeEnvelope, encodeEnvelope } from '../protocol/envelope.ts';
import { isSealedReply, openReply } from '../protocol/reply.ts';
import { deviceTopics } from '../protocol/topics.ts';
import { parseVerdict } from '../protocol/verdict.ts';
import { buildClaims, type ClaimsInput } from './helpers/attest.ts';

describe('rejections on mosquitto', () => {
  it('rejects forged, replayed, unknown-device, revoked-device, tampered-ciphertext and wrong-model attestations; logs and answers only what a registered device signed', async () => {
    const { v, node } = await startVerifier(broker.url, await tempDir('bk-ver-'));
    await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    const good = await startKiosk(broker.url, v, 'kiosk-good');
    const stranger = await startKiosk(broker.url, v, 'kiosk-stranger', { register: false });
    const revoked = await startKiosk(broker.url, v, 'kiosk-revoked');
    // This broker has no ACL: a spy reads every verdict topic, and can open only those it holds the reply key of.
    const spy = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    const keys = new Map<string, Buffer>();
    const seen: Array<{ ueid: string; attId: string; decision: string; codes: string[]; sealed: boolean }> = [];
    await spy.subscribeAsync('biokiosk/v1/+/verdicts', { qos: 1 });
    spy.on('message', async (_t, payload) => {
      const env = decodeEnvelope(payload, 'verdict');
      const sealed = isSealedReply(env.body);
      const key = keys.get(env.corr);
      if (sealed && !key) return;
      const p = await parseVerdict(sealed ? openReply(env.body, key!) : env.body, () => ({ owner: v.keys.verifierId, key: v.signer.publicJwk as never }));
      seen.push({ ueid: p.claims.ueid, attId: p.claims.att_id, decision: p.claims.decision, codes: p.claims.reasons.map((r) => r.code), sealed });
    });
    const publish = (ueid: string, attId: string, body: string) => spy.publishAsync(deviceTopics(ueid).attestations, encodeEnvelope({ v: 1, kind: 'attestation', corr: attId, body }), { qos: 1 });
    const claims = async (ueid: string, seq: number, i: Partial<ClaimsInput> = {}) => {
      const b = await buildClaims(v.keys.fleet.publicJwk, { ueid, seq, template: faceTemplate(1), ...i });
      keys.set(b.claims.att_id, b.replyKey);
      return b.claims;
    };
    const codeFor = (attId: string) => seen.find((s) => s.attId === attId)?.codes[0];
    try {
      // A genuine one first, then its exact bytes again: the same verdict, no second log entry.
      const c1 = await claims('kiosk-good', 1000);
      const jws1 = await createAttestation(c1, good.state.keystore);
      await publish('kiosk-good', c1.att_id, jws1);
      await waitFor(() => seen.some((s) => s.attId === c1.att_id), 5000, 'first verdict');
      const sizeAfterFirst = (await logSize(v));
      await publish('kiosk-good', c1.att_id, jws1);
      await waitFor(() => seen.filter((s) => s.attId === c1.att_id).length === 2, 5000, 'redelivered verdict');
      expect((await logSize(v))).toBe(sizeAfterFirst);
      expect(seen.every((s) => s.sealed)).toBe(true);

      // Forged: a claim changed after signing.
      const c2 = await claims('kiosk-good', 1001);
      const [h, , s] = (await createAttestation(c2, good.state.keystore)).split('.');
      await publish('kiosk-good', c2.att_id, `${h}.${Buffer.from(JSON.stringify({ ...c2, seq: 5000 })).toString('base64url')}.${s}`);
      // Replayed: a new attestation reusing an accepted seq (a rewound counter or a cloned disk).
      const c3 = await claims('kiosk-good', 1000);
      await publish('kiosk-good', c3.att_id, await createAttestation(c3, good.state.keystore));
      // Unknown device.
      const c4 = await claims('kiosk-stranger', 1);
      await publish('kiosk-stranger', c4.att_id, await createAttestation(c4, stranger.state.keystore));
      // Revoked device.
      await v.store.revokeDevice('kiosk-revoked');
      const c5 = await claims('kiosk-revoked', 1);
      await publish('kiosk-revoked', c5.att_id, await createAttestation(c5, revoked.state.keystore));
      // Tampered ciphertext, signed by the device (the signature is fine, the JWE is not): no reply key, so the
      // rejection goes back unsealed.
      const c6 = await claims('kiosk-good', 1002);
      const jwe = c6.sealed.split('.');
      jwe[3] = (jwe[3]!.startsWith('A') ? 'B' : 'A') + jwe[3]!.slice(1);
      c6.sealed = jwe.join('.');
      await publish('kiosk-good', c6.att_id, await createAttestation(c6, good.state.keystore));
      // A model the verifier does not allow.
      const c7 = await claims('kiosk-good', 1003, { overrides: { model: { name: 'other-net', sha256: 'cd'.repeat(32) } } });
      await publish('kiosk-good', c7.att_id, await createAttestation(c7, good.state.keystore));

      const answered: Array<[string, string]> = [
        [c3.att_id, 'replayed_seq'],
        [c6.att_id, 'template_undecryptable'],
        [c7.att_id, 'untrusted_model'],
      ];
      await waitFor(() => answered.every(([id]) => codeFor(id)), 10_000, 'three rejections');
      for (const [id, code] of answered) expect(codeFor(id), code).toBe(code);
      expect(seen.find((x) => x.attId === c6.att_id)?.sealed).toBe(false);
      await node.settled();
      // Signed by a registered device: logged. Not (forged, stranger, revoked): counted, sampled, never answered.
      expect((await logSize(v))).toBe(sizeAfterFirst + 3);
      const logged = (await logRecords<{ att_id: string; reasons: string[]; decision: string }>(v));
      for (const [id, code] of answered) expect(logged.find((r) => r.att_id === id)).toMatchObject({ decision: 'rejected', reasons: [code] });
      for (const id of [c2.att_id, c4.att_id, c5.att_id]) {
        expect(codeFor(id)).toBeUndefined();
        expect(logged.find((r) => r.att_id === id)).toBeUndefined();
      }
      expect((await v.store.rejectionReport()).counts).toMatchObject({ bad_signature: 1, unknown_device: 1, revoked_device: 1 });
    } finally {
      await spy.endAsync();
      await Promise.all([good.stop(), stranger.stop(), revoked.stop()]);
      await node.stop();
      await v.close();
    }
  });
});

describe('online checks with a verifier nonce', () => {
  for (const version of [5, 4] as const) {
    it(`gets a nonce by request/response (MQTT ${version === 5 ? '5' : '3.1.1'}), which verifies once and is refused when reused or unknown`, async () => {
      const { v, node } = await startVerifier(broker.url, await tempDir('bk-ver-'), { version });
      await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
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
        const codeOf = (id: string) => k.verdicts.find((x) => x.attId === id)!.claims.reasons[0]?.code;
        expect(k.verdicts.find((x) => x.attId === first.attId)?.decision).toBe('match');
        expect(codeOf(again.attId)).toBe('nonce_reused');
        expect(codeOf(invented.attId)).toBe('nonce_unknown');
      } finally {
        await k.stop();
        await node.stop();
        await v.close();
      }
    });
  }
});
