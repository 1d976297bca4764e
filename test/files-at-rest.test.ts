/**
 * Files at rest, through the CLI as an operator runs it: the verifier's and the kiosk's state folders are 0700
 * and their files 0600 whatever order the README's commands run in; a looser existing folder or database is
 * tightened with a message saying so; inputs that are not regular files (FIFOs, devices, directories) are
 * refused with exit 2 instead of hanging the command.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { biokiosk, biokioskWith } from './helpers/cli.ts';
import { tempDir } from './helpers/e2e.ts';
import { samplePath } from './helpers/fixtures.ts';

const mode = (p: string) => statSync(p).mode & 0o777;

/** Every file under `dir` is 0600 and every folder 0700 (dir itself included). */
function expectPrivate(dir: string): void {
  expect(mode(dir).toString(8), dir).toBe('700');
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) expectPrivate(p);
    else expect(mode(p).toString(8), p).toBe('600');
  }
}

describe('state folders and files are private whatever the order of the commands', () => {
  it('verifier keys first (as the README starts), then enrol, register, audit', async () => {
    const root = await tempDir('bk-modes-');
    const dir = join(root, 'verifier');
    // The most permissive umask (inherited by the commands): the modes must not depend on it.
    const umask = process.umask(0);
    try {
      const keys = await biokiosk('verifier', 'keys', '--dir', dir);
      expect(keys.code).toBe(0);
      expectPrivate(dir);
    } finally {
      process.umask(umask);
    }
    expect((await biokiosk('verifier', 'enroll', '--dir', dir, '--subject', 'alice', '--modality', 'face', '--image', samplePath(2))).code).toBe(0);
    const kiosk = join(root, 'kiosk');
    const id = await biokiosk('kiosk', 'identity', '--dir', kiosk, '--keystore', 'software', '--json');
    expect(id.code).toBe(0);
    expectPrivate(kiosk);
    writeFileSync(join(root, 'kiosk.json'), id.stdout);
    expect((await biokiosk('verifier', 'register-device', '--dir', dir, '--ueid', 'k1', '--jwk', join(root, 'kiosk.json'), '--site', 's')).code).toBe(0);
    expect((await biokiosk('verifier', 'audit', '--dir', dir)).code).toBe(0);
    expectPrivate(dir);
  }, 120_000);

  it('enrol first, into a folder that does not exist yet', async () => {
    const dir = join(await tempDir('bk-modes-'), 'deep', 'verifier');
    expect((await biokiosk('verifier', 'enroll', '--dir', dir, '--subject', 'alice', '--modality', 'face', '--image', samplePath(2))).code).toBe(0);
    expectPrivate(dir);
  }, 60_000);

  it('tightens a looser existing folder and database, saying so', async () => {
    const dir = join(await tempDir('bk-modes-'), 'verifier');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    const first = await biokiosk('verifier', 'keys', '--dir', dir);
    expect(first.stderr).toMatch(/was mode 0755.*tightened to 0700/);
    // An old verifier.db left world-readable (the permissions an earlier version gave it).
    writeFileSync(join(dir, 'verifier.db'), '');
    chmodSync(join(dir, 'verifier.db'), 0o644);
    const r = await biokiosk('verifier', 'stats', '--dir', dir);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/verifier\.db was mode 0644 .*tightened to 0600/);
    expectPrivate(dir);
    // A kiosk folder too.
    const kdir = join(dir, '..', 'kiosk');
    mkdirSync(kdir, { mode: 0o777 });
    chmodSync(kdir, 0o777);
    const k = await biokiosk('kiosk', 'identity', '--dir', kdir, '--keystore', 'software');
    expect(k.code).toBe(0);
    expect(k.stderr).toMatch(/was mode 0777.*tightened to 0700/);
    expectPrivate(kdir);
  }, 60_000);

  it('refuses a verifier key file others could read, naming the fix', async () => {
    const dir = join(await tempDir('bk-modes-'), 'verifier');
    expect((await biokiosk('verifier', 'keys', '--dir', dir)).code).toBe(0);
    chmodSync(join(dir, 'verifier-keys.json'), 0o644);
    const r = await biokiosk('verifier', 'keys', '--dir', dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/readable by group or others.*chmod 600/);
  });
});

describe('inputs that are not regular files', () => {
  it('refuses a FIFO, a device and a directory with exit 2 instead of hanging extract, match and enroll', async () => {
    const dir = await tempDir('bk-fifo-');
    const fifo = join(dir, 'image.png');
    execFileSync('mkfifo', [fifo]);
    const runs: Array<[string[], RegExp]> = [
      [['extract', '--modality', 'face', '--image', fifo], /FIFO/],
      [['match', '--modality', 'face', fifo, fifo], /FIFO/],
      [['verifier', 'enroll', '--dir', join(dir, 'v'), '--subject', 'a', '--modality', 'face', '--image', fifo], /FIFO/],
      [['extract', '--modality', 'fingerprint', '--image', '/dev/zero'], /a device/],
      [['extract', '--modality', 'face', '--image', dir], /a directory/],
      [['verifier', 'register-device', '--dir', join(dir, 'v'), '--ueid', 'k', '--jwk', fifo, '--site', 's'], /FIFO/],
    ];
    for (const [args, why] of runs) {
      // Would block forever on open() before: the timeout makes a hang a failure, not a stuck suite.
      const r = await biokioskWith({ timeout: 30_000 }, ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(why);
      expect(r.stderr.trim().split('\n').length, args.join(' ')).toBe(1);
    }
  }, 120_000);
});
