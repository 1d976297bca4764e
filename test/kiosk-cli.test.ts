/** The two runtimes as a technician would start them: `biokiosk verifier run` and `biokiosk run`, on mosquitto. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from './helpers/e2e.ts';
import { samplePath } from './helpers/fixtures.ts';
import { Mosquitto } from './helpers/mosquitto.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', 'bin', 'biokiosk.js');
const cli = async (...args: string[]) => (await run(process.execPath, [BIN, ...args], { timeout: 60_000 })).stdout;
const children: ChildProcess[] = [];
let broker: Mosquitto | undefined;

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await broker?.stop();
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
    broker = await Mosquitto.start();
    const dir = await tempDir('bk-cli-e2e-');
    const vdir = join(dir, 'verifier');
    const kdir = join(dir, 'kiosk');
    await cli('verifier', 'enroll', '--dir', vdir, '--subject', 'alice', '--modality', 'face', '--image', samplePath(2));
    await writeFile(join(dir, 'verifier-keys.json'), await cli('verifier', 'keys', '--dir', vdir));
    await writeFile(join(dir, 'kiosk.jwk.json'), await cli('kiosk', 'identity', '--dir', kdir, '--json'));
    await cli('verifier', 'register-device', '--dir', vdir, '--ueid', 'counter-3', '--jwk', join(dir, 'kiosk.jwk.json'), '--site', 'pharmacy-12');

    const verifier = spawnCli(['verifier', 'run', '--dir', vdir, '--broker', broker.url]);
    await waitFor(() => verifier.err().includes('running on'), 30_000, `the verifier to start: ${verifier.err()}`);
    // Alice at the camera: another framing of her enrolment photo.
    const photo = join(dir, 'alice.jpg');
    await sharp(samplePath(2)).rotate().extract({ left: 960, top: 40, width: 900, height: 900 }).modulate({ brightness: 1.1 }).jpeg().toFile(photo);
    const kiosk = spawnCli(['run', '--dir', kdir, '--broker', broker.url, '--camera', `virtual:${photo}?fps=5`, '--verifier-keys', join(dir, 'verifier-keys.json'), '--ueid', 'counter-3', '--site', 'pharmacy-12', '--online', '--json']);
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
});
