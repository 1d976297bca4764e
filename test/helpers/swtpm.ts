/**
 * A real swtpm (TPM 2.0 emulator) for tests: fresh state per instance (made by swtpm_setup, with EK and platform
 * certificates in NV), data and control channels on free loopback ports, restartable on the same ports with the
 * same state. Fails (never skips) when swtpm is missing: `npm test` installs it (scripts/test-env.mjs).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { p256 } from '@noble/curves/nist.js';
import { freePort } from './mosquitto.ts';

const run = promisify(execFile);

export function swtpmBinaries(): { swtpm: string; setup: string } {
  const find = (name: string): string => {
    for (const d of ['/usr/bin', '/usr/local/bin', '/usr/sbin']) if (existsSync(join(d, name))) return join(d, name);
    throw new Error(`${name} is not installed: run \`npm test\` (it installs the Debian packages swtpm and swtpm-tools) or apt-get install swtpm swtpm-tools`);
  };
  return { swtpm: find('swtpm'), setup: find('swtpm_setup') };
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class Swtpm {
  private child: ChildProcess | null = null;
  private log = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly ctrlPort: number,
    /** Set when serving on Unix sockets instead of TCP. */
    readonly unix: { data: string; ctrl: string } | null = null,
  ) {}

  /** Our client's setting string. */
  get url(): string {
    if (this.unix) return `swtpm:unix=${this.unix.data},ctrl=${this.unix.ctrl}`;
    return `swtpm:host=127.0.0.1,port=${this.port},ctrl=${this.ctrlPort}`;
  }

  /** tpm2-tools' TCTI string (the swtpm TCTI assumes ctrl = port + 1, which `start` guarantees). */
  get tcti(): string {
    return `swtpm:host=127.0.0.1,port=${this.port}`;
  }

  static async start(opts: { ecc?: boolean; unix?: boolean } = {}): Promise<Swtpm> {
    const bins = swtpmBinaries();
    const dir = await mkdtemp(join(tmpdir(), 'bk-swtpm-'));
    const args = ['--tpm2', '--tpmstate', dir, '--create-ek-cert', '--create-platform-cert', '--overwrite'];
    if (opts.ecc) args.push('--ecc');
    try {
      await run(bins.setup, args, { timeout: 60_000 });
    } catch (e) {
      const err = e as { stderr?: string; stdout?: string; message: string };
      throw new Error(`swtpm_setup failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
    if (opts.unix) {
      const t = new Swtpm(dir, 0, 0, { data: join(dir, 'data.sock'), ctrl: join(dir, 'ctrl.sock') });
      await t.launch();
      return t;
    }
    // Two adjacent free ports (tpm2-tss's swtpm TCTI talks to port+1 for control).
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = await freePort();
      if (port >= 65535 || (await portOpen(port + 1))) continue;
      const t = new Swtpm(dir, port, port + 1);
      try {
        await t.launch();
        return t;
      } catch (e) {
        if (attempt === 19) throw e;
      }
    }
    throw new Error('no two adjacent free loopback ports for swtpm');
  }

  private async launch(): Promise<void> {
    const { swtpm } = swtpmBinaries();
    this.log = '';
    const child = spawn(
      swtpm,
      [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${this.dir}`,
        '--server',
        this.unix ? `type=unixio,path=${this.unix.data}` : `type=tcp,port=${this.port},bindaddr=127.0.0.1`,
        '--ctrl',
        this.unix ? `type=unixio,path=${this.unix.ctrl}` : `type=tcp,port=${this.ctrlPort},bindaddr=127.0.0.1`,
        '--flags',
        'not-need-init,startup-clear',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    child.stdout?.on('data', (d) => (this.log += String(d)));
    child.stderr?.on('data', (d) => (this.log += String(d)));
    const deadline = Date.now() + 10_000;
    const ready = async (): Promise<boolean> => (this.unix ? existsSync(this.unix.data) && existsSync(this.unix.ctrl) : (await portOpen(this.port)) && (await portOpen(this.ctrlPort)));
    while (!(await ready())) {
      if (child.exitCode !== null) throw new Error(`swtpm exited with ${child.exitCode}: ${this.log}`);
      if (Date.now() > deadline) throw new Error(`swtpm did not listen on ${this.port}/${this.ctrlPort}: ${this.log}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  }

  /** Kills the process (state stays on disk). */
  async kill(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  }

  /** Stops and starts the process again on the same ports and state (open sockets break). */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }

  output(): string {
    return this.log;
  }
}

// ---- signature checks used by the TPM tests ----------------------------------------------------------------

/** Verifies r||s over a SHA-256 digest with node:crypto (via the message) and with @noble/curves (via the digest). */
export function verifyBoth(jwk: { x: string; y: string }, message: Uint8Array, digest: Uint8Array, sig: Uint8Array): { node: boolean; noble: boolean } {
  const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, format: 'jwk' });
  const node = nodeVerify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, sig);
  const pub = new Uint8Array(65);
  pub[0] = 4;
  pub.set(Buffer.from(jwk.x, 'base64url'), 1);
  pub.set(Buffer.from(jwk.y, 'base64url'), 33);
  const noble = p256.verify(sig, digest, pub, { prehash: false, lowS: false });
  return { node, noble };
}

/** DER ECDSA-Sig-Value -> r||s (for signatures tpm2-tools writes). */
export function derToP1363(der: Uint8Array): Uint8Array {
  const b = Buffer.from(der);
  let o = 2;
  if (b[0] !== 0x30) throw new Error('not a DER SEQUENCE');
  if (b[1]! & 0x80) o = 2 + (b[1]! & 0x7f);
  const out = new Uint8Array(64);
  for (let i = 0; i < 2; i++) {
    if (b[o] !== 0x02) throw new Error('not a DER INTEGER');
    const len = b[o + 1]!;
    let v = b.subarray(o + 2, o + 2 + len);
    while (v.length > 32 && v[0] === 0) v = v.subarray(1);
    out.set(v, i * 32 + 32 - v.length);
    o += 2 + len;
  }
  return out;
}
