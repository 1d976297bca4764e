/**
 * The verifier's intake: fair batches across devices, failure budgets, the crypto-free prescreen, and a bounded
 * queue that stops reading from the broker (withheld PUBACKs) instead of growing with a flood.
 */
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { newAttestationId } from '../protocol/attestation.ts';
import { encodeEnvelope } from '../protocol/envelope.ts';
import { DeviceGate, FairQueue } from '../verifier/intake.ts';
import { VerifierNode } from '../verifier/node.ts';
import { prescreen } from '../verifier/precheck.ts';
import { openVerifier } from '../verifier/setup.ts';
import { TokenBucket } from '../protocol/token-bucket.ts';
import { signedMessage } from './helpers/attest.ts';
import { faceTemplate, MODEL, tempDir, waitFor, logSize } from './helpers/e2e.ts';
import { Mosquitto } from './helpers/mosquitto.ts';

describe('intake parts', () => {
  it('FairQueue takes one per device in turn and bounds each device', () => {
    const q = new FairQueue<string>(3);
    for (let i = 0; i < 5; i++) expect(q.push('flood', `f${i}`)).toBe(i < 3);
    q.push('a', 'a0');
    q.push('b', 'b0');
    q.push('a', 'a1');
    expect(q.size).toBe(6);
    expect(q.take(4)).toEqual(['f0', 'a0', 'b0', 'f1']);
    expect(q.take(10)).toEqual(['a1', 'f2']);
    expect(q.size).toBe(0);
  });

  it('TokenBucket refills at its rate up to its burst; DeviceGate closes a device over its budget and reopens it', () => {
    const b = new TokenBucket(10, 5);
    for (let i = 0; i < 5; i++) expect(b.take(0)).toBe(true);
    expect(b.take(0)).toBe(false);
    expect(b.take(100)).toBe(true); // 100 ms: one token back
    expect(b.take(100)).toBe(false);
    const g = new DeviceGate({ perSecond: 2, burst: 3 }, 2);
    for (let i = 0; i < 3; i++) g.charge('k', 0);
    expect(g.allows('k', 0)).toBe(false);
    expect(g.allows('other', 0)).toBe(true);
    expect(g.throttled(0)).toEqual(['k']);
    expect(g.allows('k', 600)).toBe(true);
    // It forgets the least recently charged devices beyond its bound.
    g.charge('x', 600);
    g.charge('y', 600);
    expect(g.throttled(600)).toEqual([]);
  });

  it('prescreen refuses, without cryptography, what cannot be an attestation of the topic’s device', async () => {
    const ks = SoftwareKeyStore.ephemeral();
    const v = await openVerifier(await tempDir('bk-intake-'), { allowedModels: [MODEL.sha256] });
    try {
      const g = await signedMessage(v.keys.fleet.publicJwk, ks, { ueid: 'k1', seq: 1 });
      expect(prescreen('k1', g.msg.payload)).toEqual({ kid: ks.kid });
      const code = (r: ReturnType<typeof prescreen>) => ('rejection' in r ? r.rejection.code : 'passed');
      expect(code(prescreen('k2', g.msg.payload))).toBe('malformed');
      expect(code(prescreen('k1', encodeEnvelope({ v: 1, kind: 'attestation', corr: newAttestationId(), body: g.jws })))).toBe('malformed');
      expect(code(prescreen('k1', Buffer.from('{"v":1')))).toBe('malformed');
      expect(code(prescreen('k1', encodeEnvelope({ v: 1, kind: 'attestation', corr: g.claims.att_id, body: 'a.b.c' })))).toBe('malformed');
    } finally {
      await v.close();
    }
  });
});

describe('backpressure', () => {
  it('with a queue bound of 32 and a receive maximum of 32, a burst of 1,500 attestations never queues more than the two together, pauses the client, and loses none', async () => {
    const broker = await Mosquitto.start();
    const v = await openVerifier(await tempDir('bk-bp-'), { allowedModels: [MODEL.sha256] });
    const ks = SoftwareKeyStore.ephemeral();
    await v.store.registerDevice({ ueid: 'k-burst', kid: ks.kid, publicJwk: ks.publicJwk as never, site: 's' });
    await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    // A slow verifier (20 ms a batch of 16 more), so the publisher outruns it.
    const commit = v.verifier.commit.bind(v.verifier);
    v.verifier.commit = async (b, now) => {
      await new Promise((r) => setTimeout(r, 20));
      return commit(b, now);
    };
    let maxQueued = 0;
    let decided = 0;
    const node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'bp-verifier', protocolVersion: 5, maxBatch: 16, intake: { maxQueued: 32, maxPerDevice: 10_000, receiveMaximum: 32 }, onVerdict: () => decided++ });
    await node.start();
    const probe = setInterval(() => (maxQueued = Math.max(maxQueued, node.queued)), 1);
    const pub = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    try {
      const msgs = [];
      for (let s = 1; s <= 1500; s++) msgs.push((await signedMessage(v.keys.fleet.publicJwk, ks, { ueid: 'k-burst', seq: s })).msg);
      await Promise.all(msgs.map((m) => pub.publishAsync(m.topic, m.payload, { qos: 1 })));
      await waitFor(() => decided === 1500, 120_000, 'every attestation decided');
      await node.settled();
      // mqtt.js queues a message before its PUBACK is withheld: the broker's messages in flight come on top of the bound.
      expect(maxQueued).toBeLessThanOrEqual(32 + 32);
      expect(node.stats.pauses).toBeGreaterThan(0);
      expect(node.stats.answered).toBe(1500);
      expect((await logSize(v))).toBe(1500);
    } finally {
      clearInterval(probe);
      await pub.endAsync();
      await node.stop();
      await v.close();
      await broker.stop();
    }
  }, 180_000);
});
