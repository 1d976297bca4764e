/**
 * The two runtimes as a technician would start them: `biokiosk verifier run` and `biokiosk run`, on the fleet
 * broker (mutual TLS, each with its own certificate, the access rules of deploy/mosquitto), the kiosk's key in a
 * TPM (swtpm), its Certify evidence checked.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from './helpers/e2e.ts';
import { samplePath } from './helpers/fixtures.ts';
import { FleetBroker } from './helpers/fleet-broker.ts';
import { Swtpm } from './helpers/swtpm.ts';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', 'bin', 'biokiosk.js');
const cli = async (...args: string[]) => (await run(process.execPath, [BIN, ...args], { timeout: 60_000 })).stdout;
const children: ChildProcess[] = [];
let broker: FleetBroker | undefined;
let tpm: Swtpm | undefined;

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await broker?.stop();
  await tpm?.stop();
});

function spawnCli(args: string[]): { child: ChildProcess; out: string[]; err: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  const out: string[] = [];
  let err = '';
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    out.push(...lines);
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { child, out, err: () => err };
}

describe('biokiosk run and biokiosk verifier run', () => {
  it('provision, enrol, then verify people at the kiosk through the CLI', async () => {
    broker = await FleetBroker.start({ devices: ['counter-3'], verifiers: ['verifier-1'] });
    const tls = (kind: 'devices' | 'verifiers', id: string) => {
      const f = broker!.files(kind, id);
      return ['--ca', f.ca!, '--cert', f.cert!, '--key', f.key!];
    };
    const dir = await tempDir('bk-cli-e2e-');
    const vdir = join(dir, 'verifier');
    const kdir = join(dir, 'kiosk');
    await cli('verifier', 'enroll', '--dir', vdir, '--subject', 'alice', '--modality', 'face', '--image', samplePath(2));
    await writeFile(join(dir, 'verifier-keys.json'), await cli('verifier', 'keys', '--dir', vdir));
    // The kiosk's key is made in its TPM; the identity carries the TPM's Certify evidence for it.
    tpm = await Swtpm.start();
    const identity = await cli('kiosk', 'identity', '--dir', kdir, '--tpm', tpm.url, '--json');
    const id = JSON.parse(identity) as { keyStore: string; kid: string; certify: { attest: string; signature: string; signerPublicJwk: object; keyName: string } };
    expect(id.keyStore).toBe('tpm');
    const attest = Buffer.from(id.certify.attest, 'base64url');
    expect(attest.readUInt32BE(0)).toBe(0xff544347); // TPM_GENERATED_VALUE: the TPM made this structure
    expect(attest.includes(Buffer.from(id.certify.keyName, 'hex'))).toBe(true);
    expect(cryptoVerify('sha256', attest, { key: createPublicKey({ key: id.certify.signerPublicJwk as never, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, Buffer.from(id.certify.signature, 'base64url'))).toBe(true);
    // The same key next time (it is persistent in the TPM), whatever the state folder.
    expect(JSON.parse(await cli('kiosk', 'identity', '--dir', join(dir, 'elsewhere'), '--tpm', tpm.url, '--json')).kid).toBe(id.kid);
    await writeFile(join(dir, 'kiosk.jwk.json'), identity);
    await cli('verifier', 'register-device', '--dir', vdir, '--ueid', 'counter-3', '--jwk', join(dir, 'kiosk.jwk.json'), '--site', 'pharmacy-12');

    const verifier = spawnCli(['verifier', 'run', '--dir', vdir, '--broker', broker.url, ...tls('verifiers', 'verifier-1')]);
    await waitFor(() => verifier.err().includes('running on'), 30_000, `the verifier to start: ${verifier.err()}`);
    // Alice at the camera: another framing of her enrolment photo.
    const photo = join(dir, 'alice.jpg');
    await sharp(samplePath(2)).rotate().extract({ left: 960, top: 40, width: 900, height: 900 }).modulate({ brightness: 1.1 }).jpeg().toFile(photo);
    const kiosk = spawnCli(['run', '--dir', kdir, '--broker', broker.url, '--camera', `virtual:${photo}?fps=5`, '--verifier-keys', join(dir, 'verifier-keys.json'), '--ueid', 'counter-3', '--site', 'pharmacy-12', '--online', '--json', '--tpm', tpm.url, ...tls('devices', 'counter-3')]);
    kiosk.child.stdin!.write('alice\nbob\n');
    await waitFor(() => kiosk.out.length >= 2, 60_000, `two results from the kiosk: ${kiosk.err()}`);
    const [a, b] = kiosk.out.map((l) => JSON.parse(l));
    expect(a).toMatchObject({ subject: 'alice', decision: 'match', reasons: [] });
    expect(b).toMatchObject({ subject: 'bob', decision: 'rejected', reasons: ['no_enrollment'] });
    kiosk.child.stdin!.end();
    await new Promise((r) => kiosk.child.once('exit', r));
    expect(verifier.out.map((l) => JSON.parse(l).decision)).toEqual(['match', 'rejected']);
    verifier.child.kill('SIGTERM');
    await new Promise((r) => verifier.child.once('exit', r));
    expect(await cli('verifier', 'audit', '--dir', vdir)).toMatch(/audit log OK: 2 entries/);
  });

  it('refuses to start without a key store it can trust, naming the options', async () => {
    // No /dev/tpmrm0 on this machine: no silent fallback to a key file.
    const dir = await tempDir('bk-cli-nokey-');
    const err = await run(process.execPath, [BIN, 'kiosk', 'identity', '--dir', dir], { timeout: 60_000 }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/no TPM at \/dev\/tpmrm0.*--tpm.*--keystore software/);
    const bad = await run(process.execPath, [BIN, 'kiosk', 'identity', '--dir', dir, '--tpm', 'swtpm:port=notaport'], { timeout: 60_000 }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(bad?.code).toBe(2);
    expect(bad?.stderr).toMatch(/--tpm/);
    const soft = JSON.parse(await cli('kiosk', 'identity', '--dir', dir, '--keystore', 'software', '--json')) as { keyStore: string };
    expect(soft.keyStore).toBe('software');
    // `run` names the device a modality needs.
    const keys = join(dir, 'keys.json');
    await writeFile(keys, JSON.stringify({ verifierId: 'v', verdictKey: {}, fleetKey: {} }));
    for (const [args, why] of [
      [['--modality', 'fingerprint'], /--modality fingerprint needs --fingerprint-port/],
      [['--modality', 'face'], /--modality face needs --camera/],
      [[], /no capture device: give --camera/],
      [['--modality', 'palm', '--camera', 'dir:/tmp'], /--modality takes face, fingerprint or auto/],
    ] as const) {
      const r = await run(process.execPath, [BIN, 'run', '--dir', dir, '--keystore', 'software', '--broker', 'mqtt://127.0.0.1:1', '--verifier-keys', keys, '--ueid', 'k1', ...args], { timeout: 60_000 }).then(
        () => null,
        (e: { code: number; stderr: string }) => e,
      );
      expect(r?.code, args.join(' ')).toBe(2);
      expect(r?.stderr).toMatch(why);
    }
  });
});
