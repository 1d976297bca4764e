/**
 * The fleet broker as the repository configures it (deploy/mosquitto/fleet.conf, access rules from
 * provisioning/broker-security.ts, certificates from scripts/dev-pki.sh), on free loopback ports: mutual TLS on
 * one listener, TLS with username and password on the other. Fails (never skips) when mosquitto, its
 * dynamic-security plugin or openssl is missing: `npm test` installs them (scripts/test-env.mjs).
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { IClientOptions } from 'mqtt';
import type { BrokerCredentialFiles } from '../../protocol/broker-credentials.ts';
import { fleetBrokerSecurity, type BrokerIdentity } from '../../provisioning/broker-security.ts';
import { tempDir } from './e2e.ts';
import { freePort, Mosquitto } from './mosquitto.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

export function dynsecPlugin(): string {
  for (const dir of readdirSync('/usr/lib', { withFileTypes: true })) {
    const p = join('/usr/lib', dir.name, 'mosquitto_dynamic_security.so');
    if (dir.isDirectory() && existsSync(p)) return p;
  }
  throw new Error("mosquitto's dynamic-security plugin is not installed: run `npm test` (it installs the Debian package mosquitto)");
}

/**
 * The fleet's rate-limit plugin (deploy/mosquitto/rate-limit/), built for this mosquitto when missing or older than
 * its source (`npm test` builds it first: scripts/test-env.mjs).
 */
export function rateLimitPlugin(): string {
  const out = join(ROOT, 'build', 'mosquitto', 'biokiosk_rate_limit.so');
  const src = join(ROOT, 'deploy', 'mosquitto', 'rate-limit', 'biokiosk_rate_limit.c');
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    if (!existsSync('/usr/include/mosquitto_plugin.h')) throw new Error("the fleet broker's rate-limit plugin needs mosquitto's plugin headers: run `npm test` (it installs the Debian packages mosquitto-dev and libmosquitto-dev)");
    execFileSync('sh', [join(ROOT, 'scripts', 'build-broker-plugin.sh'), out], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return out;
}

export interface FleetBrokerOptions {
  devices: Array<string | BrokerIdentity>;
  verifiers: string[];
  /** Registries that add and remove logins while the broker runs (username admin:<id>, password login). */
  admins?: BrokerIdentity[];
  /** The rate-limit plugin's settings in place of fleet.conf's (plugin_opt_rate, plugin_opt_burst); false: without the plugin. */
  rateLimit?: { rate: number; burst: number } | false;
}

export class FleetBroker {
  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly passwordPort: number,
    private broker: Mosquitto,
  ) {}

  static async start(o: FleetBrokerOptions): Promise<FleetBroker> {
    const dir = await tempDir('bk-fleet-broker-');
    const devices = o.devices.map((d) => (typeof d === 'string' ? { id: d } : d));
    await run('bash', [join(ROOT, 'scripts', 'dev-pki.sh'), join(dir, 'pki'), ...devices.flatMap((d) => ['--device', d.id]), ...o.verifiers.flatMap((v) => ['--verifier', v])]);
    await writeFile(join(dir, 'dynamic-security.json'), JSON.stringify(fleetBrokerSecurity({ devices, verifiers: o.verifiers.map((id) => ({ id })), admins: o.admins }), null, 2), { mode: 0o600 });
    await mkdir(join(dir, 'data'));
    const [port, passwordPort] = [await freePort(), await freePort()];
    let conf = await readFile(join(ROOT, 'deploy', 'mosquitto', 'fleet.conf'), 'utf8');
    if (o.rateLimit === false) conf = conf.replace(/^plugin .*biokiosk_rate_limit\.so$(\nplugin_opt_.*$)*/m, '');
    conf = conf
      .replaceAll('/etc/biokiosk/pki', join(dir, 'pki'))
      .replaceAll('/etc/biokiosk/mosquitto/dynamic-security.json', join(dir, 'dynamic-security.json'))
      .replaceAll('/var/lib/biokiosk/mosquitto/', `${join(dir, 'data')}/`)
      .replace(/^plugin .*mosquitto_dynamic_security\.so$/m, `plugin ${dynsecPlugin()}`)
      .replace(/^plugin .*biokiosk_rate_limit\.so$/m, `plugin ${rateLimitPlugin()}`)
      .replace(/^plugin_opt_rate .*$/m, (l) => (o.rateLimit ? `plugin_opt_rate ${o.rateLimit.rate}` : l))
      .replace(/^plugin_opt_burst .*$/m, (l) => (o.rateLimit ? `plugin_opt_burst ${o.rateLimit.burst}` : l))
      .replace('listener 8883 0.0.0.0', `listener ${port} 127.0.0.1`)
      .replace('listener 8884 0.0.0.0', `listener ${passwordPort} 127.0.0.1`);
    // As root, mosquitto would drop to the mosquitto user, who cannot read this folder's keys.
    const user = process.getuid?.() === 0 ? 'user root\n' : '';
    const path = join(dir, 'fleet.conf');
    await writeFile(path, user + conf);
    return new FleetBroker(dir, port, passwordPort, await Mosquitto.fromConfig(path, port));
  }

  /** Mutual TLS listener. */
  get url(): string {
    return `mqtts://127.0.0.1:${this.port}`;
  }

  /** TLS with username and password. */
  get passwordUrl(): string {
    return `mqtts://127.0.0.1:${this.passwordPort}`;
  }

  /** The plain-text URL of the TLS port (what an attacker without TLS would try). */
  get plainUrl(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get caPath(): string {
    return join(this.dir, 'pki', 'ca.pem');
  }

  /** The credential files of a party, as the CLI takes them. */
  files(kind: 'devices' | 'verifiers', id: string): BrokerCredentialFiles {
    return { ca: this.caPath, cert: join(this.dir, 'pki', kind, `${id}.pem`), key: join(this.dir, 'pki', kind, `${id}.key`) };
  }

  /** mqtt.js options for a party's certificate. */
  tls(kind: 'devices' | 'verifiers', id: string): Partial<IClientOptions> {
    const f = this.files(kind, id);
    return { ca: readFileSync(f.ca!), cert: readFileSync(f.cert!), key: readFileSync(f.key!), rejectUnauthorized: true };
  }

  get output(): string {
    return this.broker.output;
  }

  async restart(downMs = 200): Promise<void> {
    await this.broker.restart(downMs);
  }

  async stop(): Promise<void> {
    await this.broker.stop();
  }

  /** Starts it again after stop(), on the same ports with the same access rules. */
  async resume(): Promise<void> {
    await this.broker.resume();
  }
}
