/** Parsing helpers for CLI option values: every bad value is a UsageError naming the option. */
import type { Command } from 'commander';
import type { ModalityName } from '../models/modality.ts';
import type { BrokerCredentialFiles } from '../protocol/broker-credentials.ts';
import { UsageError } from '../protocol/errors.ts';

export function parseNumber(name: string, min: number, max: number, integer = false): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      throw new UsageError(`${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${value}"`);
    }
    return n;
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

export function ms(v: number): string {
  return `${v.toFixed(1)} ms`;
}

/** `--dpi` describes fingerprint sensor images; face images have no fixed scale, so it is refused there. */
export function checkDpi(modality: ModalityName, dpi: number | undefined): void {
  if (dpi !== undefined && modality !== 'fingerprint') throw new UsageError(`--dpi applies to fingerprint images, not ${modality}`);
}

/** The broker credential options every command that connects to the fleet broker takes. */
export function addBrokerCredentialOptions(cmd: Command): Command {
  return cmd
    .option('--ca <file>', "the fleet CA's certificate (PEM), to check the broker's (mqtts:// URLs)")
    .option('--cert <file>', 'client certificate (PEM) for mutual TLS')
    .option('--key <file>', 'its private key (PEM, mode 0600)')
    .option('--username <name>', 'broker username, instead of a client certificate')
    .option('--password-file <file>', 'file holding the broker password (mode 0600; never give a password on the command line)');
}

export interface BrokerCredentialOptions {
  ca?: string;
  cert?: string;
  key?: string;
  username?: string;
  passwordFile?: string;
}

/** The credential files named by those options. */
export function brokerCredentialFiles(o: BrokerCredentialOptions): BrokerCredentialFiles {
  return { ca: o.ca, cert: o.cert, key: o.key, username: o.username, passwordFile: o.passwordFile };
}

/** Thrown by a command that ends with a particular exit code of its own (biokiosk doctor: 3), having printed. */
export class ExitWith extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}
