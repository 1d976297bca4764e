/**
 * How a kiosk or a verifier proves who it is to the fleet broker: a client certificate and key, or a username
 * and a password kept in a file, always over TLS with the fleet's CA (the broker's certificate is checked).
 * Secrets come from files of mode 0600, never from the command line, where every local user can read them in
 * the process list.
 */
import { stat } from 'node:fs/promises';
import type { IClientOptions } from 'mqtt';
import { BiokioskError } from './errors.ts';
import { readRegularFile } from './input-files.ts';

export interface BrokerCredentialFiles {
  /** PEM of the CA that signed the broker's certificate (and, for mutual TLS, the clients'). */
  ca?: string;
  /** Client certificate and its private key (PEM). */
  cert?: string;
  key?: string;
  username?: string;
  /** A file holding the password (one line; a trailing newline is ignored). */
  passwordFile?: string;
}

export class BrokerCredentialsError extends BiokioskError {
  constructor(message: string) {
    super('BrokerCredentials', message, { kind: 'input' });
  }
}

async function readSecret(path: string, what: string): Promise<Buffer> {
  const st = await stat(path).catch(() => null);
  if (st && st.isFile() && (st.mode & 0o077) !== 0) {
    throw new BrokerCredentialsError(`${what} ${path} can be read by group or others (mode ${(st.mode & 0o777).toString(8)}): run chmod 600 ${path}`);
  }
  return readRegularFile(path, { maxBytes: 64 * 1024 });
}

/** Checks which options go together; says what is missing or contradictory. */
export function checkBrokerCredentials(url: string, c: BrokerCredentialFiles): void {
  const tls = /^(mqtts|wss):\/\//i.test(url);
  if ((c.cert === undefined) !== (c.key === undefined)) throw new BrokerCredentialsError('a client certificate needs its key: give both --cert and --key');
  if ((c.username === undefined) !== (c.passwordFile === undefined)) throw new BrokerCredentialsError('a username needs its password: give both --username and --password-file');
  if (c.cert !== undefined && c.username !== undefined) throw new BrokerCredentialsError('give a client certificate or a username and password, not both');
  const any = c.ca !== undefined || c.cert !== undefined || c.username !== undefined;
  if (any && !tls) throw new BrokerCredentialsError(`credentials for ${url} would travel without TLS: use an mqtts:// broker URL`);
  if (tls && c.ca === undefined) throw new BrokerCredentialsError(`to check the broker's certificate at ${url}, give the fleet CA with --ca`);
}

/** mqtt.js connection options for the credentials (read and checked now). */
export async function brokerConnectOptions(url: string, c: BrokerCredentialFiles): Promise<Partial<IClientOptions>> {
  checkBrokerCredentials(url, c);
  if (c.ca === undefined) return {};
  const out: Partial<IClientOptions> = { ca: await readRegularFile(c.ca, { maxBytes: 1024 * 1024 }), rejectUnauthorized: true };
  if (c.cert !== undefined && c.key !== undefined) {
    out.cert = await readRegularFile(c.cert, { maxBytes: 64 * 1024 });
    out.key = await readSecret(c.key, 'the client key');
  }
  if (c.username !== undefined && c.passwordFile !== undefined) {
    const password = (await readSecret(c.passwordFile, 'the password file')).toString('utf8').replace(/\r?\n$/, '');
    if (password.length === 0) throw new BrokerCredentialsError(`the password file ${c.passwordFile} is empty`);
    out.username = c.username;
    out.password = password;
  }
  return out;
}
