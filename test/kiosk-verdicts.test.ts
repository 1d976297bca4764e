/**
 * The kiosk settles an attempt only with a verdict for the exact attestation it sent, whose receipt holds: opened
 * with that entry's reply key, signed by a verifier it knows, naming its att_id, the hash of its JWS and its seq;
 * the receipt's log entry is that attestation's, its inclusion proof leads to a tree head the verifier signed, and
 * that tree extends the one the kiosk accepted before. Anything else (the rejection the rebinding attack used to
 * produce, random receipt bytes, another attestation's receipt, a log rewritten and re-signed between two
 * verdicts) leaves the attestation in the outbox and raises an alarm; `verifier audit --known-heads` catches the
 * rewrite from the heads the kiosk exported. The sealed form is a standard JWE: jose opens it too.
 */
import { randomUUID } from 'node:crypto';
import { cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compactDecrypt } from 'jose';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { TreeHeadStore } from '../device/tree-heads.ts';
import { verdictChecker } from '../device/verdicts.ts';
import { attestationHash } from '../protocol/attestation.ts';
import type { DecisionRecord, Receipt, VerdictClaims } from '../protocol/claims.ts';
import { encodeEnvelope, type EnvelopeOf } from '../protocol/envelope.ts';
import { newReplyKey } from '../protocol/sealed.ts';
import { openReply, sealReply } from '../protocol/reply.ts';
import { deviceTopics } from '../protocol/topics.ts';
import { createVerdict } from '../protocol/verdict.ts';
import { VerifierNode } from '../verifier/node.ts';
import { openVerifier, type VerifierInstance } from '../verifier/setup.ts';
import { signedMessage } from './helpers/attest.ts';
import { biokiosk } from './helpers/cli.ts';
import { appendWithReceipt, faceTemplate, kioskTrust, MODEL, startKiosk, tempDir, waitFor, type TestKiosk, logSize } from './helpers/e2e.ts';
import { logTrustOf } from '../device/kiosk.ts';
import { Mosquitto } from './helpers/mosquitto.ts';

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

describe('the kiosk accepts only a verdict for the exact attestation it sent, with a receipt that holds', () => {
  let broker: Mosquitto;
  let v: VerifierInstance;
  let k: TestKiosk;
  beforeAll(async () => {
    broker = await Mosquitto.start();
    v = await openVerifier(await tempDir('bk-kv-'), { allowedModels: [MODEL.sha256] });
    await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    k = await startKiosk(broker.url, v, 'kiosk-exact');
    await waitFor(() => k.relay.connected, 5000, 'kiosk connected');
  });
  afterAll(async () => {
    await k?.stop();
    await v?.close();
    await broker?.stop();
  });

  /** A real receipt: the record appended to the verifier's own log, signed. */
  async function realReceipt(record: DecisionRecord): Promise<Receipt> {
    return appendWithReceipt(v, `test:${randomUUID()}`, record);
  }

  it('refuses forged and misdirected verdicts and receipts (checked directly, then through the relay), then settles with the real one', async () => {
    const a = await k.attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
    const entry = k.state.outbox.get(a.attId)!;
    const hash = attestationHash(a.jws);
    const heads = k.kiosk.heads;
    const check = verdictChecker('kiosk-exact', [{ id: v.keys.verifierId, publicJwk: v.signer.publicJwk as never }], heads, logTrustOf(kioskTrust(v).log)).checkVerdict;
    const env = (body: string): EnvelopeOf<'verdict'> => ({ v: 1, kind: 'verdict', corr: a.attId, body });
    const record = (over: Partial<DecisionRecord> = {}): DecisionRecord => ({
      v: 1, verifier: v.keys.verifierId, decided_at: Date.now(), ueid: 'kiosk-exact', att_id: a.attId, att_hash: hash, seq: a.seq, sub: 'alice',
      modality: 'face', model_sha256: MODEL.sha256, site: 'test-site', decision: 'rejected', reasons: ['malformed'], score: null, distance: null, ...over,
    });
    const claimsFor = (receipt: Receipt, over: Partial<VerdictClaims> = {}): VerdictClaims => ({
      iss: v.keys.verifierId, iat: Math.floor(Date.now() / 1000), att_id: a.attId, att_hash: hash, ueid: 'kiosk-exact', seq: a.seq,
      decision: 'rejected', reasons: [{ code: 'malformed', message: 'The message does not follow the protocol schema.' }], receipt, ...over,
    });
    const good = await realReceipt(record());
    // Random bytes where the hashes and the signature belong.
    const random = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(Math.random() * 256))).toString('base64url');
    const randomReceipt: Receipt = { ...good, inclusionProof: good.inclusionProof.map(() => random(32)), salt: random(32) };
    // A checkpoint signed by a key that is not the log's (another verifier's log, or an insider's own key).
    const otherLog = await openVerifier(await tempDir('bk-kv-other-'), { allowedModels: [] });
    const foreign = await appendWithReceipt(otherLog, 'foreign', record());
    await otherLog.close();
    // A real receipt, for another attestation's entry.
    const other = await signedMessage(v.keys.fleet.publicJwk, SoftwareKeyStore.ephemeral(), { ueid: 'kiosk-other', seq: 1 });
    const otherReceipt = await realReceipt(record({ ueid: 'kiosk-other', att_id: other.claims.att_id, att_hash: attestationHash(other.jws), seq: 1 }));
    const stranger = SoftwareKeyStore.ephemeral();
    const forged: Array<[string, string, RegExp]> = [
      // What the rebinding attack used to produce: a rejection under the genuine att_id, for other bytes.
      ['another attestation hash', sealReply(await createVerdict(claimsFor(good, { att_hash: 'x'.repeat(43) }), v.signer), entry.replyKey!), /another attestation hash/],
      ['another seq', sealReply(await createVerdict(claimsFor(good, { seq: a.seq + 1 }), v.signer), entry.replyKey!), /names seq/],
      ['another reply key', sealReply(await createVerdict(claimsFor(good), v.signer), newReplyKey()), /does not decrypt/],
      ['unsealed match', await createVerdict(claimsFor(await realReceipt(record({ decision: 'match', reasons: [] })), { decision: 'match', reasons: [] }), v.signer), /sent unsealed/],
      ['another signer', sealReply(await createVerdict(claimsFor(good), stranger), entry.replyKey!), /not registered|No key/],
      ['a receipt of random bytes', sealReply(await createVerdict(claimsFor(randomReceipt), v.signer), entry.replyKey!), /inclusion proof does not lead/],
      ["another log's checkpoint", sealReply(await createVerdict(claimsFor(foreign), v.signer), entry.replyKey!), /not signed by a log key this party trusts/],
      ["another attestation's receipt", sealReply(await createVerdict(claimsFor(otherReceipt), v.signer), entry.replyKey!), /log entry is for kiosk-other/],
      ['an entry that says something else', sealReply(await createVerdict(claimsFor(good, { decision: 'no_match', reasons: [] }), v.signer), entry.replyKey!), /the log entry says rejected/],
    ];
    for (const [why, body, reason] of forged) await expect(check(env(body), entry), why).rejects.toThrow(reason);
    expect(heads.all()).toEqual([]);
    // Through the relay: published on the kiosk's verdict topic (this broker has no ACL), every one is refused,
    // each raising an alarm, the receipt ones naming what was wrong with the receipt.
    const spy = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    for (const [, body] of forged) await spy.publishAsync(deviceTopics('kiosk-exact').verdicts, encodeEnvelope({ v: 1, kind: 'verdict', corr: a.attId, body }), { qos: 1 });
    await waitFor(() => k.relay.stats.badVerdicts >= forged.length, 5000, 'the forged verdicts refused');
    await spy.endAsync();
    expect(k.state.outbox.get(a.attId)).toBeDefined();
    expect(k.verdicts).toEqual([]);
    expect(k.alarms.filter((x) => x.kind === 'verdict_refused' && x.receipt === 'forged').length).toBeGreaterThanOrEqual(1);
    expect(k.alarms.filter((x) => x.kind === 'verdict_refused' && x.receipt === 'mismatch').length).toBeGreaterThanOrEqual(2);
    // A verifier that could not open the sealed content answers unsealed, with a rejection for these exact bytes
    // and a real receipt: accepted.
    const plain = await createVerdict(claimsFor(await realReceipt(record({ reasons: ['template_undecryptable'] })), { reasons: [{ code: 'template_undecryptable', message: 'The encrypted template cannot be decrypted.' }] }), v.signer);
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
      // The head of the verdict that settled the attempt is kept (the first, so it is the latest), with the
      // acknowledgement; the ones only checked above were not kept.
      expect(heads.all().map((h) => [h.treeSize, h.linked])).toEqual([[(await logSize(v)), true]]);
    } finally {
      await real.stop();
    }
  });
});

describe('a log rewritten and re-signed between two verdicts', () => {
  it('is caught by the kiosk (the next receipt does not extend the tree it kept), and by verifier audit --known-heads', async () => {
    const broker = await Mosquitto.start();
    const root = await tempDir('bk-rewrite-');
    const honestDir = join(root, 'verifier');
    const v = await openVerifier(honestDir, { allowedModels: [MODEL.sha256] });
    await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    const kdir = join(root, 'kiosk');
    const k = await startKiosk(broker.url, v, 'kiosk-rw', { dir: kdir });
    await v.close();
    // The insider's copy of the folder, as it was before the kiosk's first attempt was decided.
    const rewrittenDir = join(root, 'rewritten');
    await cp(honestDir, rewrittenDir, { recursive: true });
    const honest = await openVerifier(honestDir, { allowedModels: [MODEL.sha256] });
    let node = new VerifierNode(honest.verifier, honest.store, { brokerUrl: broker.url, clientId: 'rw-verifier', protocolVersion: 5 });
    await node.start();
    try {
      const first = await k.kiosk.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
      await waitFor(() => k.verdicts.length === 1, 10_000, 'the first verdict');
      expect(k.verdicts[0]?.decision).toBe('match');
      expect(k.kiosk.heads.latest()?.treeSize).toBe(1);
      await node.stop();
      await honest.close();
      // The insider rewrites history with the same keys: entry 0 now says alice's first attempt did not match.
      const forger = await openVerifier(rewrittenDir, { allowedModels: [MODEL.sha256] });
      await appendWithReceipt(forger, `att:${attestationHash(first.jws)}`, { v: 1, verifier: forger.keys.verifierId, decided_at: Date.now(), ueid: 'kiosk-rw', att_id: first.attId, att_hash: attestationHash(first.jws), seq: first.seq, sub: 'alice', modality: 'face', model_sha256: MODEL.sha256, site: 'test-site', decision: 'no_match', reasons: [], score: 0.1, distance: 0.9 });
      node = new VerifierNode(forger.verifier, forger.store, { brokerUrl: broker.url, clientId: 'rw-forger', protocolVersion: 5 });
      await node.start();
      // The kiosk's next attempt: the forged log answers, correctly signed, but cannot prove it extends the tree of
      // 1 entry the kiosk kept.
      const second = await k.kiosk.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
      await waitFor(() => k.alarms.some((x) => x.kind === 'verdict_refused' && x.receipt === 'inconsistent'), 10_000, 'the kiosk to catch the rewrite');
      expect(k.verdicts).toHaveLength(1);
      expect(k.state.outbox.get(second.attId)).toBeDefined();
      expect(k.kiosk.heads.latest()?.treeSize).toBe(1);
      await node.stop();
      // The forged log passes its own audit (it is consistent with itself) ...
      expect((await biokiosk('verifier', 'audit', '--dir', rewrittenDir)).code).toBe(0);
      await forger.close();
    } finally {
      await k.stop();
      await broker.stop();
    }
    // ... but not against the checkpoints the kiosk kept.
    const exported = await biokiosk('kiosk', 'heads', '--dir', kdir, '--ueid', 'kiosk-rw');
    expect(exported.code, exported.stderr).toBe(0);
    const heads = JSON.parse(exported.stdout) as { checkpoints: Array<{ treeSize: number; linked: boolean }> };
    expect(heads.checkpoints.map((h) => [h.treeSize, h.linked])).toEqual([[1, true]]);
    await writeFile(join(root, 'heads.json'), exported.stdout);
    const caught = await biokiosk('verifier', 'audit', '--dir', rewrittenDir, '--known-heads', join(root, 'heads.json'));
    expect(caught.code).toBe(2);
    expect(caught.stderr).toMatch(/a checkpoint a kiosk accepted .* is not the tree the first 1 entries give: the log was rewritten/);
    expect(caught.stderr).toMatch(/entry 0 was tampered with: an entry in \[0, 1\) was changed or removed.*kiosk-rw\/[^:]+: no_match/);
    const fine = await biokiosk('verifier', 'audit', '--dir', honestDir, '--known-heads', join(root, 'heads.json'));
    expect(fine.code, fine.stderr).toBe(0);
    expect(fine.stdout).toMatch(/1 independent checkpoints \(witnessed, or kept by kiosks\) all match/);
  }, 90_000);
});

describe('the tree heads a kiosk keeps', () => {
  it('are bounded, the newest and the latest linked one kept, also across reopening', async () => {
    const db = new Database(join(await tempDir('bk-heads-'), 'outbox.db'));
    const head = (n: number) => ({ treeSize: n, rootHash: `root-${n}`, note: `note ${n}`, witnesses: [] });
    const heads = new TreeHeadStore(db, 3);
    for (let n = 1; n <= 6; n++) heads.accept(head(n), true);
    expect(heads.all().map((h) => h.treeSize)).toEqual([4, 5, 6]);
    heads.accept(head(6), true); // the same head again writes nothing
    expect(heads.all().map((h) => h.treeSize)).toEqual([4, 5, 6]);
    const again = new TreeHeadStore(db, 3);
    for (let n = 7; n <= 10; n++) again.accept(head(n), false);
    expect(again.all().map((h) => h.treeSize)).toEqual([6, 8, 9, 10]);
    expect(again.latestSize()).toBe(6);
    db.close();
  });
});
