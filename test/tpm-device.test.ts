/**
 * The `device:` transport (what a kiosk uses on /dev/tpmrm0) against a real TPM behind a character device: swtpm
 * in chardev mode on one end of a pseudo-terminal pair made by socat, our client on the other end. A pty delivers
 * a response in pieces where the kernel's TPM driver returns it whole, so this also exercises reassembly.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TpmKeyStore } from '../device/keystore/tpm.ts';
import { TpmClient } from '../drivers/tpm/index.ts';
import { swtpmBinaries } from './helpers/swtpm.ts';
import { promisify } from 'node:util';

const run = promisify(execFile);
let dir: string;
const procs: ChildProcess[] = [];

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

beforeAll(async () => {
  if (!existsSync('/usr/bin/socat')) throw new Error('socat is not installed: run `npm test` (it installs the Debian package socat)');
  const bins = swtpmBinaries();
  dir = await mkdtemp(join(tmpdir(), 'bk-tpmdev-'));
  await run(bins.setup, ['--tpm2', '--tpmstate', dir, '--create-ek-cert', '--overwrite'], { timeout: 60_000 });
  procs.push(spawn('socat', [`pty,raw,echo=0,link=${join(dir, 'tpm-side')}`, `pty,raw,echo=0,link=${join(dir, 'dev-side')}`], { stdio: 'ignore' }));
  await until(() => existsSync(join(dir, 'tpm-side')) && existsSync(join(dir, 'dev-side')), 'socat ptys');
  procs.push(spawn(bins.swtpm, ['chardev', '--tpm2', '--chardev', join(dir, 'tpm-side'), '--tpmstate', `dir=${dir}`, '--flags', 'not-need-init,startup-clear'], { stdio: 'ignore' }));
}, 60_000);

afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('TPM over a character device', () => {
  it('runs commands, and the key store signs through it', async () => {
    const url = `device:${join(dir, 'dev-side')}`;
    const client = TpmClient.open(url, { timeoutMs: 10_000 });
    try {
      // swtpm opens its end of the pty a moment after it starts: retry the first command briefly.
      let random: Uint8Array | undefined;
      for (let i = 0; i < 40 && !random; i++) random = await client.getRandom(16).catch(async () => (await new Promise((r) => setTimeout(r, 100)), undefined));
      expect(random?.length).toBe(16);
      const ks = await TpmKeyStore.open({ tpm: client });
      const digest = createHash('sha256').update('over a char device').digest();
      const sig = await ks.sign(digest);
      const key = createPublicKey({ key: ks.publicJwk as never, format: 'jwk' });
      expect(cryptoVerify('sha256', Buffer.from('over a char device'), { key, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    } finally {
      await client.close();
    }
    // A second open of the device finds the same persistent key.
    const again = await TpmKeyStore.open({ tpm: url, create: false });
    try {
      expect(again.created).toBe(false);
    } finally {
      await again.close();
    }
  }, 60_000);
});
