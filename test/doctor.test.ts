/**
 * `biokiosk doctor` against real parts: swtpm, mosquitto and the fleet broker (mutual TLS), device nodes made
 * with mknod, folders with owners and modes, the kiosk's configuration file.
 */
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expandConfigArgs, parseKioskConfig } from '../device/config.ts';
import { checkBroker, checkCaptureDevices, checkClock, checkDisk, checkTpm, lookupUser, mayReadWrite, type DoctorInput } from '../device/doctor.ts';
import { brokerConnectOptions } from '../protocol/broker-credentials.ts';
import { biokiosk } from './helpers/cli.ts';
import { tempDir } from './helpers/e2e.ts';
import { FleetBroker } from './helpers/fleet-broker.ts';
import { freePort, Mosquitto } from './helpers/mosquitto.ts';
import { Swtpm } from './helpers/swtpm.ts';

const run = promisify(execFile);

let dir: string;
let tpm: Swtpm;
let broker: Mosquitto;
let fleet: FleetBroker;
const nobody = { name: 'nobody', uid: 65534, gids: [65534] };

beforeAll(async () => {
  dir = await tempDir('bk-doctor-');
  [tpm, broker, fleet] = await Promise.all([Swtpm.start(), Mosquitto.start(), FleetBroker.start({ devices: ['counter-3'], verifiers: ['verifier-1'] })]);
}, 120_000);
afterAll(async () => {
  await Promise.all([tpm?.stop(), broker?.stop(), fleet?.stop()]);
});

const base = (over: Partial<DoctorInput> = {}): DoctorInput => ({ user: nobody, dir, timeoutSeconds: 5, ...over });

describe('permissions, judged for the service user', () => {
  it('by owner, group and mode, as the kernel would (root may always)', () => {
    const st = { uid: 0, gid: 20, mode: 0o20660 };
    expect(mayReadWrite(st, { name: 'kiosk', uid: 998, gids: [998, 20] })).toBe(true);
    expect(mayReadWrite(st, { name: 'kiosk', uid: 998, gids: [998] })).toBe(false);
    expect(mayReadWrite({ ...st, mode: 0o20666 }, { name: 'kiosk', uid: 998, gids: [998] })).toBe(true);
    expect(mayReadWrite({ ...st, uid: 998, mode: 0o20600 }, { name: 'kiosk', uid: 998, gids: [998] })).toBe(true);
    expect(mayReadWrite(st, { name: 'root', uid: 0, gids: [0] })).toBe(true);
  });

  it('names the group a device needs, for a serial port the user cannot open', async () => {
    const port = join(dir, 'ttyUSB9');
    await run('mknod', [port, 'c', '1', '3']);
    await chown(port, 0, 20);
    await chmod(port, 0o660);
    const [f] = checkCaptureDevices(base({ fingerprintPort: port }));
    expect(f).toMatchObject({ area: 'fingerprint', status: 'fail' });
    expect(f!.summary).toMatch(/nobody cannot open it/);
    expect(f!.fix).toMatch(/usermod -aG dialout nobody/);
    const [ok] = checkCaptureDevices(base({ fingerprintPort: port, user: await lookupUser('root') }));
    expect(ok!.status).toBe('ok');
  });

  it('says when no capture device is configured, and when the camera is missing', () => {
    expect(checkCaptureDevices(base())[0]).toMatchObject({ status: 'fail', summary: 'no capture device is configured' });
    const [cam] = checkCaptureDevices(base({ camera: `v4l2:${join(dir, 'video7')}` }));
    expect(cam).toMatchObject({ area: 'camera', status: 'fail' });
    expect(cam!.summary).toMatch(/video7 does not exist/);
  });

  it('finds a state folder the user cannot write', async () => {
    const state = join(dir, 'state');
    await mkdir(state, { mode: 0o700 });
    const findings = checkDisk(base({ dir: state }));
    expect(findings[0]).toMatchObject({ area: 'disk', status: 'fail' });
    expect(findings[0]!.fix).toMatch(/chown -R nobody/);
    expect(findings.at(-1)!.summary).toMatch(/MB free of/);
  });
});

describe('the TPM', () => {
  it('answers through swtpm, with no attestation key yet', async () => {
    const [f] = await checkTpm(base({ tpm: tpm.url }));
    expect(f).toMatchObject({ area: 'tpm', status: 'warn' });
    expect(f!.summary).toMatch(/the TPM answers/);
    expect(f!.fix).toMatch(/biokiosk kiosk identity/);
  });

  it('is missing at a device path that does not exist', async () => {
    const [f] = await checkTpm(base({ tpm: `device:${join(dir, 'tpmrm9')}` }));
    expect(f).toMatchObject({ status: 'fail' });
    expect(f!.summary).toMatch(/there is no TPM/);
  });

  it('does not answer on a port where nothing listens', async () => {
    const port = await freePort();
    const [f] = await checkTpm(base({ tpm: `swtpm:host=127.0.0.1,port=${port}`, timeoutSeconds: 2 }));
    expect(f).toMatchObject({ status: 'fail' });
    expect(f!.summary).toMatch(/did not answer/);
  });
});

describe('the broker', () => {
  it('accepts a plain connection on the test broker; nothing listens on a free port', async () => {
    expect((await checkBroker(base({ broker: { url: broker.url, options: {} } })))[0]!.status).toBe('ok');
    const url = `mqtt://127.0.0.1:${await freePort()}`;
    const [f] = await checkBroker(base({ broker: { url, options: {} }, timeoutSeconds: 2 }));
    expect(f).toMatchObject({ status: 'fail', summary: `nothing listens at ${url}` });
  });

  it("accepts the kiosk's certificate on the fleet broker, and cannot trust it with another CA", async () => {
    const good = await brokerConnectOptions(fleet.url, fleet.files('devices', 'counter-3'));
    expect((await checkBroker(base({ broker: { url: fleet.url, options: good } })))[0]).toMatchObject({ status: 'ok' });
    const other = await tempDir('bk-doctor-pki-');
    await run('bash', [join(import.meta.dirname, '..', 'scripts', 'dev-pki.sh'), other, '--device', 'counter-3']);
    const wrongCa = { ...good, ca: await import('node:fs/promises').then((m) => m.readFile(join(other, 'ca.pem'))) };
    const [f] = await checkBroker(base({ broker: { url: fleet.url, options: wrongCa } }));
    expect(f).toMatchObject({ status: 'fail' });
    expect(f!.summary).toMatch(/could not be trusted/);
  });
});

describe('the clock', () => {
  it('fails when it is set before the software was built', async () => {
    const [f] = await checkClock(base({ now: new Date('2001-01-01T00:00:00Z') }));
    expect(f).toMatchObject({ area: 'clock', status: 'fail' });
    expect(f!.summary).toMatch(/before this software was built/);
  });
});

describe('the configuration file', () => {
  it('maps key = value lines to run flags, switches to true/false, and refuses unknown keys by line', () => {
    const c = parseKioskConfig('# kiosk\nbroker = mqtts://b:8883\n\nonline = true\nrequire-nonce = false\nverifier-keys=/etc/biokiosk/verifier-keys.json\n', 'k.conf');
    expect([...c.values]).toEqual([['broker', 'mqtts://b:8883'], ['online', true], ['verifier-keys', '/etc/biokiosk/verifier-keys.json']]);
    expect(() => parseKioskConfig('broker = x\nbrokr = y\n', 'k.conf')).toThrow(/k.conf:2: unknown key "brokr"/);
    expect(() => parseKioskConfig('online = yes\n', 'k.conf')).toThrow(/k.conf:1: online takes true or false/);
  });

  it('puts the file before the given flags, so that the command line wins', async () => {
    const file = join(dir, 'kiosk.conf');
    await writeFile(file, 'broker = mqtt://from-file:1883\nsite = pharmacy-12\n');
    expect(expandConfigArgs(['run', '--config', file, '--broker', 'mqtt://given:1883'], 1)).toEqual(['run', '--broker', 'mqtt://from-file:1883', '--site', 'pharmacy-12', '--broker', 'mqtt://given:1883']);
  });
});

describe('biokiosk doctor', () => {
  it('prints every finding in plain words, and exits 3 when something is missing', async () => {
    const conf = join(dir, 'doctor.conf');
    await writeFile(conf, `broker = ${broker.url}\ntpm = ${tpm.url}\ncamera = v4l2:${join(dir, 'video0')}\ndir = ${join(dir, 'kiosk-state')}\nueid = counter-3\n`);
    const r = await biokiosk('doctor', '--config', conf, '--user', 'root');
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).toMatch(/^ok {4}broker {8}the broker at mqtt:\/\/127\.0\.0\.1:\d+ accepted a connection/m);
    expect(r.stdout).toMatch(/^FAIL {2}camera .*video0 does not exist/m);
    expect(r.stdout).toMatch(/^FAIL {2}verifier-keys no verifier keys are configured/m);
    expect(r.stdout).toMatch(/2 problems: the kiosk cannot work until they are fixed/);
    const j = await biokiosk('doctor', '--config', conf, '--user', 'root', '--json');
    const out = JSON.parse(j.stdout);
    expect(out.ok).toBe(false);
    expect(out.findings.find((f: { area: string }) => f.area === 'tpm').summary).toMatch(/the TPM answers/);
  });

  it('refuses a configuration file with a mistyped key (exit 2), for run too', async () => {
    const conf = join(dir, 'bad.conf');
    await writeFile(conf, 'broker = mqtt://127.0.0.1:1\ncamra = v4l2:/dev/video0\n');
    for (const cmd of ['doctor', 'run']) {
      const r = await biokiosk(cmd, '--config', conf);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/bad.conf:2: unknown key "camra"/);
    }
  });
});
