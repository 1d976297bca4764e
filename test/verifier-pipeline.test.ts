/**
 * The verifier's decision pipeline without MQTT: the same messages decided with the checks on the main thread
 * and on precheck worker threads give the same decisions; copies of a message in one batch and in later batches
 * get one log entry and one verdict; a precheck worker that dies fails its batch (nothing committed) and is
 * replaced.
 */
import type { VerdictClaims } from '../protocol/claims.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { createAttestation } from '../protocol/attestation.ts';
import { openReply } from '../protocol/reply.ts';
import { deviceTopics } from '../protocol/topics.ts';
import { buildClaims, message, signedMessage } from './helpers/attest.ts';
import { PrecheckPool } from '../verifier/precheck-pool.ts';
import { openVerifier, type VerifierInstance } from '../verifier/setup.ts';
import type { IncomingMessage, VerdictOut } from '../verifier/verifier.ts';
import { faceTemplate, MODEL, tempDir, logSize } from './helpers/e2e.ts';

const good = SoftwareKeyStore.ephemeral();
const stranger = SoftwareKeyStore.ephemeral();
const revoked = SoftwareKeyStore.ephemeral();

async function open(workers: number): Promise<VerifierInstance> {
  const v = await openVerifier(await tempDir('bk-pipe-'), { allowedModels: [MODEL.sha256], precheckWorkers: workers });
  await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
  await v.store.registerDevice({ ueid: 'k-good', kid: good.kid, publicJwk: good.publicJwk as never, site: 's' });
  await v.store.registerDevice({ ueid: 'k-revoked', kid: revoked.kid, publicJwk: revoked.publicJwk as never, site: 's' });
  await v.store.revokeDevice('k-revoked');
  return v;
}

/** A mixed batch, encrypted to `v`'s fleet key: each message with the outcome it must get. */
async function mixedBatch(v: VerifierInstance, seq0: number): Promise<Array<{ msg: IncomingMessage; expect: string; replyKey?: Buffer }>> {
  const fleet = v.keys.fleet.publicJwk;
  const out: Array<{ msg: IncomingMessage; expect: string; replyKey?: Buffer }> = [];
  out.push({ ...(await signedMessage(fleet, good, { ueid: 'k-good', seq: seq0 })), expect: 'match' });
  out.push({ ...(await signedMessage(fleet, good, { ueid: 'k-good', seq: seq0 + 1, template: faceTemplate(7) })), expect: 'no_match' });
  const forged = await buildClaims(fleet, { ueid: 'k-good', seq: seq0 + 2 });
  const [h, , sig] = (await createAttestation(forged.claims, good)).split('.');
  out.push({ msg: message('k-good', forged.claims.att_id, `${h}.${Buffer.from(JSON.stringify({ ...forged.claims, seq: 1 })).toString('base64url')}.${sig}`), expect: 'bad_signature' });
  out.push({ msg: (await signedMessage(fleet, stranger, { ueid: 'k-stranger', seq: 1 })).msg, expect: 'unknown_device' });
  out.push({ msg: (await signedMessage(fleet, revoked, { ueid: 'k-revoked', seq: 1 })).msg, expect: 'revoked_device' });
  const tampered = await buildClaims(fleet, { ueid: 'k-good', seq: seq0 + 3 });
  const jwe = tampered.claims.sealed.split('.');
  jwe[3] = (jwe[3]!.startsWith('A') ? 'B' : 'A') + jwe[3]!.slice(1);
  tampered.claims.sealed = jwe.join('.');
  out.push({ msg: message('k-good', tampered.claims.att_id, await createAttestation(tampered.claims, good)), expect: 'template_undecryptable' });
  out.push({ msg: (await signedMessage(fleet, good, { ueid: 'k-good', seq: seq0 + 4, overrides: { model: { name: 'other', sha256: 'cd'.repeat(32) } } })).msg, expect: 'untrusted_model' });
  out.push({ msg: (await signedMessage(fleet, good, { ueid: 'k-good', seq: seq0 + 5, sub: 'bob' })).msg, expect: 'no_enrollment' });
  out.push({ msg: { topic: deviceTopics('k-good').attestations, payload: Buffer.from('{"v":1,"kind":"attestation"') }, expect: 'malformed' });
  out.push({ msg: { topic: deviceTopics('k-good').attestations, payload: Buffer.from([0xff, 0x00, 0x13]) }, expect: 'malformed' });
  return out;
}

/** The outcomes of messages no trusted device signed: counted and sampled, never logged, never answered. */
const UNAUTHENTICATED = new Set(['bad_signature', 'unknown_device', 'revoked_device', 'malformed']);

const outcome = (r: VerdictOut) => (r.decision === 'rejected' ? r.reasons[0]?.code : r.decision);

describe('verifier pipeline', () => {
  let inline: VerifierInstance;
  let pooled: VerifierInstance;
  beforeAll(async () => {
    inline = await open(0);
    pooled = await open(2);
  });
  afterAll(async () => {
    await inline?.close();
    await pooled?.close();
  });

  it('decides the same with the checks on worker threads as on the main thread', async () => {
    for (const v of [inline, pooled]) {
      const batch = await mixedBatch(v, 10);
      const results = await v.verifier.handleBatch(batch.map((b) => b.msg));
      expect(results.map(outcome)).toEqual(batch.map((b) => b.expect));
      // Only what a registered device signed is logged and answered; the rest is counted per code.
      const signed = batch.filter((b) => !UNAUTHENTICATED.has(b.expect)).length;
      expect((await logSize(v))).toBe(signed);
      expect(results.filter((r) => r.verdict).length).toBe(signed);
      expect(results.map((r) => r.authenticated)).toEqual(batch.map((b) => !UNAUTHENTICATED.has(b.expect)));
      const report = (await v.store.rejectionReport());
      expect(report.counts).toEqual({ bad_signature: 1, unknown_device: 1, revoked_device: 1, malformed: 2 });
      expect(report.samples.length).toBe(5);
    }
  });

  it('answers copies of a message (same batch, later batch) with the one decision and one log entry', async () => {
    for (const v of [inline, pooled]) {
      const [genuine, impostor] = await mixedBatch(v, 100);
      // Verdicts go out sealed for their kiosk (a fresh IV each time): compare what is inside.
      const open = (r: VerdictOut, key: Buffer) => openReply(r.verdict!, key);
      const before = (await logSize(v));
      const first = await v.verifier.handleBatch([genuine!.msg, impostor!.msg, genuine!.msg, genuine!.msg]);
      expect(first.map((r) => r.duplicate)).toEqual([false, false, true, true]);
      expect(first.map(outcome)).toEqual(['match', 'no_match', 'match', 'match']);
      expect(open(first[2]!, genuine!.replyKey!)).toBe(open(first[0]!, genuine!.replyKey!));
      expect(open(first[3]!, genuine!.replyKey!)).toBe(open(first[0]!, genuine!.replyKey!));
      const later = await v.verifier.handleBatch([impostor!.msg, genuine!.msg]);
      expect(later.map((r) => r.duplicate)).toEqual([true, true]);
      // A later copy is answered from the log entry: the same decision and entry, a receipt against a newer checkpoint.
      const claims = (jws: string) => JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as VerdictClaims;
      for (const [l, f, key] of [[later[0]!, first[1]!, impostor!.replyKey!], [later[1]!, first[0]!, genuine!.replyKey!]] as const) {
        const a = claims(open(l, key));
        const b = claims(open(f, key));
        expect([a.decision, a.reasons, a.att_hash, a.receipt.leafIndex, a.receipt.entry, a.receipt.salt]).toEqual([b.decision, b.reasons, b.att_hash, b.receipt.leafIndex, b.receipt.entry, b.receipt.salt]);
      }
      // Nobody else can read them.
      expect(() => open(first[0]!, impostor!.replyKey!)).toThrow(/does not decrypt/);
      expect((await logSize(v))).toBe(before + 2);
    }
  });

  it('fails the batch of a precheck worker that dies, commits nothing, and replaces the worker', async () => {
    const v = await openVerifier(await tempDir('bk-pipe-'), { allowedModels: [MODEL.sha256] });
    const pool = await PrecheckPool.start({ config: { allowedModels: [MODEL.sha256] }, fleetKey: v.keys.fleet.privateJwk, formats: ['biokiosk-face/1'] }, 2);
    await v.verifier.usePrechecker(pool);
    try {
      await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
      await v.store.registerDevice({ ueid: 'k-good', kid: good.kid, publicJwk: good.publicJwk as never, site: 's' });
      const batch = (await mixedBatch(v, 500)).map((b) => b.msg);
      const before = pool.workers().map((w) => w.threadId);
      const decided = v.verifier.handleBatch(batch);
      await pool.workers()[0]!.terminate();
      await expect(decided).rejects.toThrow(/precheck worker died/);
      expect((await logSize(v))).toBe(0);
      // A fresh worker took the dead one's place, and the same batch now goes through.
      const again = await v.verifier.handleBatch(batch);
      expect(again.filter((r) => r.decision === 'match').length).toBe(1);
      const after = pool.workers().map((w) => w.threadId);
      expect(after[0]).not.toBe(before[0]);
      expect(after[1]).toBe(before[1]);
      expect((await logSize(v))).toBe(again.filter((r) => r.authenticated).length);
    } finally {
      await v.close();
    }
  });

  it('refuses a pool of no workers and fails clearly once closed', async () => {
    const init = { config: { allowedModels: [] }, fleetKey: (await open(0)).keys.fleet.privateJwk, formats: ['biokiosk-face/1'] };
    await expect(PrecheckPool.start(init, 0)).rejects.toThrow(/at least one worker/);
    await expect(PrecheckPool.start({ ...init, formats: ['biokiosk-palm/9'] }, 1)).rejects.toThrow(/no built-in matcher for template format biokiosk-palm\/9/);
    const pool = await PrecheckPool.start(init, 1);
    await pool.close();
    await expect(pool.run([])).rejects.toThrow(/closed/);
  });
});
