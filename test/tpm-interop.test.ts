// Interoperability with tpm2-tools on one swtpm: a key made by our client is read by tpm2_readpublic and signs
// with tpm2_sign; a key made by tpm2_createprimary/create/load/evictcontrol signs through our client. Every
// signature is checked with node:crypto and @noble/curves. swtpm serves one connection at a time, so our client
// closes its connection before each tool runs (it reconnects on the next command).
import { execFile } from 'node:child_process';
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TpmKeyStore } from '../device/keystore/tpm.ts';
import { HT, TpmClient, eccPublicJwk } from '../drivers/tpm/index.ts';
import { Swtpm, derToP1363, verifyBoth } from './helpers/swtpm.ts';

const exec = promisify(execFile);
let tpm: Swtpm;
let dir: string;

async function tool(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await exec(cmd, args, { env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti }, timeout: 30_000 });
    // Without a resource manager (swtpm), the tools leave their objects loaded: flush them, as tpm2-abrmd would.
    // Their saved context files still load later.
    const c = TpmClient.open(tpm.url);
    await c.flushAllTransients().finally(() => c.close());
    return stdout;
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT') throw new Error(`${cmd} is not installed: run \`npm test\` (it installs the Debian package tpm2-tools) or apt-get install tpm2-tools`);
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${err.stderr ?? ''}`);
  }
}

/** tpm2_sign writes DER for ECDSA with -f plain; accept r||s too. */
const toP1363 = (b: Uint8Array): Uint8Array => (b.length === 64 ? b : derToP1363(b));

beforeAll(async () => {
  tpm = await Swtpm.start();
  dir = await mkdtemp(join(tmpdir(), 'bk-tpm2tools-'));
});

afterAll(async () => {
  await tpm?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('interop with tpm2-tools', () => {
  it('a key persisted by our key store is read by tpm2_readpublic and signs with tpm2_sign', async () => {
    const ks = await TpmKeyStore.open({ tpm: tpm.url, handle: 0x81010002 });
    const jwk = ks.publicJwk;
    await ks.close();

    const pem = join(dir, 'ours.pem');
    await tool('tpm2_readpublic', ['-c', '0x81010002', '-f', 'pem', '-o', pem]);
    const theirs = createPublicKey(await readFile(pem)).export({ format: 'jwk' });
    expect({ x: theirs.x, y: theirs.y, crv: theirs.crv }).toEqual({ x: jwk.x, y: jwk.y, crv: 'P-256' });

    const msg = randomBytes(64);
    const digest = createHash('sha256').update(msg).digest();
    await writeFile(join(dir, 'digest.bin'), digest);
    await tool('tpm2_sign', ['-c', '0x81010002', '-g', 'sha256', '-s', 'ecdsa', '-d', '-f', 'plain', '-o', join(dir, 'sig.bin'), join(dir, 'digest.bin')]);
    const sig = toP1363(await readFile(join(dir, 'sig.bin')));
    expect(verifyBoth(jwk, msg, digest, sig)).toEqual({ node: true, noble: true });

    // And our client still signs with it after the tool ran (its connection was closed meanwhile).
    const again = await TpmKeyStore.open({ tpm: tpm.url, handle: 0x81010002, create: false });
    expect(again.kid).toBe(ks.kid);
    expect(verifyBoth(jwk, msg, digest, await again.sign(digest))).toEqual({ node: true, noble: true });
    await again.close();
  });

  it('a key made and persisted by tpm2-tools signs through our client', async () => {
    const p = (f: string): string => join(dir, f);
    await tool('tpm2_createprimary', ['-C', 'o', '-G', 'ecc', '-c', p('primary.ctx')]);
    await tool('tpm2_create', ['-C', p('primary.ctx'), '-G', 'ecc256:ecdsa-sha256', '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign', '-u', p('key.pub'), '-r', p('key.priv')]);
    await tool('tpm2_load', ['-C', p('primary.ctx'), '-u', p('key.pub'), '-r', p('key.priv'), '-c', p('key.ctx')]);
    await tool('tpm2_evictcontrol', ['-C', 'o', '-c', p('key.ctx'), '0x81010010']);

    const c = TpmClient.open(tpm.url);
    try {
      const pub = await c.readPublic(0x81010010);
      const jwk = eccPublicJwk(pub.public);
      for (let i = 0; i < 5; i++) {
        const msg = randomBytes(33);
        const digest = createHash('sha256').update(msg).digest();
        expect(verifyBoth(jwk, msg, digest, await c.signP256(0x81010010, digest))).toEqual({ node: true, noble: true });
      }
      // The key store opens it too: it has exactly the attributes the store requires.
      const ks = await TpmKeyStore.open({ tpm: c, handle: 0x81010010, create: false });
      const msg = Buffer.from('through the key store');
      const digest = createHash('sha256').update(msg).digest();
      expect(verifyBoth(ks.publicJwk, msg, digest, await ks.sign(digest))).toEqual({ node: true, noble: true });
      expect(await c.handles(HT.TRANSIENT)).toEqual([]);
    } finally {
      await c.close();
    }
  });
});
