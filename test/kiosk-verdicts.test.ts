/**
 * The kiosk settles an attempt only with a verdict for the exact attestation it sent: opened with that entry's
 * reply key, signed by a verifier it knows, naming its att_id, the hash of its JWS and its seq. Anything else (the
 * rejection the rebinding attack used to produce, a verdict for another attestation, a sealed verdict under
 * another key, an unsealed "match") leaves the attestation in the outbox. The sealed form is a standard JWE: jose
 * opens it too.
 */
import { compactDecrypt } from 'jose';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { verdictChecker } from '../device/verdicts.ts';
import { attestationHash } from '../protocol/attestation.ts';
import type { Receipt, VerdictClaims } from '../protocol/claims.ts';
import { encodeEnvelope, type EnvelopeOf } from '../protocol/envelope.ts';
import { newReplyKey } from '../protocol/sealed.ts';
import { openReply, sealReply } from '../protocol/reply.ts';
import { deviceTopics } from '../protocol/topics.ts';
import { createVerdict } from '../protocol/verdict.ts';
import { VerifierNode } from '../verifier/node.ts';
import { openVerifier, type VerifierInstance } from '../verifier/setup.ts';
import { faceTemplate, MODEL, startKiosk, tempDir, waitFor, type TestKiosk } from './helpers/e2e.ts';
import { Mosquitto } from './helpers/mosquitto.ts';

const receipt: Receipt = { leafIndex: 0, treeSize: 1, rootHash: 'r'.repeat(43), inclusionProof: [], treeHeadTimestamp: 1, treeHeadSignature: 's'.repeat(86) };

describe('sealed verdicts', () => {
  it('are compact JWEs (dir, A256GCM) that jose opens, that fail under any other key and when tampered with', async () => {
    const key = newReplyKey();
    const sealed = sealReply('a verdict JWS', key);
    expect(sealed.split('.')).toHaveLength(5);
    expect(Buffer.from((await compactDecrypt(sealed, key)).plaintext).toString()).toBe('a verdict JWS');
    expect(openReply(sealed, key)).toBe('a verdict JWS');
    expect(() => openReply(sealed, newReplyKey())).toThrow(/does not decrypt/);
    const parts = sealed.split('.');
    parts[3] = (parts[3]!.startsWith('A') ? 'B' : 'A') + parts[3]!.slice(1);
    expect(() => openReply(parts.join('.'), key)).toThrow(/does not decrypt/);
    expect(() => openReply(sealed.replace(/^[^.]+/, 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0'), key)).toThrow(/header/);
  });
});

describe('the kiosk accepts only a verdict for the exact attestation it sent', () => {
  let broker: Mosquitto;
  let v: VerifierInstance;
  let k: TestKiosk;
  beforeAll(async () => {
    broker = await Mosquitto.start();
    v = await openVerifier(await tempDir('bk-kv-'), { allowedModels: [MODEL.sha256] });
    v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    k = await startKiosk(broker.url, v, 'kiosk-exact');
    await waitFor(() => k.relay.connected, 5000, 'kiosk connected');
  });
  afterAll(async () => {
    await k?.stop();
    await v?.close();
    await broker?.stop();
  });

  const claimsFor = (attId: string, attHash: string, seq: number, over: Partial<VerdictClaims> = {}): VerdictClaims => ({
    iss: v.keys.verifierId, iat: Math.floor(Date.now() / 1000), att_id: attId, att_hash: attHash, ueid: 'kiosk-exact', seq,
    decision: 'rejected', reasons: [{ code: 'malformed', message: 'The message does not follow the protocol schema.' }], receipt, ...over,
  });

  it('refuses forged and misdirected verdicts (each checked directly, then through the relay), then settles with the real one', async () => {
    const a = await k.attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
    const entry = k.state.outbox.get(a.attId)!;
    const hash = attestationHash(a.jws);
    const check = verdictChecker('kiosk-exact', [{ id: v.keys.verifierId, publicJwk: v.signer.publicJwk as never }]).checkVerdict;
    const env = (body: string): EnvelopeOf<'verdict'> => ({ v: 1, kind: 'verdict', corr: a.attId, body });
    const stranger = SoftwareKeyStore.ephemeral();
    const forged: Array<[string, string]> = [
      // What the rebinding attack used to produce: a rejection under the genuine att_id, for other bytes.
      ['another attestation hash', sealReply(await createVerdict(claimsFor(a.attId, 'x'.repeat(43), a.seq), v.signer), entry.replyKey!)],
      ['another seq', sealReply(await createVerdict(claimsFor(a.attId, hash, a.seq + 1), v.signer), entry.replyKey!)],
      ['another reply key', sealReply(await createVerdict(claimsFor(a.attId, hash, a.seq), v.signer), newReplyKey())],
      ['unsealed match', await createVerdict(claimsFor(a.attId, hash, a.seq, { decision: 'match', reasons: [] }), v.signer)],
      ['another signer', sealReply(await createVerdict(claimsFor(a.attId, hash, a.seq), stranger), entry.replyKey!)],
    ];
    for (const [why, body] of forged) await expect(check(env(body), entry), why).rejects.toThrow();
    // Through the relay: published on the kiosk's verdict topic (this broker has no ACL), every one is refused.
    const spy = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    for (const [, body] of forged) await spy.publishAsync(deviceTopics('kiosk-exact').verdicts, encodeEnvelope({ v: 1, kind: 'verdict', corr: a.attId, body }), { qos: 1 });
    await waitFor(() => k.relay.stats.badVerdicts >= forged.length, 5000, 'the forged verdicts refused');
    await spy.endAsync();
    expect(k.state.outbox.get(a.attId)).toBeDefined();
    expect(k.verdicts).toEqual([]);
    // A verifier that could not open the sealed content answers unsealed, with a rejection for these exact bytes:
    // accepted (signed, and bound to the attestation).
    const plain = await createVerdict(claimsFor(a.attId, hash, a.seq, { reasons: [{ code: 'template_undecryptable', message: 'The encrypted template cannot be decrypted.' }] }), v.signer);
    expect((await check(env(plain), entry)).decision).toBe('rejected');
    // The real verifier comes online: its verdict, sealed for this kiosk, settles the attempt.
    const real = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'kv-verifier', protocolVersion: 5 });
    await real.start();
    try {
      k.state.outbox.retryAllNow();
      k.relay.nudge();
      await waitFor(() => k.verdicts.length === 1, 10_000, 'the real verdict');
      expect(k.verdicts[0]).toMatchObject({ attId: a.attId, attHash: hash, decision: 'match' });
      expect(k.state.outbox.get(a.attId)).toBeUndefined();
    } finally {
      await real.stop();
    }
  });
});
