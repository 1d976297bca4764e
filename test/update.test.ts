/**
 * deploy/biokiosk-update.sh on real bundles (tarballs laid out as scripts/bundle.sh lays them out, whose node is
 * this machine's): install beside, switch atomically, refuse what is broken without touching the running release,
 * roll back and forth, and never touch the state folder.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/e2e.ts';

const run = promisify(execFile);
const SCRIPT = join(import.meta.dirname, '..', 'deploy', 'biokiosk-update.sh');
const PLATFORM = process.arch === 'arm64' ? 'linux-arm64' : 'linux-x64';

let work: string;
let prefix: string;
let state: string;

/** A release bundle whose `biokiosk --version` prints `says` (its own version unless told otherwise). */
async function bundle(version: string, o: { says?: string; platform?: string; exitCode?: number } = {}): Promise<string> {
  const root = join(work, `src-${version}-${Math.random().toString(36).slice(2, 8)}`);
  const top = join(root, `biokiosk-${version}`);
  await mkdir(join(top, 'bin'), { recursive: true });
  await mkdir(join(top, 'node', 'bin'), { recursive: true });
  await symlink(process.execPath, join(top, 'node', 'bin', 'node'));
  await writeFile(join(top, 'bin', 'biokiosk.js'), `console.log(${JSON.stringify(o.says ?? version)}); process.exitCode = ${o.exitCode ?? 0};\n`);
  await writeFile(join(top, 'RELEASE.json'), JSON.stringify({ name: 'biokiosk', version, platform: o.platform ?? PLATFORM, node: process.versions.node }));
  const file = join(work, `biokiosk-${version}-${Math.random().toString(36).slice(2, 8)}.tar.gz`);
  await run('tar', ['-czf', file, '-C', root, `biokiosk-${version}`]);
  return file;
}

async function update(...args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  try {
    const r = await run('bash', [SCRIPT, ...args, '--prefix', prefix, '--service', 'biokiosk-test-none.service'], { timeout: 60_000 });
    return { code: 0, stderr: r.stderr, stdout: r.stdout };
  } catch (e) {
    const err = e as { code?: number; stderr?: string; stdout?: string };
    return { code: err.code ?? -1, stderr: err.stderr ?? '', stdout: err.stdout ?? '' };
  }
}

const current = () => readlinkSync(join(prefix, 'current'));
const previous = () => readlinkSync(join(prefix, 'previous'));
/** What the current release answers, started the way the systemd unit starts it. */
async function running(): Promise<string> {
  return (await run(join(prefix, 'current', 'node', 'bin', 'node'), [join(prefix, 'current', 'bin', 'biokiosk.js'), '--version'])).stdout.trim();
}

beforeAll(async () => {
  work = await tempDir('bk-update-');
  prefix = join(work, 'opt-biokiosk');
  state = join(work, 'var-lib-biokiosk');
  await mkdir(state, { mode: 0o700 });
  await writeFile(join(state, 'outbox.db'), 'queued attestations');
});

describe('biokiosk-update', () => {
  it('installs a first release and then a second beside it, switching current and keeping previous', async () => {
    let r = await update('install', await bundle('1.0.0'));
    expect(r.code, r.stderr).toBe(0);
    expect(current()).toBe('releases/1.0.0');
    expect(await running()).toBe('1.0.0');
    r = await update('install', await bundle('1.1.0'));
    expect(r.code, r.stderr).toBe(0);
    expect([current(), previous()]).toEqual(['releases/1.1.0', 'releases/1.0.0']);
    expect(await running()).toBe('1.1.0');
    // The same version again: nothing to do, nothing changed.
    r = await update('install', await bundle('1.1.0'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/1\.1\.0 is already the current release/);
    expect([current(), previous()]).toEqual(['releases/1.1.0', 'releases/1.0.0']);
    const s = await update('status');
    expect(s.stdout).toMatch(/current: 1\.1\.0\nprevious: 1\.0\.0\nreleases: 1\.0\.0 1\.1\.0/);
  });

  it('never switches to a release that does not start or does not answer its own version', async () => {
    for (const bad of [await bundle('1.2.0', { exitCode: 1 }), await bundle('1.2.0', { says: '1.1.0' })]) {
      const r = await update('install', bad);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/1\.2\.0 not installed \(current release unchanged\)/);
      expect(current()).toBe('releases/1.1.0');
      expect(await running()).toBe('1.1.0');
      expect(existsSync(join(prefix, 'releases', '1.2.0'))).toBe(false);
    }
  });

  it('keeps the running release when a bundle is cut off halfway, has a wrong checksum or is for another platform', async () => {
    const cut = await bundle('1.3.0');
    const size = (await readFile(cut)).length;
    await truncate(cut, Math.floor(size / 2));
    let r = await update('install', cut);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/did not unpack completely/);

    const tampered = await bundle('1.3.0');
    await writeFile(`${tampered}.sha256`, `${'0'.repeat(64)}  ${tampered.split('/').pop()}\n`);
    r = await update('install', tampered);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not match/);

    r = await update('install', await bundle('1.3.0', { platform: 'linux-riscv64' }));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is for linux-riscv64/);

    expect(current()).toBe('releases/1.1.0');
    expect((await readdir(join(prefix, 'releases'))).sort()).toEqual(['1.0.0', '1.1.0']);
  });

  it('rolls back to the previous release and forth again', async () => {
    let r = await update('rollback');
    expect(r.code, r.stderr).toBe(0);
    expect([current(), previous()]).toEqual(['releases/1.0.0', 'releases/1.1.0']);
    expect(await running()).toBe('1.0.0');
    r = await update('rollback');
    expect(r.code, r.stderr).toBe(0);
    expect(await running()).toBe('1.1.0');
  });

  it('has a whole release at current at every moment of a switch', async () => {
    const next = await bundle('2.0.0');
    const child = spawn('bash', [SCRIPT, 'install', next, '--prefix', prefix, '--service', 'biokiosk-test-none.service']);
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
    let checks = 0;
    let broken = 0;
    let done = false;
    void exited.then(() => (done = true));
    while (!done) {
      checks++;
      if (!existsSync(join(prefix, 'current', 'bin', 'biokiosk.js'))) broken++;
      await new Promise((r) => setImmediate(r));
    }
    expect(await exited).toBe(0);
    expect(checks).toBeGreaterThan(10);
    expect(broken).toBe(0);
    expect(await running()).toBe('2.0.0');
  });

  it('prunes old releases but never current or previous, and leaves the state folder alone', async () => {
    const r = await update('prune', '--keep', '2');
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(join(prefix, 'releases'))).sort()).toEqual(['1.1.0', '2.0.0']);
    expect(await readFile(join(state, 'outbox.db'), 'utf8')).toBe('queued attestations');
  });

  it('clears what an install cut off by a power loss left behind', async () => {
    await mkdir(join(prefix, 'releases', '.incoming-abc123', 'biokiosk-9.9.9'), { recursive: true });
    await chmod(join(prefix, 'releases', '.incoming-abc123'), 0o755);
    const r = await update('install', await bundle('2.1.0'));
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(join(prefix, 'releases'))).filter((f) => f.startsWith('.'))).toEqual([]);
  });
});
