/**
 * A provisioned kiosk's later life, from its configuration file (what `biokiosk provision` wrote):
 * - `selftest`: the preflight, a capture from each sensor, and a test attestation (`test: true`) that the
 *   verifier checks end to end and answers with `self_test`, without touching the gallery;
 * - `rotateKey`: a new TPM key, certified by the same identity key over the registry's nonce and endorsed by
 *   the old key; the old one is evicted only once the registry has confirmed (the kiosk is never keyless);
 * - `decommission`: the outbox delivered (or exported to a file the technician keeps), the device revoked and its
 *   broker login deleted by the registry, the TPM key and seq counter removed, the local state wiped.
 */
import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { RH, TpmClient, eccRestrictedSigningTemplate } from '../drivers/tpm/index.ts';
import { CameraCaptureDevice } from '../device/capture/camera.ts';
import { FingerprintCaptureDevice } from '../device/capture/fingerprint.ts';
import type { CaptureDevice } from '../device/capture/types.ts';
import { Kiosk, loadVerifierKeys, trustedFrom } from '../device/kiosk.ts';
import { DEFAULT_KEY_HANDLE, TpmKeyStore } from '../device/keystore/tpm.ts';
import { openKioskState, type KeyStoreChoice } from '../device/setup.ts';
import { DEFAULT_SEQ_INDEX } from '../device/tpm-seq-counter.ts';
import { createEngine, TEMPLATE_FORMATS } from '../models/engines.ts';
import { brokerConnectOptions } from '../protocol/broker-credentials.ts';
import { DecommissionAnswer, EnrollmentError, ENROLL_VERSION, openEnrollment, RotateAnswer, RotateChallenge, signEnrollment, type RotateProof } from '../protocol/enrollment.ts';
import type { Modality } from '../protocol/claims.ts';
import { p256PublicJwk } from '../protocol/signer.ts';
import { readConfigValues, writeConfigAtomically } from './kiosk-config.ts';
import { preflight, type CheckResult } from './preflight.ts';
import { RegistryClient } from './registry-client.ts';

/** What a provisioned kiosk's configuration holds. */
export interface ProvisionedConfig {
  path: string;
  values: Map<string, string>;
  ueid: string;
  site: string;
  dir: string;
  broker: string;
  keyStore: KeyStoreChoice;
  verifierKeys: string;
  ca?: string;
  username?: string;
  passwordFile?: string;
}

export function readProvisionedConfig(path: string): ProvisionedConfig {
  const values = readConfigValues(path);
  const need = (k: string) => {
    const v = values.get(k);
    if (!v) throw new EnrollmentError('NotProvisioned', `${path} has no "${k}": provision this kiosk first (biokiosk provision)`);
    return v;
  };
  const keyStore: KeyStoreChoice = values.get('keystore') === 'software' ? { kind: 'software' } : { kind: 'tpm', tpm: need('tpm'), handle: values.has('tpm-handle') ? Number(values.get('tpm-handle')) : DEFAULT_KEY_HANDLE };
  return { path, values, ueid: need('ueid'), site: need('site'), dir: need('dir'), broker: need('broker'), keyStore, verifierKeys: need('verifier-keys'), ca: values.get('ca'), username: values.get('username'), passwordFile: values.get('password-file') };
}

/** The registry the kiosk was provisioned by (given again: the configuration names the broker, not the registry). */
function registry(url: string, c: ProvisionedConfig, retryForMs?: number): RegistryClient {
  return new RegistryClient(url, { ca: c.ca ? readFileSync(c.ca) : undefined, retryForMs });
}

/** The kiosk a provisioned configuration describes (its key, outbox, broker login and verifier keys). */
export async function openProvisionedKiosk(c: ProvisionedConfig, capture: CaptureDevice[] = []): Promise<Kiosk> {
  const keys = await loadVerifierKeys(c.verifierKeys);
  return Kiosk.create({
    dir: c.dir,
    ueid: c.ueid,
    site: c.site,
    keyStore: c.keyStore,
    verifiers: trustedFrom(keys),
    broker: { url: c.broker, protocolVersion: 5, mqtt: await brokerConnectOptions(c.broker, { ca: c.ca, username: c.username, passwordFile: c.passwordFile }) },
    capture: capture.map((device) => ({ modality: device.modality, device })),
    policy: { nonce: 'never' },
  });
}

export interface SelftestResult {
  ok: boolean;
  checks: CheckResult[];
  captures: Array<{ modality: Modality; ok: boolean; detail: string }>;
  attestation: { ok: boolean; detail: string; attId?: string; ms?: number };
  /** The first part that failed, named for the exit message. */
  failed?: string;
}

export async function selftest(c: ProvisionedConfig, o: { modelsDir?: string; timeoutMs?: number } = {}): Promise<SelftestResult> {
  const camera = c.values.get('camera');
  const fpPort = c.values.get('fingerprint-port');
  const fingerprint = fpPort ? { port: fpPort, baudRate: Number(c.values.get('fingerprint-baud') ?? 57_600) } : undefined;
  const checks = await preflight({ tpm: c.keyStore.kind === 'tpm' ? c.keyStore.tpm : undefined, camera, fingerprint, modelsDir: o.modelsDir, dir: c.dir, broker: c.broker });
  const result: SelftestResult = { ok: false, checks, captures: [], attestation: { ok: false, detail: 'not run' } };
  const firstBad = checks.find((x) => !x.ok);
  if (firstBad) return { ...result, failed: `${firstBad.label}: ${firstBad.detail}` };
  // A capture from each sensor, and the first usable one's template for the test attestation.
  const devices: CaptureDevice[] = [];
  if (camera) devices.push(new CameraCaptureDevice(camera));
  if (fingerprint) devices.push(new FingerprintCaptureDevice({ path: fingerprint.port, baudRate: fingerprint.baudRate, reopenIntervalMs: 500 }));
  let probe: { modality: Modality; template: Uint8Array; format: string; quality: number; model: { name: string; sha256: string } } | undefined;
  for (const d of devices) {
    try {
      await d.open();
      const img = await d.capture({ timeoutMs: o.timeoutMs ?? 15_000, signal: AbortSignal.timeout((o.timeoutMs ?? 15_000) + 5000) });
      const engine = await createEngine(d.modality);
      try {
        const x = await engine.extract(img.bytes);
        img.bytes.fill(0);
        const model = x.info['model'] as { name: string; sha256: string };
        result.captures.push({ modality: d.modality, ok: true, detail: `${d.description}: quality ${x.quality.score}` });
        probe ??= { modality: d.modality, template: x.template, format: TEMPLATE_FORMATS[d.modality], quality: x.quality.score, model };
      } finally {
        await engine.close();
      }
    } catch (e) {
      result.captures.push({ modality: d.modality, ok: false, detail: `${d.description}: ${(e as Error).message}` });
    } finally {
      await d.close().catch(() => {});
    }
  }
  const badCapture = result.captures.find((x) => !x.ok);
  if (badCapture) return { ...result, failed: `${badCapture.modality} sensor: ${badCapture.detail}` };
  if (!probe) return { ...result, failed: 'no sensor is configured (camera, fingerprint-port)' };
  const kiosk = await openProvisionedKiosk(c);
  try {
    const t0 = performance.now();
    const a = await kiosk.attest({ subject: 'selftest', modality: probe.modality, template: probe.template, templateFormat: probe.format, quality: probe.quality, model: probe.model, test: true });
    probe.template.fill(0);
    const v = await kiosk.awaitVerdict(a.attId, o.timeoutMs ?? 15_000);
    const ms = performance.now() - t0;
    if (!v) result.attestation = { ok: false, detail: `no verdict within ${o.timeoutMs ?? 15_000} ms (broker ${c.broker}, verifiers)`, attId: a.attId };
    else if (!v.claims.reasons.some((r) => r.code === 'self_test')) result.attestation = { ok: false, detail: `the verifier answered ${v.decision} (${v.claims.reasons.map((r) => r.code).join(', ') || 'no reason'}), not self_test`, attId: a.attId, ms };
    else result.attestation = { ok: true, detail: `verified end to end: signed verdict with a checked receipt (log entry ${v.claims.receipt.leafIndex})`, attId: a.attId, ms };
  } finally {
    await kiosk.close();
  }
  result.ok = result.attestation.ok;
  if (!result.ok) result.failed = `test attestation: ${result.attestation.detail}`;
  return result;
}

/** The other of the two handles a kiosk's key alternates between. */
export function nextKeyHandle(current: number): number {
  return current === DEFAULT_KEY_HANDLE ? DEFAULT_KEY_HANDLE + 1 : DEFAULT_KEY_HANDLE;
}

export async function rotateKey(c: ProvisionedConfig, o: { fleet: string; retryForMs?: number }): Promise<{ oldKid: string; newKid: string; handle: number }> {
  if (c.keyStore.kind !== 'tpm') throw new EnrollmentError('NotATpmDevice', 'only a TPM key is rotated; a development kiosk is provisioned again instead');
  const fleetKeys = await loadVerifierKeys(c.verifierKeys);
  const state = await openKioskState(c.dir, { keyStore: c.keyStore });
  const waiting = state.outbox.size.entries;
  await state.close();
  if (waiting > 0) throw new EnrollmentError('OutboxNotEmpty', `the outbox holds ${waiting} attestations signed with the current key: let the kiosk deliver them (or decommission with --export) before rotating`);
  const client = registry(o.fleet, c, o.retryForMs);
  const oldHandle = c.keyStore.handle ?? DEFAULT_KEY_HANDLE;
  const tpm = TpmClient.open(c.keyStore.tpm);
  try {
    const oldKey = await TpmKeyStore.open({ tpm, handle: oldHandle, create: false });
    const request = { v: ENROLL_VERSION, kind: 'rotate_request' as const, ueid: c.ueid, at: Date.now() };
    const challengeJws = await client.post('/v1/rotate', await signEnrollment(request, oldKey));
    const { message: ch } = await openEnrollment(challengeJws, RotateChallenge, { publicJwk: fleetKeys.verdictKey as Record<string, unknown> }, "registry's rotation challenge");
    const newHandle = nextKeyHandle(oldHandle);
    // A key left at the other handle by an interrupted rotation is not the one the registry knows: replaced.
    await TpmKeyStore.open({ tpm, handle: newHandle, create: false }).then((k) => k.destroy(), () => {});
    const newKey = await TpmKeyStore.open({ tpm, handle: newHandle });
    let confirmed = false;
    try {
      const ev = await newKey.certify(Buffer.from(ch.nonce, 'base64url'));
      const identity = await tpm.createPrimary(RH.ENDORSEMENT, eccRestrictedSigningTemplate());
      await tpm.flushQuietly(identity.handle);
      const proof: RotateProof = {
        v: ENROLL_VERSION,
        kind: 'rotate_proof',
        rotationId: ch.rotationId,
        ueid: c.ueid,
        newPublicJwk: p256PublicJwk(newKey.publicJwk as unknown as Record<string, unknown>) as RotateProof['newPublicJwk'],
        identityKeyPublic: Buffer.from(identity.public.raw).toString('base64url'),
        attestationKeyPublic: Buffer.from(ev.keyPublicArea).toString('base64url'),
        certify: { attest: Buffer.from(ev.attest).toString('base64url'), signature: Buffer.from(ev.signature).toString('base64url') },
        newKeySignature: await signEnrollment(request, newKey),
      };
      const answerJws = await client.post('/v1/rotate/proof', await signEnrollment(proof, oldKey));
      const { message: answer } = await openEnrollment(answerJws, RotateAnswer, { publicJwk: fleetKeys.verdictKey as Record<string, unknown> }, "registry's rotation answer");
      if (answer.kid !== newKey.kid) throw new EnrollmentError('BadAnswer', `the registry confirmed key ${answer.kid}, not the new ${newKey.kid}`);
      confirmed = true;
      const values = new Map(c.values);
      values.set('tpm-handle', `0x${newHandle.toString(16)}`);
      writeConfigAtomically(c.path, values, `biokiosk kiosk ${c.ueid} at ${c.site}; key rotated ${new Date().toISOString()}\nwritten by \`biokiosk rotate-key\`; keys are the long flags of \`biokiosk run\``);
      await oldKey.destroy();
      return { oldKid: oldKey.kid, newKid: newKey.kid, handle: newHandle };
    } finally {
      if (!confirmed) await newKey.destroy().catch(() => {});
    }
  } finally {
    await tpm.close();
  }
}

export async function decommission(c: ProvisionedConfig, o: { fleet: string; exportTo?: string; drainTimeoutMs?: number; reason?: string; retryForMs?: number }): Promise<{ exported: number; delivered: number; revokedAt: number }> {
  const fleetKeys = await loadVerifierKeys(c.verifierKeys);
  let exported = 0;
  let delivered = 0;
  // 1. Nothing the kiosk promised is lost: delivered, or exported.
  const kiosk = await openProvisionedKiosk(c);
  let open = true;
  const closeKiosk = async () => {
    if (open) await kiosk.close();
    open = false;
  };
  try {
    const start = kiosk.state.outbox.size.entries;
    if (start > 0) {
      if (o.exportTo) {
        const entries = kiosk.state.outbox.all().map((e) => ({ attId: e.attId, seq: e.seq, payload: Buffer.from(e.payload).toString('base64') }));
        await writeFile(o.exportTo, `${JSON.stringify({ kind: 'biokiosk-outbox-export/1', ueid: c.ueid, exportedAt: Date.now(), entries }, null, 2)}\n`, { mode: 0o600 });
        exported = entries.length;
      } else {
        const deadline = Date.now() + (o.drainTimeoutMs ?? 60_000);
        kiosk.state.outbox.retryAllNow();
        while (kiosk.state.outbox.size.entries > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
        const left = kiosk.state.outbox.size.entries;
        if (left > 0) throw new EnrollmentError('OutboxNotEmpty', `${left} attestations could not be delivered within ${Math.round((o.drainTimeoutMs ?? 60_000) / 1000)} s: decommission with --export FILE to keep them`);
        delivered = start;
      }
    }
    // 2. The registry revokes it and deletes its broker login.
    const client = registry(o.fleet, c, o.retryForMs);
    const req = { v: ENROLL_VERSION, kind: 'decommission_request' as const, ueid: c.ueid, at: Date.now(), reason: o.reason ?? 'decommissioned by a technician' };
    const answerJws = await client.post('/v1/decommission', await signEnrollment(req, kiosk.state.keystore));
    const { message: answer } = await openEnrollment(answerJws, DecommissionAnswer, { publicJwk: fleetKeys.verdictKey as Record<string, unknown> }, "registry's decommission answer");
    await closeKiosk();
    // 3. The TPM key and counter, then the local state.
    if (c.keyStore.kind === 'tpm') {
      const tpm = TpmClient.open(c.keyStore.tpm);
      try {
        const k = await TpmKeyStore.open({ tpm, handle: c.keyStore.handle ?? DEFAULT_KEY_HANDLE, create: false }).catch(() => null);
        await k?.destroy();
        await tpm.nvUndefineSpace(c.keyStore.seqIndex ?? DEFAULT_SEQ_INDEX).catch(() => {});
      } finally {
        await tpm.close();
      }
    }
    await rm(c.dir, { recursive: true, force: true });
    await rm(c.path, { force: true });
    return { exported, delivered, revokedAt: answer.revokedAt };
  } finally {
    await closeKiosk().catch(() => {});
  }
}

