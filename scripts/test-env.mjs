#!/usr/bin/env node
// Makes sure the system tools the test suite drives for real are installed (Debian packages), installing the
// missing ones with apt-get when running as root. Fails loudly otherwise: tests never skip for a missing tool.
import { execFileSync, spawnSync } from 'node:child_process';

/** command on PATH -> Debian package that provides it */
const REQUIRED = {
  ffmpeg: 'ffmpeg',
  mosquitto: 'mosquitto',
  swtpm: 'swtpm',
  swtpm_setup: 'swtpm-tools',
  tpm2_sign: 'tpm2-tools',
  socat: 'socat',
  // The fleet broker's development PKI (scripts/dev-pki.sh).
  openssl: 'openssl',
  // The fleet broker's rate-limit plugin, compiled for the mosquitto installed (scripts/build-broker-plugin.sh).
  cc: 'gcc',
  // A kiosk whose clock is far off (provisioning tests): libfaketime moves one process's clock.
  faketime: 'faketime',
  // Verifiers on separate hosts: network namespaces (test/helpers/netns.ts), PostgreSQL run as the user postgres.
  ip: 'iproute2',
  runuser: 'util-linux',
  // The service files: sd_notify messages and the units' own check (deploy/systemd/).
  'systemd-notify': 'systemd',
  'systemd-analyze': 'systemd',
};

/** file glob (tools kept off PATH) -> Debian package that provides it */
const REQUIRED_FILES = {
  // test/helpers/postgres.ts runs its own clusters on free ports; Debian's auto-started one on 5432 is unused.
  '/usr/lib/postgresql/*/bin/initdb': 'postgresql',
  // The counter screen's tests drive Debian's chromium with playwright-core (test/helpers/browser.ts); the CJK
  // fonts let the Simplified Chinese screens render (and be screenshotted) as people see them.
  '/usr/bin/chromium': 'chromium',
  '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc': 'fonts-noto-cjk',
  // mosquitto's plugin headers, for the rate-limit plugin.
  '/usr/include/mosquitto_plugin.h': 'mosquitto-dev',
  '/usr/include/mosquitto.h': 'libmosquitto-dev',
};

// Daemons such as mosquitto install to /usr/sbin, which is not on every user's PATH.
function has(cmd) {
  return spawnSync('sh', ['-c', `PATH="$PATH:/usr/sbin:/sbin" command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function hasFile(glob) {
  return spawnSync('sh', ['-c', `ls ${glob}`], { stdio: 'ignore' }).status === 0;
}

const present = (what) => (what.includes('/') ? hasFile(what) : has(what));
const missing = [...Object.entries(REQUIRED), ...Object.entries(REQUIRED_FILES)].filter(([what]) => !present(what));
if (missing.length > 0) {
  const pkgs = [...new Set(missing.map(([, pkg]) => pkg))];
  if (process.getuid?.() !== 0) {
    console.error(`test-env: missing ${missing.map(([c]) => c).join(', ')}; install the Debian packages: apt-get install ${pkgs.join(' ')}`);
    process.exit(1);
  }
  console.error(`test-env: installing ${pkgs.join(' ')} with apt-get ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { stdio: 'inherit', env });
  const still = missing.filter(([what]) => !present(what));
  if (still.length > 0) {
    console.error(`test-env: still missing after install: ${still.map(([c]) => c).join(', ')}`);
    process.exit(1);
  }
}
// The fleet broker's access rules need mosquitto's dynamic-security plugin (part of Debian's mosquitto package).
if (spawnSync('sh', ['-c', 'ls /usr/lib/*/mosquitto_dynamic_security.so'], { stdio: 'ignore' }).status !== 0) {
  console.error('test-env: mosquitto_dynamic_security.so is missing (Debian package mosquitto 2.x)');
  process.exit(1);
}
// Built here once, so the first test that starts the fleet broker does not pay for it (test/helpers/fleet-broker.ts
// rebuilds it when its source is newer).
execFileSync('sh', [new URL('./build-broker-plugin.sh', import.meta.url).pathname], { stdio: ['ignore', 'ignore', 'inherit'] });
console.error('test-env: system tools present: ' + [...Object.keys(REQUIRED), ...Object.values(REQUIRED_FILES)].join(', '));
