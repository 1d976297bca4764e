/**
 * `biokiosk doctor`: what this box lacks to run the kiosk, in plain words, each finding with what to do about it.
 * Permissions are judged for the user the service runs as (by the file's owner, group and mode, as the kernel
 * would), not for whoever runs the doctor: a technician runs it as root, for whom every file is open.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statfsSync, statSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type IClientOptions } from 'mqtt';
import { parseFrameSourceSpec } from '../drivers/camera/spec.ts';
import { describeTarget, parseTpmUrl, TpmClient } from '../drivers/tpm/index.ts';
import { HT } from '../protocol/tpm/constants.ts';
import { UsageError } from '../protocol/errors.ts';
import { PACKAGE_ROOT } from '../protocol/runtime.ts';
import { DEFAULT_KEY_HANDLE } from './keystore/tpm.ts';
import { loadVerifierKeys } from './kiosk.ts';
import { DEFAULT_TPM_DEVICE } from './setup.ts';

const run = promisify(execFile);

export type CheckStatus = 'ok' | 'warn' | 'fail';
export type CheckArea = 'runtime' | 'tpm' | 'camera' | 'fingerprint' | 'clock' | 'disk' | 'verifier-keys' | 'broker';

export interface DoctorFinding {
  area: CheckArea;
  status: CheckStatus;
  /** What was found, in a sentence. */
  summary: string;
  /** What to do about it (absent when nothing needs doing). */
  fix?: string;
}

export interface ServiceUser {
  name: string;
  uid: number;
  gids: number[];
}

export interface DoctorInput {
  user: ServiceUser;
  /** The TPM setting (`device:/dev/tpmrm0`, `swtpm:...`); default /dev/tpmrm0. */
  tpm?: string;
  tpmHandle?: number;
  /** 'software': the development key file (then the TPM is not needed). */
  keystore?: string;
  camera?: string;
  fingerprintPort?: string;
  /** The kiosk's state folder. */
  dir: string;
  verifierKeys?: string;
  /** The broker and the mqtt.js options for its credentials (already read). */
  broker?: { url: string; options: Partial<IClientOptions> };
  /** Seconds to wait for the TPM and the broker. */
  timeoutSeconds?: number;
  /** For tests: the time now, and where the build stamp is. */
  now?: Date;
}

/** The user the service runs as: uid and every group it is in (as `id` reports them, NSS included). */
export async function lookupUser(name: string): Promise<ServiceUser> {
  try {
    const uid = Number((await run('id', ['-u', name])).stdout.trim());
    const gids = (await run('id', ['-G', name])).stdout.trim().split(/\s+/).map(Number);
    return { name, uid, gids };
  } catch {
    throw new UsageError(`there is no user ${name} on this box (the service's user; create it with deploy/install.sh, or give --user)`);
  }
}

function groupName(gid: number): string {
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (id !== undefined && Number(id) === gid) return name!;
    }
  } catch {
    // no /etc/group: fall back to the number
  }
  return String(gid);
}

/** Whether `user` may read and write `st`, by owner, group and mode as the kernel decides (root may always). */
export function mayReadWrite(st: Pick<Stats, 'uid' | 'gid' | 'mode'>, user: ServiceUser): boolean {
  if (user.uid === 0) return true;
  const bits = st.uid === user.uid ? (st.mode >> 6) & 7 : user.gids.includes(st.gid) ? (st.mode >> 3) & 7 : st.mode & 7;
  return (bits & 6) === 6;
}

function describeOwner(st: Stats): string {
  return `owned by uid ${st.uid} and group ${groupName(st.gid)}, mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}`;
}

/** A device node the service opens read-write: there, and open to the user (which group would open it). */
function deviceAccess(area: CheckArea, path: string, what: string, user: ServiceUser, group: string): DoctorFinding {
  let st: Stats;
  try {
    st = statSync(path);
  } catch {
    return { area, status: 'fail', summary: `${what} ${path} does not exist`, fix: area === 'camera' ? 'plug the camera in (ls /dev/video*), or fix camera = in the configuration' : 'plug the module in and look for its port (ls /dev/ttyUSB* /dev/ttyACM* /dev/serial/by-id/), or fix fingerprint-port = in the configuration' };
  }
  if (!st.isCharacterDevice() && area !== 'fingerprint') return { area, status: 'fail', summary: `${what} ${path} is not a device` };
  if (!mayReadWrite(st, user)) {
    return { area, status: 'fail', summary: `${what} ${path} is ${describeOwner(st)}: ${user.name} cannot open it`, fix: `add ${user.name} to the ${group} group (usermod -aG ${group} ${user.name}) and install deploy/udev/60-biokiosk.rules, which gives the device to that group` };
  }
  return { area, status: 'ok', summary: `${what} ${path} is there and ${user.name} may open it` };
}

function serialCandidates(): string[] {
  const out: string[] = [];
  try {
    out.push(...readdirSync('/dev').filter((f) => /^tty(USB|ACM|AMA)\d+$/.test(f)).map((f) => `/dev/${f}`));
  } catch {
    // no /dev listing
  }
  try {
    out.push(...readdirSync('/dev/serial/by-id').map((f) => `/dev/serial/by-id/${f}`));
  } catch {
    // no udev links
  }
  return out;
}

async function withTimeout<T>(p: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer in ${seconds} s`)), seconds * 1000)))]);
  } finally {
    clearTimeout(timer);
  }
}

export async function checkTpm(input: DoctorInput): Promise<DoctorFinding[]> {
  if (input.keystore === 'software') {
    return [{ area: 'tpm', status: 'warn', summary: 'the kiosk is set to the software key store (a key file: development only); its key could be copied off the disk', fix: 'remove keystore = software and let the kiosk keep its key in the TPM' }];
  }
  const setting = input.tpm ?? `device:${DEFAULT_TPM_DEVICE}`;
  let target;
  try {
    target = parseTpmUrl(setting);
  } catch (e) {
    return [{ area: 'tpm', status: 'fail', summary: `the TPM setting "${setting}" is not valid: ${(e as Error).message}` }];
  }
  const findings: DoctorFinding[] = [];
  if (target.kind === 'device') {
    if (!existsSync(target.path)) {
      return [{ area: 'tpm', status: 'fail', summary: `there is no TPM at ${target.path}`, fix: 'enable the TPM in the firmware setup (TPM 2.0, fTPM or PTT) and check that the kernel found it (dmesg | grep -i tpm); without a TPM the kiosk refuses to start' }];
    }
    const access = deviceAccess('tpm', target.path, 'the TPM', input.user, 'tss');
    if (access.status !== 'ok') return [access];
    findings.push(access);
  }
  const client = TpmClient.open(target, { timeoutMs: (input.timeoutSeconds ?? 5) * 1000 });
  try {
    const info = await withTimeout(client.info(), input.timeoutSeconds ?? 5, describeTarget(target));
    const handle = input.tpmHandle ?? DEFAULT_KEY_HANDLE;
    const persistent = await client.handles(HT.PERSISTENT);
    const hasKey = persistent.includes(handle);
    findings.push({
      area: 'tpm',
      status: hasKey ? 'ok' : 'warn',
      summary: `the TPM answers (${info.manufacturer}, TPM ${info.family} firmware ${info.firmwareVersion}); ${hasKey ? `the attestation key is at 0x${handle.toString(16)}` : `there is no attestation key at 0x${handle.toString(16)} yet`}`,
      ...(hasKey ? {} : { fix: 'run `biokiosk kiosk identity` once to create the key, then register it with `biokiosk verifier register-device`' }),
    });
  } catch (e) {
    findings.push({ area: 'tpm', status: 'fail', summary: `the TPM at ${describeTarget(target)} did not answer: ${(e as Error).message}`, fix: 'check that no other program holds the TPM (use /dev/tpmrm0, the resource manager, not /dev/tpm0) and that tpm2-abrmd is not required here' });
  } finally {
    await client.close().catch(() => {});
  }
  return findings;
}

export function checkCaptureDevices(input: DoctorInput): DoctorFinding[] {
  const findings: DoctorFinding[] = [];
  if (input.camera === undefined && input.fingerprintPort === undefined) {
    return [{ area: 'camera', status: 'fail', summary: 'no capture device is configured', fix: 'set camera = v4l2:/dev/video0 (a face kiosk) or fingerprint-port = /dev/ttyUSB0 (a fingerprint kiosk) in the configuration' }];
  }
  if (input.camera !== undefined) {
    let spec;
    try {
      spec = parseFrameSourceSpec(input.camera);
    } catch (e) {
      findings.push({ area: 'camera', status: 'fail', summary: `the camera setting "${input.camera}" is not valid: ${(e as Error).message}` });
    }
    if (spec?.kind === 'v4l2') findings.push(deviceAccess('camera', spec.device, 'the camera', input.user, 'video'));
    else if (spec?.kind === 'dir' || spec?.kind === 'virtual') {
      findings.push(existsSync(spec.path) ? { area: 'camera', status: 'warn', summary: `the camera is ${spec.kind}:${spec.path}, images from a folder (a test setting, not a camera)` } : { area: 'camera', status: 'fail', summary: `the camera folder ${spec.path} does not exist` });
    } else if (spec?.kind === 'http') findings.push({ area: 'camera', status: 'ok', summary: `the camera is a network stream at ${spec.url} (not checked here)` });
  }
  if (input.fingerprintPort !== undefined) {
    const f = deviceAccess('fingerprint', input.fingerprintPort, 'the fingerprint module port', input.user, 'dialout');
    if (f.status === 'fail' && !existsSync(input.fingerprintPort)) {
      const seen = serialCandidates();
      f.fix = seen.length > 0 ? `serial ports on this box: ${seen.join(', ')}; set fingerprint-port = to the module's (a /dev/serial/by-id/ name survives replugging)` : 'no serial port is on this box at all: plug the module in (USB-serial adapters show up as /dev/ttyUSB0)';
    }
    findings.push(f);
  }
  return findings;
}

/** The clock: not before this software was built, and kept synchronised (attestations carry the time). */
export async function checkClock(input: DoctorInput): Promise<DoctorFinding[]> {
  const now = input.now ?? new Date();
  const findings: DoctorFinding[] = [];
  let built: Date | null = null;
  try {
    built = new Date((JSON.parse(readFileSync(join(PACKAGE_ROOT, 'dist', 'BUILD.json'), 'utf8')) as { builtAt: string }).builtAt);
  } catch {
    built = statSync(join(PACKAGE_ROOT, 'package.json')).mtime;
  }
  if (now.getTime() < built.getTime() - 24 * 3600 * 1000) {
    findings.push({ area: 'clock', status: 'fail', summary: `the clock says ${now.toISOString()}, before this software was built (${built.toISOString()})`, fix: 'set the time (timedatectl set-ntp true, or a real-time clock battery): verifiers refuse attestations whose time is off by more than a few minutes' });
  }
  try {
    const { stdout } = await run('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 5000 });
    const synced = stdout.trim() === 'yes';
    findings.push(synced ? { area: 'clock', status: 'ok', summary: `the clock is synchronised (${now.toISOString()})` } : { area: 'clock', status: 'warn', summary: `the clock is not synchronised to a time server (${now.toISOString()})`, fix: 'timedatectl set-ntp true, and let the box reach an NTP server' });
  } catch {
    findings.push({ area: 'clock', status: 'warn', summary: `cannot tell whether the clock is synchronised (no systemd-timedated here); it says ${now.toISOString()}`, fix: 'check the time against a trusted clock; run an NTP client' });
  }
  return findings;
}

const MB = 1024 * 1024;

export function checkDisk(input: DoctorInput): DoctorFinding[] {
  const findings: DoctorFinding[] = [];
  let where = input.dir;
  if (!existsSync(where)) {
    findings.push({ area: 'disk', status: 'warn', summary: `the state folder ${input.dir} does not exist yet (the kiosk creates it on first start)`, fix: `with the systemd unit it is /var/lib/biokiosk (StateDirectory=); elsewhere create it for ${input.user.name}` });
    while (!existsSync(where) && dirname(where) !== where) where = dirname(where);
  } else {
    const st = statSync(where);
    if (!st.isDirectory()) return [{ area: 'disk', status: 'fail', summary: `the state folder ${input.dir} is not a folder` }];
    if (!mayReadWrite(st, input.user)) findings.push({ area: 'disk', status: 'fail', summary: `the state folder ${input.dir} is ${describeOwner(st)}: ${input.user.name} cannot write it`, fix: `chown -R ${input.user.name} ${input.dir} && chmod 700 ${input.dir}` });
  }
  const fs = statfsSync(where);
  const free = fs.bavail * fs.bsize;
  const total = fs.blocks * fs.bsize;
  const pct = total > 0 ? (100 * free) / total : 0;
  const line = `${(free / MB).toFixed(0)} MB free of ${(total / MB).toFixed(0)} MB (${pct.toFixed(1)}%) where the state folder is`;
  if (free < 64 * MB) findings.push({ area: 'disk', status: 'fail', summary: line, fix: 'free some space: the outbox needs room to keep attestations while the network is down' });
  else if (free < 512 * MB || pct < 5) findings.push({ area: 'disk', status: 'warn', summary: line, fix: 'free some space before the outbox needs it' });
  else findings.push({ area: 'disk', status: 'ok', summary: line });
  return findings;
}

export async function checkVerifierKeys(input: DoctorInput): Promise<DoctorFinding[]> {
  if (input.verifierKeys === undefined) return [{ area: 'verifier-keys', status: 'fail', summary: 'no verifier keys are configured', fix: 'set verifier-keys = /etc/biokiosk/verifier-keys.json (the output of `biokiosk verifier keys`)' }];
  try {
    await loadVerifierKeys(input.verifierKeys);
    return [{ area: 'verifier-keys', status: 'ok', summary: `the verifiers' public keys are in ${input.verifierKeys}` }];
  } catch (e) {
    return [{ area: 'verifier-keys', status: 'fail', summary: `the verifier keys in ${input.verifierKeys} cannot be used: ${(e as Error).message}`, fix: 'copy the output of `biokiosk verifier keys` there again' }];
  }
}

/** Words for what went wrong connecting to the broker. */
export function describeBrokerError(url: string, e: Error & { code?: string | number }): { summary: string; fix: string } {
  const m = e.message;
  if (e.code === 'ECONNREFUSED') return { summary: `nothing listens at ${url}`, fix: 'check the broker address and port, and that the broker runs' };
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') return { summary: `the broker's host name in ${url} does not resolve`, fix: 'check the name and the box\'s DNS settings' };
  if (/certificate|self[- ]signed|unable to verify|CERT_|hostname|altnames/i.test(m) || (typeof e.code === 'string' && /CERT|TLS|SSL/.test(e.code))) {
    return { summary: `the broker at ${url} could not be trusted: ${m}`, fix: "check that ca = is the fleet CA and that the broker's certificate names this host" };
  }
  if (/not authori[sz]ed|bad user ?name or password|Connection refused: (Not authorized|Bad username)/i.test(m)) return { summary: `the broker at ${url} refused this kiosk's credentials: ${m}`, fix: 'check cert = and key = (or username = and password-file =) and that the kiosk is in the broker\'s access rules (biokiosk broker acl)' };
  return { summary: `could not connect to the broker at ${url}: ${m}`, fix: 'check the broker address, the network and the credentials' };
}

export async function checkBroker(input: DoctorInput): Promise<DoctorFinding[]> {
  if (input.broker === undefined) return [{ area: 'broker', status: 'fail', summary: 'no broker is configured', fix: 'set broker = mqtts://BROKER:8883 with ca =, cert = and key = in the configuration' }];
  const { url, options } = input.broker;
  const seconds = input.timeoutSeconds ?? 5;
  try {
    // A clean session of its own: nothing is subscribed or published, and the kiosk's queued messages stay put.
    const client = await withTimeout(mqtt.connectAsync(url, { ...options, clean: true, reconnectPeriod: 0, connectTimeout: seconds * 1000, clientId: `biokiosk-doctor-${process.pid}` }, false), seconds + 1, url);
    await client.endAsync(true);
    return [{ area: 'broker', status: 'ok', summary: `the broker at ${url} accepted a connection with these credentials` }];
  } catch (e) {
    return [{ area: 'broker', status: 'fail', ...describeBrokerError(url, e as Error & { code?: string }) }];
  }
}

export function checkRuntime(): DoctorFinding[] {
  const major = Number(process.versions.node.split('.')[0]);
  if (major === 20 || major === 22) return [{ area: 'runtime', status: 'ok', summary: `Node.js ${process.versions.node} on ${process.platform}-${process.arch}` }];
  return [{ area: 'runtime', status: 'warn', summary: `Node.js ${process.versions.node} is neither 20 nor 22, the versions this release is tested on` }];
}

/** Every check, in the order a technician fixes things. */
export async function runDoctor(input: DoctorInput): Promise<DoctorFinding[]> {
  return [
    ...checkRuntime(),
    ...(await checkTpm(input)),
    ...checkCaptureDevices(input),
    ...(await checkClock(input)),
    ...checkDisk(input),
    ...(await checkVerifierKeys(input)),
    ...(await checkBroker(input)),
  ];
}
