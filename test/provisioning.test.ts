/**
 * Provisioning as a field technician does it, with real parts: `biokiosk provision`, `selftest`, `rotate-key` and
 * `decommission` as commands against a kiosk TPM (swtpm with an EK certificate from swtpm's local CA), the fleet
 * broker (mosquitto, TLS, dynamic-security rules the registry changes live), the registry and a verifier node
 * (`biokiosk verifier registry serve`, `verifier run`) on one SQLite store, the virtual camera and the virtual
 * serial fingerprint module. Every failure is a clear message, a non-zero exit and no configuration written.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import mqtt from 'mqtt';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RH, TpmClient, eccRestrictedSigningTemplate } from '../drivers/tpm/index.ts';
import { VirtualFingerprintSensor } from '../drivers/virtual/fingerprint-sensor.ts';
import { TpmKeyStore } from '../device/keystore/tpm.ts';
import { synthesizeFingerprintDataset } from '../models/fingerprint/synth/index.ts';
import { MODELS_DIR } from '../models/face/models.ts';
import { ENROLL_VERSION, EnrollChallenge, signEnrollment, type EnrollRequest } from '../protocol/enrollment.ts';
import { p256PublicJwk } from '../protocol/signer.ts';
import { topicFor } from '../protocol/topics.ts';
import { openProvisionedKiosk, readProvisionedConfig } from '../provisioning/lifecycle.ts';
import { RegistryClient } from '../provisioning/registry-client.ts';
import { answerChallenge, tpmEvidence } from '../provisioning/tpm-identity.ts';
import { openVerifier } from '../verifier/setup.ts';
import { BIN, spawnBiokiosk, type CliProcess } from './helpers/cli.ts';
import { logRecords, tempDir, waitFor } from './helpers/e2e.ts';
import { samplePath } from './helpers/fixtures.ts';
import { FleetBroker } from './helpers/fleet-broker.ts';
import { Swtpm } from './helpers/swtpm.ts';

const SITE = 'pharmacy-42';
const ADMIN_PASSWORD = randomBytes(18).toString('base64url');

let broker: FleetBroker;
let tpm: Swtpm;
let otherTpm: Swtpm;
let work: string;
let vdir: string;
let tpmCas: string;
let fleetKeysFile: string;
let adminPasswordFile: string;
let registry: CliProcess;
let registryUrl: string;
let verifier: CliProcess | null = null;
let sensor: VirtualFingerprintSensor;
let photo: string;
const processes: CliProcess[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `biokiosk ARGS` as a technician runs it; `faketime` shifts the command's clock (libfaketime). */
function cli(args: string[], o: { faketime?: string; timeoutMs?: number } = {}): Promise<Run> {
  const [cmd, argv] = o.faketime ? ['faketime', ['-f', o.faketime, process.execPath, BIN, ...args]] : [process.execPath, [BIN, ...args]];
  return new Promise((resolve) => {
    execFile(cmd, argv, { timeout: o.timeoutMs ?? 90_000, maxBuffer: 1 << 24, env: { ...process.env, FAKETIME_DONT_FAKE_MONOTONIC: '1' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function issueToken(site = SITE, o: { faketime?: string; ttl?: string } = {}): Promise<string> {
  const r = await cli(['verifier', 'issue-token', '--site', site, '--ttl', o.ttl ?? '1h', '--dir', vdir, '--json'], { faketime: o.faketime });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { token: string }).token;
}

/** A kiosk's own folder: its configuration path and state folder (neither exists yet). */
async function newKiosk(name: string): Promise<{ config: string; dir: string }> {
  const root = join(work, name);
  await mkdir(root);
  return { config: join(root, 'kiosk.conf'), dir: join(root, 'state') };
}

function provisionArgs(k: { config: string; dir: string }, token: string, extra: string[] = [], tpmUrl = tpm.url): string[] {
  return ['provision', '--fleet', registryUrl, '--token', token, '--site', SITE, '--config', k.config, '--dir', k.dir, '--tpm', tpmUrl, '--ca', broker.caPath, '--camera', `virtual:${photo}?fps=10`, '--fingerprint-port', sensor.path, '--fingerprint-baud', '115200', '--retry-for', '20', ...extra];
}

/** Nothing of a failed enrolment stays behind: no configuration, no broker password, no fleet keys. */
function expectNothingWritten(k: { config: string; dir: string }): void {
  expect(existsSync(k.config)).toBe(false);
  expect(existsSync(join(k.dir, 'broker-password'))).toBe(false);
  expect(existsSync(join(k.dir, 'verifier-keys.json'))).toBe(false);
}

async function store() {
  return openVerifier(vdir, { allowedModels: [] });
}

async function startRegistry(extra: string[] = []): Promise<{ p: CliProcess; url: string }> {
  const pki = join(broker.dir, 'pki');
  const p = spawnBiokiosk(['verifier', 'registry', 'serve', '--dir', vdir, '--listen', '127.0.0.1:0', '--tls-cert', join(pki, 'server.pem'), '--tls-key', join(pki, 'server.key'), '--broker', broker.passwordUrl, '--broker-admin', 'registry', '--broker-admin-password-file', adminPasswordFile, '--broker-ca', broker.caPath, ...extra]);
  processes.push(p);
  await waitFor(() => p.out.some((l) => l.startsWith('https://')) || p.child.exitCode !== null, 60_000, `the registry to start: ${p.err()}`);
  const url = p.out.find((l) => l.startsWith('https://'));
  if (!url) throw new Error(`the registry did not start: ${p.err()}`);
  return { p, url };
}

async function startVerifierNode(): Promise<CliProcess> {
  const f = broker.files('verifiers', 'verifier-1');
  const p = spawnBiokiosk(['verifier', 'run', '--dir', vdir, '--broker', broker.url, '--ca', f.ca!, '--cert', f.cert!, '--key', f.key!, '--workers', '0']);
  processes.push(p);
  await waitFor(() => p.err().includes('running on') || p.child.exitCode !== null, 60_000, `the verifier to start: ${p.err()}`);
  if (p.child.exitCode !== null) throw new Error(`the verifier exited: ${p.err()}`);
  return p;
}

/** Can this login connect to the fleet broker? null when it can, else the broker's refusal. */
async function brokerRefusal(username: string, password: string): Promise<string | null> {
  try {
    const c = await mqtt.connectAsync(broker.passwordUrl, { protocolVersion: 5, clientId: `${username}`, username, password, reconnectPeriod: 0, connectTimeout: 5000, ca: readFileSync(broker.caPath), rejectUnauthorized: true });
    await c.endAsync();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

beforeAll(async () => {
  work = await tempDir('bk-provision-');
  [tpm, otherTpm] = await Promise.all([Swtpm.start(), Swtpm.start()]);
  // The registry trusts the CA that swtpm_setup signed the EK certificates with (swtpm's local CA).
  tpmCas = join(work, 'tpm-cas');
  await mkdir(tpmCas);
  for (const f of ['issuercert.pem', 'swtpm-localca-rootca-cert.pem']) copyFileSync(join('/var/lib/swtpm-localca', f), join(tpmCas, f));
  broker = await FleetBroker.start({ devices: [], verifiers: ['verifier-1'], admins: [{ id: 'registry', password: ADMIN_PASSWORD }] });
  adminPasswordFile = join(work, 'admin-password');
  await writeFile(adminPasswordFile, ADMIN_PASSWORD, { mode: 0o600 });
  vdir = join(work, 'verifier');
  const keys = await cli(['verifier', 'keys', '--dir', vdir]);
  expect(keys.code, keys.stderr).toBe(0);
  fleetKeysFile = join(work, 'fleet-keys.json');
  await writeFile(fleetKeysFile, keys.stdout);
  ({ p: registry, url: registryUrl } = await startRegistry(['--tpm-ca', tpmCas]));
  verifier = await startVerifierNode();
  const fingers = await synthesizeFingerprintDataset({ out: join(work, 'fingers'), fingers: 1, impressions: 2, seed: 7, workers: 0 });
  sensor = await VirtualFingerprintSensor.start({ images: fingers.files, baud: 115_200, pacing: false, finger: true });
  photo = join(work, 'face.jpg');
  await sharp(samplePath(2)).rotate().extract({ left: 960, top: 40, width: 900, height: 900 }).jpeg().toFile(photo);
}, 240_000);

afterAll(async () => {
  for (const p of processes) await p.stop().catch(() => {});
  await sensor?.stop().catch(() => {});
  await broker?.stop().catch(() => {});
  await tpm?.stop().catch(() => {});
  await otherTpm?.stop().catch(() => {});
});

describe('a kiosk provisioned with its TPM, then tested, rotated and decommissioned', () => {
  const k = { config: '', dir: '' };
  let ueid = '';
  let kid = '';
  let password = '';

  it('provision: preflight, a TPM-proven identity, broker login, configuration (secrets 0600) and an asset QR code', async () => {
    Object.assign(k, await newKiosk('kiosk-1'));
    const token = await issueToken();
    const r = await cli([...provisionArgs(k, token), '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const out = JSON.parse(r.stdout) as { ueid: string; kid: string; evidence: string; site: string; config: string; qr: { text: string; png: string }; stepsMs: Record<string, number>; preflight: Array<{ id: string; ok: boolean }> };
    ({ ueid, kid } = out);
    expect(out.evidence).toBe('tpm');
    expect(out.site).toBe(SITE);
    expect(ueid).toBe(`k-${kid.slice(0, 16)}`);
    expect(out.preflight.map((c) => c.id).sort()).toEqual(['camera', 'clock', 'disk', 'fingerprint', 'models', 'registry', 'tpm']);
    expect(Object.keys(out.stepsMs)).toEqual(expect.arrayContaining(['preflight', 'key', 'evidence', 'request', 'activate', 'proof', 'answer', 'broker', 'config', 'qr']));
    // The configuration names everything `biokiosk run` needs; the secrets beside it are the owner's only.
    const conf = readFileSync(k.config, 'utf8');
    for (const line of [`ueid = ${ueid}`, `site = ${SITE}`, `broker = ${broker.passwordUrl}`, `username = ${ueid}`, 'tpm-handle = 0x81010002']) expect(conf).toContain(line);
    expect(statSync(k.config).mode & 0o077).toBe(0);
    password = readFileSync(join(k.dir, 'broker-password'), 'utf8');
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(statSync(join(k.dir, 'broker-password')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(k.dir, 'verifier-keys.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(fleetKeysFile, 'utf8')));
    expect(existsSync(join(k.dir, 'enrollment-pending.json'))).toBe(false);
    // The QR code for the asset register: a PNG of device id and key thumbprint.
    expect(out.qr.text).toBe(`biokiosk:${ueid}:${kid}`);
    const png = readFileSync(out.qr.png);
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect((await sharp(png).metadata()).width).toBeGreaterThan(100);
    // The registry: the device under the TPM's EK certificate, its login on the broker, the audit log told.
    const v = await store();
    try {
      const device = await v.store.device(ueid);
      expect(device).toMatchObject({ ueid, kid, site: SITE, status: 'active', keyStore: 'tpm' });
      const identity = await v.store.deviceIdentity(ueid);
      const c = TpmClient.open(tpm.url);
      const ek = await c.readEkCertificate('rsa');
      await c.close();
      expect(identity).toMatchObject({ evidence: 'tpm', site: SITE, ekCertSha256: createHash('sha256').update(ek!.der).digest('base64url') });
      expect(await logRecords(v)).toContainEqual(expect.objectContaining({ type: 'device', event: 'registered', ueid, kid, evidence: 'tpm' }));
    } finally {
      await v.close();
    }
    expect(await brokerRefusal(ueid, password)).toBeNull();
    expect(await brokerRefusal(ueid, 'not-the-password')).toMatch(/not authori[sz]ed|bad user name or password/i);
  }, 120_000);

  it('the token is single-use: a second kiosk with it is refused, naming the device that used it', async () => {
    const k2 = await newKiosk('kiosk-reuse');
    const token = await issueToken();
    const first = await cli(provisionArgs(k2, token, ['--tpm-handle', '0x81010010']), {});
    expect(first.code, first.stderr).toBe(0);
    const k3 = await newKiosk('kiosk-reuse-2');
    const again = await cli(provisionArgs(k3, token, [], otherTpm.url));
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/token was already used \(by k-[A-Za-z0-9_-]{16} at /);
    expectNothingWritten(k3);
  }, 120_000);

  it('selftest: preflight, a capture from each sensor, a test attestation answered self_test without touching the gallery', async () => {
    const r = await cli(['selftest', '--config', k.config, '--json', '--timeout', '30']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const out = JSON.parse(r.stdout) as { ok: boolean; checks: Array<{ id: string; ok: boolean }>; captures: Array<{ modality: string; ok: boolean }>; attestation: { ok: boolean; detail: string } };
    expect(out.ok).toBe(true);
    expect(out.checks.map((c) => c.id)).toEqual(expect.arrayContaining(['tpm', 'camera', 'fingerprint', 'models', 'broker']));
    expect(out.captures.map((c) => [c.modality, c.ok])).toEqual([['face', true], ['fingerprint', true]]);
    expect(out.attestation.detail).toMatch(/verified end to end/);
    const after = await store();
    try {
      for (const m of ['face', 'fingerprint']) expect(await after.store.galleryEntry('selftest', m)).toBeUndefined();
      const decision = (await logRecords(after)).find((x) => x['ueid'] === ueid && Array.isArray(x['reasons']) && (x['reasons'] as string[]).includes('self_test'));
      expect(decision, 'the test attestation is logged as one').toBeDefined();
      expect(decision!['decision']).not.toMatch(/^(match|no_match)$/);
    } finally {
      await after.close();
    }
  }, 120_000);

  it('rotate-key: a new key certified by the same TPM and endorsed by the old one; the old one evicted after the registry confirms', async () => {
    const r = await cli(['rotate-key', '--fleet', registryUrl, '--config', k.config, '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const out = JSON.parse(r.stdout) as { oldKid: string; newKid: string; handle: number };
    expect(out.oldKid).toBe(kid);
    expect(out.newKid).not.toBe(kid);
    expect(out.handle).toBe(0x81010003);
    expect(readFileSync(k.config, 'utf8')).toContain('tpm-handle = 0x81010003');
    const c = TpmClient.open(tpm.url);
    try {
      await expect(TpmKeyStore.open({ tpm: c, handle: 0x81010002, create: false })).rejects.toThrow();
      const now = await TpmKeyStore.open({ tpm: c, handle: 0x81010003, create: false });
      expect(now.kid).toBe(out.newKid);
    } finally {
      await c.close();
    }
    const v = await store();
    try {
      expect((await v.store.device(ueid))?.kid).toBe(out.newKid);
      expect((await v.store.deviceIdentity(ueid))?.rotatedAt).toBeGreaterThan(0);
      expect(await logRecords(v)).toContainEqual(expect.objectContaining({ type: 'device', event: 'key_rotated', ueid, kid: out.newKid, previous_kid: kid }));
    } finally {
      await v.close();
    }
    kid = out.newKid;
    // The verifier takes the new key at once.
    const t = await cli(['selftest', '--config', k.config, '--json', '--timeout', '30']);
    expect(t.code, t.stderr + t.stdout).toBe(0);
  }, 120_000);

  it('decommission: the outbox exported, the device revoked (the verifier says revoked_device), its broker login gone, TPM key and state removed', async () => {
    // An attestation the verifiers never answered (they are stopped): it must not be lost.
    await verifier!.stop();
    const cfg = readProvisionedConfig(k.config);
    const kiosk = await openProvisionedKiosk(cfg);
    const a = await kiosk.attest({ subject: 'selftest', modality: 'fingerprint', template: new Uint8Array(16), templateFormat: 'biokiosk-fingerprint/1', quality: 80, model: { name: 'x', sha256: 'ab'.repeat(32) }, test: true });
    await kiosk.close();
    const exportFile = join(work, 'outbox-export.json');
    const r = await cli(['decommission', '--fleet', registryUrl, '--config', k.config, '--export', exportFile, '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, ueid, exported: 1 });
    const exported = JSON.parse(readFileSync(exportFile, 'utf8')) as { ueid: string; entries: Array<{ attId: string; payload: string }> };
    expect(statSync(exportFile).mode & 0o077).toBe(0);
    expect(exported.entries.map((e) => e.attId)).toEqual([a.attId]);
    // Local state, configuration, TPM key and counter are gone.
    expect(existsSync(k.config)).toBe(false);
    expect(existsSync(k.dir)).toBe(false);
    const c = TpmClient.open(tpm.url);
    try {
      await expect(TpmKeyStore.open({ tpm: c, handle: 0x81010003, create: false })).rejects.toThrow();
    } finally {
      await c.close();
    }
    // The broker refuses the login; the verifier rejects what the device signed.
    expect(await brokerRefusal(ueid, password)).toMatch(/not authori[sz]ed|bad user name or password/i);
    const v = await store();
    try {
      expect((await v.store.device(ueid))?.status).toBe('revoked');
      expect((await v.store.deviceIdentity(ueid))?.decommissionedAt).toBeGreaterThan(0);
      const [verdict] = await v.verifier.handleBatch([{ topic: topicFor('attestations', ueid), payload: Buffer.from(exported.entries[0]!.payload, 'base64') }]);
      expect(verdict?.reasons.map((x) => x.code)).toEqual(['revoked_device']);
      expect(await logRecords(v)).toContainEqual(expect.objectContaining({ type: 'device', event: 'decommissioned', ueid }));
    } finally {
      await v.close();
    }
    // A decommissioned device cannot come back through rotation either.
    verifier = await startVerifierNode();
  }, 120_000);
});

describe('what goes wrong on site: a clear message, a non-zero exit, nothing written', () => {
  it('no TPM answering', async () => {
    const k = await newKiosk('no-tpm');
    const r = await cli(provisionArgs(k, await issueToken(), [], 'swtpm:host=127.0.0.1,port=9,ctrl=10'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/preflight failed: TPM: .*(ECONNREFUSED|does not answer)/);
    expectNothingWritten(k);
  }, 60_000);

  it('a TPM full of objects', async () => {
    const k = await newKiosk('tpm-full');
    // Objects left loaded by another program (no resource manager): the TPM's transient slots run out. swtpm keeps
    // them after this connection closes (and serves one connection at a time, so it must close).
    let c = TpmClient.open(otherTpm.url);
    try {
      for (;;) {
        const free = await c.freeHandles();
        if (free.transientAvail === 0) break;
        await c.createPrimary(RH.OWNER, eccRestrictedSigningTemplate());
      }
    } finally {
      await c.close();
    }
    try {
      const r = await cli(provisionArgs(k, await issueToken(), [], otherTpm.url));
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/TPM: .*transient object slots free.*the TPM is full of objects: .*tpm2_flushcontext/);
      expectNothingWritten(k);
    } finally {
      c = TpmClient.open(otherTpm.url);
      await c.flushAllTransients();
      await c.close();
    }
  }, 60_000);

  it('an EK certificate from a CA the fleet does not trust', async () => {
    const untrusted = join(work, 'other-cas');
    await mkdir(untrusted);
    copyFileSync(broker.caPath, join(untrusted, 'not-a-tpm-maker.pem'));
    const other = await startRegistry(['--tpm-ca', untrusted]);
    try {
      const k = await newKiosk('unknown-ca');
      const r = await cli(provisionArgs(k, await issueToken(), ['--tpm-handle', '0x81010020']).map((x) => (x === registryUrl ? other.url : x)));
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/EK certificate is issued by .*, which is not among the TPM manufacturer CAs in .*add that manufacturer's CA certificate/);
      expectNothingWritten(k);
    } finally {
      await other.p.stop();
    }
  }, 90_000);

  it("ActivateCredential answered by another TPM: the credential cannot be recovered, a forged proof is refused", async () => {
    // The request carries TPM A's EK certificate with keys of TPM B: the registry encrypts to A's EK.
    const a = await TpmKeyStore.open({ tpm: tpm.url, handle: 0x81010030 });
    const b = await TpmKeyStore.open({ tpm: otherTpm.url, handle: 0x81010030 });
    try {
      const evidenceA = await tpmEvidence(a);
      const evidenceB = await tpmEvidence(b);
      const request: EnrollRequest = { v: ENROLL_VERSION, kind: 'enroll_request', token: await issueToken(), site: SITE, at: Date.now(), publicJwk: p256PublicJwk(b.publicJwk as unknown as Record<string, unknown>) as EnrollRequest['publicJwk'], keyStore: 'tpm', tpm: { ...evidenceB, ekCertificate: evidenceA.ekCertificate } };
      const client = new RegistryClient(registryUrl, { ca: readFileSync(broker.caPath) });
      const challengeJws = await client.post('/v1/enroll', await signEnrollment(request, b));
      const challenge = EnrollChallenge.parse(JSON.parse(Buffer.from(challengeJws.split('.')[1]!, 'base64url').toString('utf8')));
      await expect(answerChallenge(b, challenge)).rejects.toThrow(/ActivateCredential|credential/i);
      // A proof made up without the credential is refused by the registry.
      const forged = { v: ENROLL_VERSION, kind: 'enroll_proof' as const, enrollmentId: challenge.enrollmentId, activation: randomBytes(32).toString('base64url'), certify: { attest: 'AA', signature: 'AA' } };
      await expect(client.post('/v1/enroll/proof', await signEnrollment(forged, b))).rejects.toThrow(/credential was not recovered by the TPM whose EK certificate was sent/);
    } finally {
      await a.destroy();
      await b.destroy();
      await a.close();
      await b.close();
    }
  }, 90_000);

  it('a token expired, for another site, or unknown: each refused with its own message', async () => {
    const expired = await issueToken(SITE, { faketime: '-2h', ttl: '1h' });
    const k = await newKiosk('tokens');
    const e = await cli(provisionArgs(k, expired, ['--tpm-handle', '0x81010040'], otherTpm.url));
    expect(e.code).not.toBe(0);
    expect(e.stderr).toMatch(/enrolment token expired at /);
    const elsewhere = await issueToken('hospital-7');
    const w = await cli(provisionArgs(k, elsewhere, ['--tpm-handle', '0x81010040'], otherTpm.url));
    expect(w.code).not.toBe(0);
    expect(w.stderr).toMatch(/token is for site "hospital-7", not "pharmacy-42"/);
    const u = await cli(provisionArgs(k, 'x'.repeat(32), ['--tpm-handle', '0x81010040'], otherTpm.url));
    expect(u.code).not.toBe(0);
    expect(u.stderr).toMatch(/not one this fleet issued/);
    expectNothingWritten(k);
  }, 120_000);

  it("the kiosk's clock two days off", async () => {
    const k = await newKiosk('clock');
    const r = await cli(provisionArgs(k, await issueToken(), ['--tpm-handle', '0x81010050'], otherTpm.url), { faketime: '+2d' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/clock is 2\.0 days ahead of the registry's .*set the clock/);
    expectNothingWritten(k);
  }, 90_000);

  it('a model file corrupted', async () => {
    // A copy of the installed models (manifest and ONNX files) with one byte of one graph flipped.
    const models = join(work, 'models-copy');
    const manifest = JSON.parse(await readFile(join(MODELS_DIR, 'manifest.json'), 'utf8')) as { models: Record<string, { file: string }> };
    for (const { file } of Object.values(manifest.models)) {
      await mkdir(dirname(join(models, file)), { recursive: true });
      copyFileSync(join(MODELS_DIR, file), join(models, file));
    }
    copyFileSync(join(MODELS_DIR, 'manifest.json'), join(models, 'manifest.json'));
    const onnx = Object.values(manifest.models)[0]!.file;
    const bytes = await readFile(join(models, onnx));
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    await writeFile(join(models, onnx), bytes);
    const k = await newKiosk('models');
    const r = await cli(provisionArgs(k, await issueToken(), ['--models', models], otherTpm.url));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`model files: ${onnx}`);
    expect(r.stderr).toMatch(/reinstall the release/);
    expectNothingWritten(k);
  }, 60_000);

  it('the fingerprint module unplugged', async () => {
    const k = await newKiosk('unplugged');
    const r = await cli(provisionArgs(k, await issueToken(), [], otherTpm.url).map((x) => (x === sensor.path ? join(work, 'ttyUSB9') : x)));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/fingerprint module: .*ttyUSB9.*check that the module is plugged in/);
    expectNothingWritten(k);
    // selftest of a provisioned kiosk names the part too (the sensor is gone since it was provisioned).
  }, 60_000);

  it('the broker down in the middle of the enrolment: the registry says retry, the kiosk retries and finishes when it is back', async () => {
    const k = await newKiosk('broker-down');
    const token = await issueToken();
    await broker.stop();
    const running = cli(provisionArgs(k, token, ['--tpm-handle', '0x81010060'], otherTpm.url));
    // Back after the kiosk has been told to retry at least once.
    await new Promise((r) => setTimeout(r, 6000));
    await broker.resume();
    const r = await running;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/retrying \(attempt \d+: .*broker/i);
    expect(readFileSync(k.config, 'utf8')).toContain('ueid = k-');
    const cfg = readProvisionedConfig(k.config);
    expect(await brokerRefusal(cfg.ueid, readFileSync(cfg.passwordFile!, 'utf8'))).toBeNull();
  }, 120_000);

  it('a software key store, refused by a fleet that does not allow development devices', async () => {
    const k = await newKiosk('dev');
    const r = await cli(['provision', '--fleet', registryUrl, '--token', await issueToken(), '--site', SITE, '--config', k.config, '--dir', k.dir, '--keystore', 'software', '--ca', broker.caPath]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/software key store .* does not accept development devices/);
    expectNothingWritten(k);
  }, 60_000);
});

describe('offline: a site without network during installation', () => {
  it('request, challenge, proof and answer travel as signed files; the kiosk ends up as online', async () => {
    const k = await newKiosk('offline');
    const files = (n: string) => join(work, `offline-${n}.jws`);
    const common = ['--site', SITE, '--config', k.config, '--dir', k.dir, '--tpm', otherTpm.url, '--tpm-handle', '0x81010070', '--ca', broker.caPath, '--fingerprint-port', sensor.path, '--fingerprint-baud', '115200', '--offline'];
    const registryArgs = ['--dir', vdir, '--tpm-ca', tpmCas, '--broker', broker.passwordUrl, '--broker-admin', 'registry', '--broker-admin-password-file', adminPasswordFile, '--broker-ca', broker.caPath];
    const req = await cli(['provision', ...common, '--token', await issueToken(), '--out', files('request')]);
    expect(req.code, req.stderr).toBe(0);
    const ch = await cli(['verifier', 'registry', 'answer', ...registryArgs, '--in', files('request'), '--out', files('challenge')]);
    expect(ch.code, ch.stderr).toBe(0);
    const proof = await cli(['provision', ...common, '--challenge', files('challenge'), '--out', files('proof')]);
    expect(proof.code, proof.stderr).toBe(0);
    expectNothingWritten(k);
    const ans = await cli(['verifier', 'registry', 'answer', ...registryArgs, '--in', files('proof'), '--out', files('answer')]);
    expect(ans.code, ans.stderr).toBe(0);
    // An answer for another kiosk, or tampered with, is refused before anything is written.
    const bad = (await readFile(files('answer'), 'utf8')).trim().replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
    await writeFile(files('tampered'), bad);
    const t = await cli(['provision', ...common, '--answer', files('tampered'), '--fleet-keys', fleetKeysFile]);
    expect(t.code).not.toBe(0);
    expect(t.stderr).toMatch(/signature/i);
    expectNothingWritten(k);
    const done = await cli(['provision', ...common, '--answer', files('answer'), '--fleet-keys', fleetKeysFile, '--json']);
    expect(done.code, done.stderr).toBe(0);
    const out = JSON.parse(done.stdout) as { ueid: string; evidence: string };
    expect(out.evidence).toBe('tpm');
    const cfg = readProvisionedConfig(k.config);
    expect(cfg.ueid).toBe(out.ueid);
    expect(await brokerRefusal(cfg.ueid, readFileSync(cfg.passwordFile!, 'utf8'))).toBeNull();
  }, 180_000);
});
