/**
 * The service files: systemd itself (systemd-analyze verify) accepts both units, the kiosk unit has the hardening
 * and the user the README promises, and the example configuration is one `biokiosk run` and `doctor` accept.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseKioskConfig } from '../device/config.ts';
import { tempDir } from './helpers/e2e.ts';

const run = promisify(execFile);
const DEPLOY = join(import.meta.dirname, '..', 'deploy');

/** `key=value` settings of a unit's section, every value of repeated keys. */
function settings(unit: string, section: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let inSection = false;
  for (const line of unit.split('\n')) {
    if (/^\[.*\]$/.test(line)) inSection = line === `[${section}]`;
    else if (inSection && /^[A-Za-z]+=/.test(line)) {
      const [k, ...v] = line.split('=');
      out.set(k!, [...(out.get(k!) ?? []), v.join('=')]);
    }
  }
  return out;
}

describe('systemd units', () => {
  it('are accepted by systemd-analyze verify (their release path pointed at a stand-in)', async () => {
    const dir = await tempDir('bk-units-');
    await mkdir(join(dir, 'current', 'node', 'bin'), { recursive: true });
    await copyFile('/usr/bin/true', join(dir, 'current', 'node', 'bin', 'node'));
    const units = [];
    for (const name of ['biokiosk-kiosk.service', 'biokiosk-verifier.service']) {
      const text = (await readFile(join(DEPLOY, 'systemd', name), 'utf8')).replaceAll('/opt/biokiosk/current', join(dir, 'current'));
      await writeFile(join(dir, name), text);
      units.push(join(dir, name));
    }
    const r = await run('systemd-analyze', ['verify', ...units]).then((x) => x, (e: { stderr: string; code: number }) => ({ stderr: e.stderr, code: e.code }));
    expect(r.stderr).toBe('');
  });

  it('run the kiosk as its own user with a watchdog, hardened, writing only its state directory', async () => {
    const s = settings(await readFile(join(DEPLOY, 'systemd', 'biokiosk-kiosk.service'), 'utf8'), 'Service');
    const one = (k: string) => s.get(k)?.[0];
    expect([one('User'), one('Type'), one('Restart'), one('ProtectSystem'), one('PrivateTmp'), one('NoNewPrivileges'), one('StateDirectory')]).toEqual(['biokiosk', 'notify', 'on-failure', 'strict', 'yes', 'yes', 'biokiosk']);
    expect(one('SupplementaryGroups')!.split(' ')).toEqual(expect.arrayContaining(['tss', 'dialout']));
    expect(Number(one('WatchdogSec'))).toBeGreaterThan(0);
    expect(s.has('ReadWritePaths')).toBe(false);
    expect(one('CapabilityBoundingSet')).toBe('');
    expect(one('ExecStart')).toMatch(/^\/opt\/biokiosk\/current\/node\/bin\/node \/opt\/biokiosk\/current\/bin\/biokiosk\.js run --config \/etc\/biokiosk\/kiosk\.conf/);
  });
});

describe('the example configuration', () => {
  it('parses, and names only run flags', async () => {
    const c = parseKioskConfig(await readFile(join(DEPLOY, 'kiosk.conf.example'), 'utf8'), 'kiosk.conf.example');
    expect(c.values.get('broker')).toMatch(/^mqtts:\/\//);
    expect(c.values.get('verifier-keys')).toBe('/etc/biokiosk/verifier-keys.json');
    expect(c.values.get('online')).toBe(true);
  });
});
