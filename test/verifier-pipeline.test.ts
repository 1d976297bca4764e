/**
 * The verifier's decision pipeline without MQTT: the same messages decided with the checks on the main thread
 * and on precheck worker threads give the same decisions; copies of a message in one batch and in later batches
 * get one log entry and one verdict; a precheck worker that dies fails its batch (nothing committed) and is
 * replaced.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { createAttestation, newAttestationId } from '../protocol/attestation.ts';
import { encodeEnvelope } from '../protocol/envelope.ts';
import { encryptTemplate } from '../protocol/jwe.ts';
import { deviceTopics } from '../protocol/topics.ts';
import { PrecheckPool } from '../verifier/precheck-pool.ts';
import { openVerifier, type VerifierInstance } from '../verifier/setup.ts';
import type { IncomingMessage, VerdictOut } from '../verifier/verifier.ts';
import { faceTemplate, MODEL, tempDir } from './helpers/e2e.ts';

const good = SoftwareKeyStore.ephemeral();
const stranger = SoftwareKeyStore.ephemeral();
const revoked = SoftwareKeyStore.ephemeral();

async function open(workers: number): Promise<VerifierInstance> {
  const v = await openVerifier(await tempDir('bk-pipe-'), { allowedModels: [MODEL.sha256], precheckWorkers: workers });
  v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
  v.store.registerDevice({ ueid: 'k-good', kid: good.kid, publicJwk: good.publicJwk as never, site: 's' });
  v.store.registerDevice({ ueid: 'k-revoked', kid: revoked.kid, publicJwk: revoked.publicJwk as never, site: 's' });
  v.store.revokeDevice('k-revoked');
  return v;
}

/** A mixed batch, encrypted to `v`'s fleet key: each message with the outcome it must get. */
async function mixedBatch(v: VerifierInstance, seq0: number): Promise<Array<{ msg: IncomingMessage; expect: string }>> {
  const claims = async (ueid: string, seq: number, overrides: Record<string, unknown> = {}) => ({
    ueid, iat: Math.floor(Date.now() / 1000), seq, att_id: newAttestationId(), sub: 'alice', modality: 'face' as const,
    template: await encryptTemplate(faceTemplate(1, 0.02), v.keys.fleet.publicJwk), template_format: 'biokiosk-face/1', quality: 80, model: MODEL,
    sensor: { make: 'm', model: 'm', serial: 's', firmware: 'f' }, site: 's', ...overrides,
  });
  const msg = (ueid: string, corr: string, body: string): IncomingMessage => ({ topic: deviceTopics(ueid).attestations, payload: encodeEnvelope({ v: 1, kind: 'attestation', corr, body }) });
  const out: Array<{ msg: IncomingMessage; expect: string }> = [];
  const genuine = await claims('k-good', seq0);
  out.push({ msg: msg('k-good', genuine.att_id, await createAttestation(genuine, good)), expect: 'match' });
  const impostor = await claims('k-good', seq0 + 1, { template: await encryptTemplate(faceTemplate(7), v.keys.fleet.publicJwk) });
  out.push({ msg: msg('k-good', impostor.att_id, await createAttestation(impostor, good)), expect: 'no_match' });
  const forged = await claims('k-good', seq0 + 2);
  const [h, , sig] = (await createAttestation(forged, good)).split('.');
  out.push({ msg: msg('k-good', forged.att_id, `${h}.${Buffer.from(JSON.stringify({ ...forged, sub: 'mallory' })).toString('base64url')}.${sig}`), expect: 'bad_signature' });
  const unknown = await claims('k-stranger', 1);
  out.push({ msg: msg('k-stranger', unknown.att_id, await createAttestation(unknown, stranger)), expect: 'unknown_device' });
  const rev = await claims('k-revoked', 1);
  out.push({ msg: msg('k-revoked', rev.att_id, await createAttestation(rev, revoked)), expect: 'revoked_device' });
  const jwe = (await encryptTemplate(faceTemplate(1), v.keys.fleet.publicJwk)).split('.');
  jwe[3] = (jwe[3]!.startsWith('A') ? 'B' : 'A') + jwe[3]!.slice(1);
  const tampered = await claims('k-good', seq0 + 3, { template: jwe.join('.') });
  out.push({ msg: msg('k-good', tampered.att_id, await createAttestation(tampered, good)), expect: 'template_undecryptable' });
  const model = await claims('k-good', seq0 + 4, { model: { name: 'other', sha256: 'cd'.repeat(32) } });
  out.push({ msg: msg('k-good', model.att_id, await createAttestation(model, good)), expect: 'untrusted_model' });
  const nobody = await claims('k-good', seq0 + 5, { sub: 'bob' });
  out.push({ msg: msg('k-good', nobody.att_id, await createAttestation(nobody, good)), expect: 'no_enrollment' });
  out.push({ msg: { topic: deviceTopics('k-good').attestations, payload: Buffer.from('{"v":1,"kind":"attestation"') }, expect: 'malformed' });
  out.push({ msg: { topic: deviceTopics('k-good').attestations, payload: Buffer.from([0xff, 0x00, 0x13]) }, expect: 'malformed' });
  return out;
}

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
      expect(v.audit.size).toBe(batch.length);
      // Every message that names a device and an id gets a verdict; the unreadable ones are logged only.
      expect(results.filter((r) => r.verdict).length).toBe(batch.length - 2);
    }
  });

  it('answers copies of a message (same batch, later batch) with the one verdict and one log entry', async () => {
    for (const v of [inline, pooled]) {
      const [genuine, impostor] = await mixedBatch(v, 100);
      const before = v.audit.size;
      const first = await v.verifier.handleBatch([genuine!.msg, impostor!.msg, genuine!.msg, genuine!.msg]);
      expect(first.map((r) => r.duplicate)).toEqual([false, false, true, true]);
      expect(first.map(outcome)).toEqual(['match', 'no_match', 'match', 'match']);
      expect(first[2]!.verdict).toBe(first[0]!.verdict);
      expect(first[3]!.verdict).toBe(first[0]!.verdict);
      const later = await v.verifier.handleBatch([impostor!.msg, genuine!.msg]);
      expect(later.map((r) => r.duplicate)).toEqual([true, true]);
      expect(later[0]!.verdict).toBe(first[1]!.verdict);
      expect(later[1]!.verdict).toBe(first[0]!.verdict);
      expect(v.audit.size).toBe(before + 2);
    }
  });

  it('fails the batch of a precheck worker that dies, commits nothing, and replaces the worker', async () => {
    const v = await openVerifier(await tempDir('bk-pipe-'), { allowedModels: [MODEL.sha256] });
    const pool = await PrecheckPool.start({ config: { allowedModels: [MODEL.sha256] }, fleetKey: v.keys.fleet.privateJwk, formats: ['biokiosk-face/1'] }, 2);
    await v.verifier.usePrechecker(pool);
    try {
      v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
      v.store.registerDevice({ ueid: 'k-good', kid: good.kid, publicJwk: good.publicJwk as never, site: 's' });
      const batch = (await mixedBatch(v, 500)).map((b) => b.msg);
      const before = pool.workers().map((w) => w.threadId);
      const decided = v.verifier.handleBatch(batch);
      await pool.workers()[0]!.terminate();
      await expect(decided).rejects.toThrow(/precheck worker died/);
      expect(v.audit.size).toBe(0);
      // A fresh worker took the dead one's place, and the same batch now goes through.
      const again = await v.verifier.handleBatch(batch);
      expect(again.filter((r) => r.decision === 'match').length).toBe(1);
      const after = pool.workers().map((w) => w.threadId);
      expect(after[0]).not.toBe(before[0]);
      expect(after[1]).toBe(before[1]);
      expect(v.audit.size).toBe(batch.length);
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
