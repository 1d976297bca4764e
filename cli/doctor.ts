/**
 * `biokiosk doctor`: parses the flags (and the configuration file), runs the checks of device/doctor.ts and prints
 * them. Exit code 0 when nothing failed (warnings allowed), 3 when the box lacks something the kiosk needs.
 */
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { DEFAULT_CONFIG_PATH, readKioskConfig } from '../device/config.ts';
import { lookupUser, runDoctor, type DoctorFinding } from '../device/doctor.ts';
import { brokerConnectOptions } from '../protocol/broker-credentials.ts';
import { addBrokerCredentialOptions, ExitWith, parseNumber, printJson } from './options.ts';

export const EXIT_DOCTOR_FOUND_PROBLEMS = 3;

interface DoctorOptions {
  config?: string;
  user?: string;
  broker?: string;
  tpm?: string;
  keystore?: string;
  camera?: string;
  fingerprintPort?: string;
  dir?: string;
  verifierKeys?: string;
  ca?: string;
  cert?: string;
  key?: string;
  username?: string;
  passwordFile?: string;
  timeout: number;
  json?: boolean;
}

const LABEL: Record<DoctorFinding['status'], string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' };

export function registerDoctor(program: Command): void {
  addBrokerCredentialOptions(
    program
      .command('doctor')
      .description('What this box lacks to run the kiosk (TPM access, device permissions, clock, disk, broker), in plain words.')
      .option('--config <file>', `the kiosk's configuration file (default ${DEFAULT_CONFIG_PATH} when it exists)`)
      .option('--user <name>', 'the user the kiosk service runs as, whose permissions are checked (default: biokiosk when it exists, else you)')
      .option('--broker <url>', 'MQTT broker URL (overrides the configuration)'),
  )
    .option('--tpm <setting>', 'the TPM (default /dev/tpmrm0)')
    .option('--keystore <kind>', 'software: the development key file')
    .option('--camera <spec>', 'the face camera (v4l2:/dev/video0, ...)')
    .option('--fingerprint-port <path>', 'the fingerprint module serial port')
    .option('--dir <dir>', 'the state folder')
    .option('--verifier-keys <file>', "the verifiers' public keys")
    .option('--timeout <s>', 'seconds to wait for the TPM and the broker', parseNumber('--timeout', 1, 120, true), 5)
    .option('--json', 'one JSON object: {"ok": bool, "findings": [...]}')
    .action(async (o: DoctorOptions) => {
      const configPath = o.config ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
      const file = configPath ? readKioskConfig(configPath).values : new Map<string, string | true>();
      const pick = (flag: string | undefined, key: string): string | undefined => flag ?? (typeof file.get(key) === 'string' ? (file.get(key) as string) : undefined);
      const userName = o.user ?? (await lookupUser('biokiosk').then(() => 'biokiosk', () => userInfo().username));
      const user = await lookupUser(userName);
      const brokerUrl = pick(o.broker, 'broker');
      const creds = { ca: pick(o.ca, 'ca'), cert: pick(o.cert, 'cert'), key: pick(o.key, 'key'), username: pick(o.username, 'username'), passwordFile: pick(o.passwordFile, 'password-file') };
      const findings = await runDoctor({
        user,
        tpm: pick(o.tpm, 'tpm'),
        keystore: pick(o.keystore, 'keystore'),
        camera: pick(o.camera, 'camera'),
        fingerprintPort: pick(o.fingerprintPort, 'fingerprint-port'),
        dir: pick(o.dir, 'dir') ?? 'biokiosk-kiosk',
        verifierKeys: pick(o.verifierKeys, 'verifier-keys'),
        broker: brokerUrl === undefined ? undefined : { url: brokerUrl, options: await brokerConnectOptions(brokerUrl, creds) },
        timeoutSeconds: o.timeout,
      });
      const failed = findings.filter((f) => f.status === 'fail').length;
      if (o.json) {
        printJson({ ok: failed === 0, user: user.name, config: configPath ?? null, findings });
      } else {
        const lines = [`biokiosk doctor: checking for user ${user.name}${configPath ? `, configuration ${configPath}` : ''}`];
        for (const f of findings) {
          lines.push(`${LABEL[f.status]}  ${f.area.padEnd(13)} ${f.summary}`);
          if (f.fix && f.status !== 'ok') lines.push(`${' '.repeat(20)}fix: ${f.fix}`);
        }
        const warned = findings.filter((f) => f.status === 'warn').length;
        lines.push(failed === 0 ? `nothing missing${warned ? ` (${warned} warning${warned > 1 ? 's' : ''})` : ''}` : `${failed} problem${failed > 1 ? 's' : ''}: the kiosk cannot work until ${failed > 1 ? 'they are' : 'it is'} fixed`);
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (failed > 0) throw new ExitWith(EXIT_DOCTOR_FOUND_PROBLEMS);
    });
}
