/**
 * The checks before a kiosk is enrolled (and what `biokiosk selftest` repeats): the TPM answers and has room for
 * a key, each configured sensor answers its self-test, the model files are the ones the manifest names, the clock
 * is plausible, the disk has room, the registry is reachable. Each check says what it found and, when it fails,
 * what to do; none stops the others, so the technician sees every problem at once.
 */
import { createHash } from 'node:crypto';
import { readFile, statfs } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { TpmClient } from '../drivers/tpm/index.ts';
import { probePort } from '../drivers/fingerprint/discovery.ts';
import { CameraCaptureDevice } from '../device/capture/camera.ts';
import { MODELS_DIR, readManifest } from '../models/face/models.ts';

export interface CheckResult {
  id: string;
  label: string;
  ok: boolean;
  detail: string;
  /** What to do, when it failed. */
  fix?: string;
  ms: number;
}

export interface PreflightOptions {
  /** The TPM setting (device:/dev/tpmrm0, swtpm:...); absent: a development key store, no TPM check. */
  tpm?: string;
  camera?: string;
  fingerprint?: { port: string; baudRate: number };
  modelsDir?: string;
  /** The state folder (disk space is checked where it lives). */
  dir: string;
  /** The registry's URL (reachability), when enrolling online. */
  registry?: string;
  /** The fleet broker's URL (reachability), once the kiosk has one. */
  broker?: string;
  minFreeBytes?: number;
  now?: () => number;
}

/** No kiosk clock before this is right (the release is newer); none more than ten years after it either. */
export const EARLIEST_PLAUSIBLE_TIME = Date.parse('2026-06-01T00:00:00Z');

async function timed(id: string, label: string, fn: () => Promise<{ ok: boolean; detail: string; fix?: string }>): Promise<CheckResult> {
  const t0 = performance.now();
  try {
    const r = await fn();
    return { id, label, ...r, ms: performance.now() - t0 };
  } catch (e) {
    return { id, label, ok: false, detail: (e as Error).message, ms: performance.now() - t0 };
  }
}

export async function preflight(o: PreflightOptions): Promise<CheckResult[]> {
  const checks: Array<Promise<CheckResult>> = [];
  if (o.tpm) checks.push(timed('tpm', 'TPM', () => checkTpm(o.tpm!)));
  if (o.camera) checks.push(timed('camera', 'camera', () => checkCamera(o.camera!)));
  if (o.fingerprint) checks.push(timed('fingerprint', 'fingerprint module', () => checkFingerprint(o.fingerprint!)));
  checks.push(timed('models', 'model files', () => checkModels(o.modelsDir ?? MODELS_DIR)));
  checks.push(timed('clock', 'clock', async () => checkClock((o.now ?? Date.now)())));
  checks.push(timed('disk', 'disk space', () => checkDisk(o.dir, o.minFreeBytes ?? 256 * 2 ** 20)));
  if (o.registry) checks.push(timed('registry', 'registry reachable', () => checkReachable(o.registry!, 'check the network and --fleet (or enrol with --offline)')));
  if (o.broker) checks.push(timed('broker', 'broker reachable', () => checkReachable(o.broker!, "check the network, and that the fleet broker runs (the configuration's broker)")));
  // Sensors and the TPM are separate devices: checked at once, reported in a fixed order.
  return Promise.all(checks);
}

async function checkTpm(setting: string): Promise<{ ok: boolean; detail: string; fix?: string }> {
  let c: TpmClient;
  try {
    c = TpmClient.open(setting, { timeoutMs: 10_000 });
  } catch (e) {
    return { ok: false, detail: (e as Error).message, fix: 'check --tpm (device:/dev/tpmrm0, swtpm:host=H,port=P)' };
  }
  try {
    const info = await c.info();
    const free = await c.freeHandles();
    const ek = await c.readEkCertificate('rsa');
    const problems: string[] = [];
    if (free.persistentAvail < 1) problems.push(`no room for another persistent key (${free.persistent} persistent objects)`);
    if (free.transientAvail < 3) problems.push(`only ${free.transientAvail} transient object slots free (3 needed: EK, identity key, attestation key)`);
    if (!ek) problems.push('no RSA 2048 EK certificate in NV 0x01c00002');
    const detail = `${info.manufacturer} ${info.vendor} firmware ${info.firmwareVersion} (TPM ${info.family} rev ${info.revision}), ${free.persistent} persistent objects, ${free.persistentAvail} free`;
    if (problems.length > 0) {
      return {
        ok: false,
        detail: `${detail}: ${problems.join('; ')}`,
        fix: free.persistentAvail < 1 || free.transientAvail < 3 ? 'the TPM is full of objects: remove unused persistent ones (tpm2_evictcontrol -c HANDLE) or flush transient ones (tpm2_flushcontext -t)' : "ask the TPM vendor for the EK certificate, or register as a development device",
      };
    }
    return { ok: true, detail };
  } catch (e) {
    return { ok: false, detail: `the TPM at ${setting} does not answer: ${(e as Error).message}`, fix: 'check that the TPM is enabled in the firmware and that this user may open it (group tss)' };
  } finally {
    await c.close().catch(() => {});
  }
}

async function checkCamera(spec: string): Promise<{ ok: boolean; detail: string; fix?: string }> {
  const cam = new CameraCaptureDevice(spec);
  try {
    const img = await cam.capture({ timeoutMs: 5000, signal: AbortSignal.timeout(10_000) });
    const n = img.bytes.length;
    img.bytes.fill(0);
    return { ok: true, detail: `${cam.description}: a frame of ${n} bytes` };
  } catch (e) {
    return { ok: false, detail: `${spec}: ${(e as Error).message}`, fix: 'check the camera cable and --camera (v4l2:/dev/video0, http://..., dir:...)' };
  } finally {
    await cam.close().catch(() => {});
  }
}

async function checkFingerprint(f: { port: string; baudRate: number }): Promise<{ ok: boolean; detail: string; fix?: string }> {
  try {
    const p = await probePort(f.port, f.baudRate, { timeoutMs: 1000 });
    return { ok: true, detail: `${f.port} at ${f.baudRate} baud: module answers (library ${p.librarySize}, security level ${p.securityLevel})` };
  } catch (e) {
    return { ok: false, detail: `${f.port}: ${(e as Error).message}`, fix: 'check that the module is plugged in and powered, and --fingerprint-port / --fingerprint-baud' };
  }
}

async function checkModels(dir: string): Promise<{ ok: boolean; detail: string; fix?: string }> {
  const manifest = await readManifest(dir);
  const bad: string[] = [];
  let n = 0;
  for (const [name, e] of Object.entries(manifest.models)) {
    n++;
    try {
      const hash = createHash('sha256').update(await readFile(join(dir, e.file))).digest('hex');
      if (hash !== e.sha256) bad.push(`${e.file} (${name}) has sha256 ${hash.slice(0, 12)}..., the manifest ${e.sha256.slice(0, 12)}...`);
    } catch (err) {
      bad.push(`${e.file} (${name}): ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message}`);
    }
  }
  if (bad.length > 0) return { ok: false, detail: bad.join('; '), fix: 'reinstall the release (its model files are damaged or replaced)' };
  return { ok: true, detail: `${n} models match models/manifest.json` };
}

function checkClock(now: number): { ok: boolean; detail: string; fix?: string } {
  const iso = new Date(now).toISOString();
  if (now < EARLIEST_PLAUSIBLE_TIME) return { ok: false, detail: `the clock says ${iso}, before this release existed`, fix: 'set the clock (timedatectl set-ntp true, or set it by hand)' };
  if (now > EARLIEST_PLAUSIBLE_TIME + 10 * 365 * 86_400_000) return { ok: false, detail: `the clock says ${iso}, years ahead`, fix: 'set the clock (timedatectl set-ntp true, or set it by hand)' };
  return { ok: true, detail: iso };
}

async function checkDisk(dir: string, min: number): Promise<{ ok: boolean; detail: string; fix?: string }> {
  let probe = dir;
  for (;;) {
    try {
      const s = await statfs(probe);
      const free = s.bavail * s.bsize;
      const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
      return free >= min ? { ok: true, detail: `${mb(free)} free` } : { ok: false, detail: `${mb(free)} free where the state lives, ${mb(min)} needed`, fix: 'free disk space (the outbox keeps attestations made offline)' };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || probe === '/') throw e;
      probe = join(probe, '..');
    }
  }
}

/** A TCP connection to the URL's host and port (TLS and logins are checked by the steps that use them). */
async function checkReachable(url: string, fix: string): Promise<{ ok: boolean; detail: string; fix?: string }> {
  const u = new URL(url);
  const port = Number(u.port || ({ 'https:': 443, 'http:': 80, 'mqtts:': 8883, 'mqtt:': 1883 } as Record<string, number>)[u.protocol] || 443);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const ok = await new Promise<string | null>((resolve) => {
    const s = connect({ host, port, timeout: 5000 });
    s.once('connect', () => {
      s.destroy();
      resolve(null);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve('no answer within 5 s');
    });
    s.once('error', (e) => resolve(e.message));
  });
  return ok === null ? { ok: true, detail: `${host}:${port} answers` } : { ok: false, detail: `${host}:${port}: ${ok}`, fix };
}
