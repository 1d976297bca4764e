/**
 * `biokiosk provision`: a kiosk enrolled with the fleet in one command, each step reported as it goes:
 * preflight -> key (created in the TPM, or reused) -> TPM evidence -> enrolment request -> challenge answered
 * (ActivateCredential, Certify) -> answer checked -> broker login tried -> configuration written -> summary and
 * a QR code of the device id and key thumbprint for the asset register.
 *
 * Nothing is written until the registry has answered and the answer checks out; then the broker password (0600),
 * the fleet's public keys and the CA go into the state folder and the configuration file is replaced atomically,
 * so a failure at any step leaves the previous configuration (or none) as it was.
 *
 * Offline (a site without network during installation): the same messages as files, in three runs: `--out`
 * writes the signed request; `--challenge FILE --out` answers the registry's challenge (keeping the recovered
 * credential in the state folder, 0600, to open the answer with); `--answer FILE` finishes.
 */
import { copyFile, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import mqtt from 'mqtt';
import QRCode from 'qrcode';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { DEFAULT_KEY_HANDLE, TpmKeyStore } from '../device/keystore/tpm.ts';
import { ensurePrivateDir } from '../protocol/private-files.ts';
import {
  EnrollAnswer,
  EnrollChallenge,
  EnrollmentError,
  ENROLL_VERSION,
  openEnrollment,
  openPassword,
  signEnrollment,
  type EnrollProof,
  type EnrollRequest,
  type FleetKeys,
} from '../protocol/enrollment.ts';
import { jwkThumbprint, p256PublicJwk, type Signer } from '../protocol/signer.ts';
import { readConfigValues, writeConfigAtomically, writeFileAtomically } from './kiosk-config.ts';
import { preflight, type CheckResult } from './preflight.ts';
import { RegistryClient } from './registry-client.ts';
import { answerChallenge, tpmEvidence } from './tpm-identity.ts';

export interface ProvisionOptions {
  /** The registry's URL (online), e.g. https://registry.example:7443. */
  fleet?: string;
  token?: string;
  site: string;
  /** The kiosk configuration file to read (sensors) and to write. */
  config: string;
  /** The kiosk's state folder. */
  dir: string;
  /** The TPM setting; absent with `software`. */
  tpm?: string;
  tpmHandle?: number;
  /** The development key file instead of a TPM (only fleets that allow development devices accept it). */
  software?: boolean;
  /** The fleet CA: checks the registry's and the broker's certificates; copied into the state folder. */
  ca?: string;
  camera?: string;
  fingerprint?: { port: string; baudRate: number };
  modelsDir?: string;
  /** Where to write the QR code PNG (default: asset-qr.png in the state folder). */
  qrPng?: string;
  /** How long to keep retrying what can be retried (the registry, the broker). */
  retryForMs?: number;
  onStep?: (step: StepEvent) => void;
  /** Offline: write the request (no --challenge/--answer) or the proof (with challenge) here. */
  offlineOut?: string;
  offlineChallenge?: string;
  offlineAnswer?: string;
  /** Offline: the fleet's keys (`verifier keys` output), to check the registry's signed files. */
  fleetKeys?: string;
  /** Finish an enrolment the registry already answered (the broker was unreachable the first time). */
  resume?: boolean;
}

export interface StepEvent {
  step: string;
  state: 'start' | 'done' | 'failed' | 'retry';
  detail?: string;
  ms?: number;
}

export interface ProvisionResult {
  ueid: string;
  site: string;
  kid: string;
  evidence: 'tpm' | 'development';
  broker: string;
  config: string;
  qrPng: string;
  qrText: string;
  /** The QR code drawn for a terminal. */
  qrTerminal: string;
  preflight: CheckResult[];
  stepsMs: Record<string, number>;
}

/** The preflight found problems: the checks are in `details.checks`. */
export class PreflightFailed extends EnrollmentError {
  constructor(readonly checks: CheckResult[]) {
    super('PreflightFailed', `preflight failed: ${checks.filter((c) => !c.ok).map((c) => `${c.label}: ${c.detail}${c.fix ? ` (${c.fix})` : ''}`).join('; ')}`);
  }
}

const PENDING_FILE = 'enrollment-pending.json';

export async function provision(o: ProvisionOptions): Promise<ProvisionResult | { wrote: string; next: string }> {
  const stepsMs: Record<string, number> = {};
  const step = async <T>(name: string, fn: () => Promise<T>, detail?: (t: T) => string): Promise<T> => {
    o.onStep?.({ step: name, state: 'start' });
    const t0 = performance.now();
    try {
      const r = await fn();
      stepsMs[name] = performance.now() - t0;
      o.onStep?.({ step: name, state: 'done', detail: detail?.(r), ms: stepsMs[name] });
      return r;
    } catch (e) {
      o.onStep?.({ step: name, state: 'failed', detail: (e as Error).message, ms: performance.now() - t0 });
      throw e;
    }
  };
  const dir = resolve(o.dir);
  ensurePrivateDir(dir);
  const configured = readConfigValues(o.config);
  const camera = o.camera ?? configured.get('camera');
  const fpPort = o.fingerprint?.port ?? configured.get('fingerprint-port');
  const fingerprint = fpPort ? { port: fpPort, baudRate: o.fingerprint?.baudRate ?? Number(configured.get('fingerprint-baud') ?? 57_600) } : undefined;
  if (!o.software && !o.tpm) throw new EnrollmentError('NoTpm', 'name the TPM (--tpm device:/dev/tpmrm0, swtpm:...) or, for a development kiosk, --keystore software');
  const ca = o.ca ? await readFile(o.ca) : undefined;
  const client = o.fleet ? new RegistryClient(o.fleet, { ca, retryForMs: o.retryForMs, onRetry: (why, n) => o.onStep?.({ step: 'registry', state: 'retry', detail: `attempt ${n + 1}: ${why}` }) }) : undefined;

  const offlineFinish = o.offlineAnswer !== undefined || o.resume === true;
  const checks = offlineFinish
    ? []
    : await step('preflight', async () => {
        const r = await preflight({ tpm: o.software ? undefined : o.tpm, camera, fingerprint, modelsDir: o.modelsDir, dir, registry: o.fleet });
        if (r.some((c) => !c.ok)) throw new PreflightFailed(r);
        return r;
      }, (r) => `${r.length} checks passed`);

  const key = await step('key', () => openKey(o, dir), (k) => `${k.created ? 'created' : 'reused'} ${k.describe} (kid ${k.signer.kid})`);
  try {
    let challengeJws: string;
    let credential: Buffer | null = null;
    let answerJws: string;
    if (offlineFinish) {
      const pending = JSON.parse(await readFile(join(dir, PENDING_FILE), 'utf8').catch(() => '{}')) as { credential?: string; challenge?: string; answer?: string };
      if (!pending.challenge) throw new EnrollmentError('NoPendingEnrollment', `there is no answered challenge in ${dir} (${o.resume ? 'nothing to resume: run provision again' : 'run provision --offline --challenge FILE first'})`);
      if (o.resume && !pending.answer) throw new EnrollmentError('NoPendingEnrollment', `there is no registry answer to resume from in ${dir}: run provision again`);
      answerJws = o.resume ? pending.answer! : (await readFile(o.offlineAnswer!, 'utf8')).trim();
      challengeJws = pending.challenge;
      credential = pending.credential ? Buffer.from(pending.credential, 'base64url') : null;
    } else {
      if (!o.offlineChallenge) {
        const request: EnrollRequest = {
          v: ENROLL_VERSION,
          kind: 'enroll_request',
          token: mustToken(o.token),
          site: o.site,
          at: Date.now(),
          publicJwk: p256PublicJwk(key.signer.publicJwk as unknown as Record<string, unknown>) as EnrollRequest['publicJwk'],
          keyStore: key.tpm ? 'tpm' : 'software',
          ...(key.tpm ? { tpm: await step('evidence', () => tpmEvidence(key.tpm!), (e) => `EK certificate ${Math.round(e.ekCertificate.length * 0.75)} bytes, ${e.manufacturer}`) } : {}),
        };
        const requestJws = await signEnrollment(request, key.signer);
        if (o.offlineOut) {
          writeFileAtomically(o.offlineOut, `${requestJws}\n`);
          return { wrote: o.offlineOut, next: `take ${o.offlineOut} to the registry (biokiosk verifier registry answer --in FILE --out challenge.jws), then run provision --offline --challenge challenge.jws --out proof.jws` };
        }
        challengeJws = await step('request', () => client!.post('/v1/enroll', requestJws), () => 'challenge received');
      } else {
        challengeJws = (await readFile(o.offlineChallenge, 'utf8')).trim();
      }
      const challenge = await readUnchecked(challengeJws, EnrollChallenge, 'challenge');
      let proof: EnrollProof = { v: ENROLL_VERSION, kind: 'enroll_proof', enrollmentId: challenge.enrollmentId };
      if (key.tpm) {
        const a = await step('activate', () => answerChallenge(key.tpm!, challenge), () => 'credential recovered, key certified');
        credential = a.credential;
        proof = { ...proof, activation: a.activation, certify: a.certify };
      }
      const proofJws = await signEnrollment(proof, key.signer);
      if (o.offlineOut) {
        writeFileAtomically(join(dir, PENDING_FILE), JSON.stringify({ challenge: challengeJws, ...(credential ? { credential: credential.toString('base64url') } : {}) }));
        writeFileAtomically(o.offlineOut, `${proofJws}\n`);
        return { wrote: o.offlineOut, next: `take ${o.offlineOut} to the registry (biokiosk verifier registry answer --in FILE --out answer.jws), then run provision --offline --answer answer.jws --fleet-keys FILE` };
      }
      answerJws = await step('proof', () => client!.post('/v1/enroll/proof', proofJws), () => 'registered');
    }

    const answer = await step('answer', async () => {
      const fleetKeys = o.fleetKeys ? (JSON.parse(await readFile(o.fleetKeys, 'utf8')) as FleetKeys) : undefined;
      const unchecked = await readUnchecked(answerJws, EnrollAnswer, 'answer');
      // The registry signs with the fleet's verdict key: the one the answer names, and (offline) the one the technician brought.
      const verdictKey = fleetKeys?.verdictKey ?? unchecked.fleet.verdictKey;
      if (fleetKeys && JSON.stringify(p256PublicJwk(fleetKeys.verdictKey)) !== JSON.stringify(p256PublicJwk(unchecked.fleet.verdictKey))) throw new EnrollmentError('FleetKeyMismatch', "the answer names other fleet keys than the ones given with --fleet-keys");
      const { message } = await openEnrollment(answerJws, EnrollAnswer, { publicJwk: verdictKey }, "registry's answer");
      await openEnrollment(challengeJws, EnrollChallenge, { publicJwk: verdictKey }, "registry's challenge");
      if (message.kid !== key.signer.kid) throw new EnrollmentError('BadAnswer', `the answer registers key ${message.kid}, not this kiosk's ${key.signer.kid}`);
      const password = message.broker.sealed ? openPassword(message.broker.password, credential ?? Buffer.alloc(0), (await readUnchecked(challengeJws, EnrollChallenge, 'challenge')).enrollmentId) : message.broker.password;
      return { message, password };
    }, (a) => `device ${a.message.ueid} (${a.message.evidence})`);

    // Registered from here on: kept (0600) so that `provision --resume` can finish if the broker cannot be reached now.
    writeFileAtomically(join(dir, PENDING_FILE), JSON.stringify({ challenge: challengeJws, answer: answerJws, ...(credential ? { credential: credential.toString('base64url') } : {}) }));
    await step('broker', () => tryBrokerLogin(answer.message.broker.url, answer.message.ueid, answer.password, ca, o.retryForMs ?? 120_000, (why, n) => o.onStep?.({ step: 'broker', state: 'retry', detail: `attempt ${n + 1}: ${why}` })), () => `logged in to ${answer.message.broker.url} as ${answer.message.ueid}`);

    const files = await step('config', async () => {
      const passwordFile = join(dir, 'broker-password');
      const keysFile = join(dir, 'verifier-keys.json');
      writeFileAtomically(passwordFile, answer.password);
      writeFileAtomically(keysFile, `${JSON.stringify(answer.message.fleet, null, 2)}\n`);
      let caFile: string | undefined;
      if (o.ca) {
        caFile = join(dir, 'fleet-ca.pem');
        if (resolve(o.ca) !== caFile) await copyFile(o.ca, caFile);
      }
      const values = new Map(configured);
      values.set('broker', answer.message.broker.url);
      values.set('ueid', answer.message.ueid);
      values.set('site', answer.message.site);
      values.set('dir', dir);
      values.set('verifier-keys', keysFile);
      values.set('username', answer.message.ueid);
      values.set('password-file', passwordFile);
      if (caFile) values.set('ca', caFile);
      if (key.tpm) {
        values.set('tpm', o.tpm!);
        values.set('tpm-handle', `0x${key.tpm.handle.toString(16)}`);
        values.delete('keystore');
      } else {
        values.set('keystore', 'software');
        values.delete('tpm');
        values.delete('tpm-handle');
      }
      if (camera) values.set('camera', camera);
      if (fingerprint) {
        values.set('fingerprint-port', fingerprint.port);
        values.set('fingerprint-baud', String(fingerprint.baudRate));
      }
      writeConfigAtomically(o.config, values, `biokiosk kiosk ${answer.message.ueid} at ${answer.message.site}, provisioned ${new Date().toISOString()}\nwritten by \`biokiosk provision\`; keys are the long flags of \`biokiosk run\``);
      await rm(join(dir, PENDING_FILE), { force: true });
      return { passwordFile, keysFile };
    }, () => o.config);
    void files;

    const qrText = `biokiosk:${answer.message.ueid}:${answer.message.kid}`;
    const qrPng = o.qrPng ?? join(dir, 'asset-qr.png');
    const qrTerminal = await step('qr', async () => {
      await QRCode.toFile(qrPng, qrText, { errorCorrectionLevel: 'M', margin: 2, scale: 6 });
      return QRCode.toString(qrText, { type: 'terminal', small: true, errorCorrectionLevel: 'M' });
    }, () => qrPng);
    return { ueid: answer.message.ueid, site: answer.message.site, kid: answer.message.kid, evidence: answer.message.evidence, broker: answer.message.broker.url, config: o.config, qrPng, qrText, qrTerminal, preflight: checks, stepsMs };
  } finally {
    await key.close();
  }
}

function mustToken(t: string | undefined): string {
  if (!t) throw new EnrollmentError('NoToken', 'an enrolment needs a token (--token): the fleet operator issues one per site with `biokiosk verifier issue-token --site NAME`');
  return t;
}

/** A registry message's payload checked against its schema, before its signature can be (the key comes later). */
async function readUnchecked<T>(jws: string, schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { message: string } } }, what: string): Promise<T> {
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8'));
  } catch {
    throw new EnrollmentError('BadMessage', `the registry's ${what} is not a signed enrolment message`);
  }
  const r = schema.safeParse(payload);
  if (!r.success) throw new EnrollmentError('BadMessage', `the registry's ${what} does not follow the protocol: ${r.error.message.slice(0, 300)}`);
  return r.data;
}

interface OpenedKey {
  signer: Signer;
  tpm: TpmKeyStore | null;
  created: boolean;
  describe: string;
  close(): Promise<void>;
}

async function openKey(o: ProvisionOptions, dir: string): Promise<OpenedKey> {
  if (o.software) {
    const path = join(dir, 'device-key.json');
    const existed = await stat(path).then(() => true, () => false);
    const ks = await SoftwareKeyStore.open(path);
    return { signer: ks, tpm: null, created: !existed, describe: `software key ${path} (development only)`, close: async () => {} };
  }
  let ks: TpmKeyStore;
  try {
    ks = await TpmKeyStore.open({ tpm: o.tpm!, handle: o.tpmHandle ?? DEFAULT_KEY_HANDLE });
  } catch (e) {
    const m = (e as Error).message;
    if (/OBJECT_MEMORY|NV_SPACE|0x902|0x14b|no room/i.test(m)) throw new EnrollmentError('TpmFull', `the TPM has no room for the attestation key (${m}): remove unused persistent objects (tpm2_evictcontrol) and retry`);
    throw new EnrollmentError('TpmUnavailable', `cannot create or open the attestation key in the TPM at ${o.tpm}: ${m}`);
  }
  return { signer: ks, tpm: ks, created: ks.created, describe: `TPM key at 0x${ks.handle.toString(16)}`, close: () => ks.close() };
}

/** Logs in to the fleet broker with the new credentials (retrying while it is unreachable). */
async function tryBrokerLogin(url: string, username: string, password: string, ca: Buffer | undefined, retryForMs: number, onRetry: (why: string, n: number) => void): Promise<void> {
  const deadline = Date.now() + retryForMs;
  for (let attempt = 1; ; attempt++) {
    try {
      const c = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: username, username, password, reconnectPeriod: 0, connectTimeout: 5000, ...(ca ? { ca, rejectUnauthorized: true } : {}) });
      await c.endAsync();
      return;
    } catch (e) {
      const m = (e as Error).message;
      if (/Not authorized|Bad user name or password/i.test(m)) throw new EnrollmentError('BrokerLoginRefused', `the fleet broker refused the new login ${username}: ${m}`);
      if (Date.now() > deadline) throw new EnrollmentError('BrokerUnreachable', `registered as ${username}, but the fleet broker at ${url} cannot be reached: ${m} (the configuration was not written yet: run biokiosk provision --resume with the same options when it is back)`, true);
      onRetry(m, attempt);
      await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** Math.min(attempt, 5))));
    }
  }
}
