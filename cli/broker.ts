/** `biokiosk broker acl`: the fleet broker's access rules (mosquitto dynamic-security JSON) for the given parties. */
import { open } from 'node:fs/promises';
import type { Command } from 'commander';
import { UsageError } from '../protocol/errors.ts';
import { readRegularFile } from '../protocol/input-files.ts';
import { fleetBrokerSecurity, type BrokerIdentity } from '../provisioning/broker-security.ts';
import { printJson } from './options.ts';

const collect = (v: string, all: string[] = []) => [...all, v];

export function registerBroker(program: Command): void {
  const b = program.command('broker').description('The fleet broker (mosquitto): its access rules.');
  b.command('acl')
    .description('Write the access rules for deploy/mosquitto/fleet.conf: each kiosk only its own topics, verifiers through their shared group.')
    .option('--device <id>', 'a kiosk (its certificate CN); repeat for each', collect, [])
    .option('--verifier <id>', 'a verifier node (certificate CN verifier:<id>); repeat for each', collect, [])
    .option('--admin <id>', "a registry that adds and deletes kiosks' logins while the broker runs (username admin:<id>, needs --password admin:<id>=FILE); repeat", collect, [])
    .option('--password <id=file>', 'let this device, verifier (verifier:<id>) or admin (admin:<id>, required) log in with the password in FILE instead of a certificate; repeat', collect, [])
    .option('--group <name>', "the verifiers' shared-subscription group", 'verifiers')
    .option('--out <file>', 'write here (mode 0600; it holds password hashes) instead of standard output')
    .action(async (o: { device: string[]; verifier: string[]; admin: string[]; password: string[]; group: string; out?: string }) => {
      const passwords = new Map<string, string>();
      for (const p of o.password) {
        const eq = p.indexOf('=');
        if (eq <= 0) throw new UsageError(`--password takes ID=FILE, got "${p}"`);
        passwords.set(p.slice(0, eq), (await readRegularFile(p.slice(eq + 1), { maxBytes: 4096 })).toString('utf8').replace(/\r?\n$/, ''));
      }
      const withPassword = (id: string, username: string): BrokerIdentity => ({ id, password: passwords.get(username) });
      for (const name of passwords.keys()) {
        if (!o.device.includes(name) && !o.verifier.some((v) => `verifier:${v}` === name) && !o.admin.some((a) => `admin:${a}` === name)) throw new UsageError(`--password names ${name}, which is neither a --device, verifier:<id> of a --verifier nor admin:<id> of an --admin`);
      }
      for (const a of o.admin) if (!passwords.has(`admin:${a}`)) throw new UsageError(`--admin ${a} logs in with a password: give --password admin:${a}=FILE`);
      const config = fleetBrokerSecurity({ devices: o.device.map((d) => withPassword(d, d)), verifiers: o.verifier.map((v) => withPassword(v, `verifier:${v}`)), admins: o.admin.map((a) => withPassword(a, `admin:${a}`)), group: o.group });
      if (!o.out) return printJson(config);
      const fh = await open(o.out, 'w', 0o600);
      try {
        await fh.chmod(0o600);
        await fh.writeFile(JSON.stringify(config, null, 2) + '\n');
      } finally {
        await fh.close();
      }
      process.stderr.write(`wrote the access rules for ${o.device.length} kiosks, ${o.verifier.length} verifiers and ${o.admin.length} registries to ${o.out}\n`);
    });
}
