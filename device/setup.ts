/**
 * Opens a kiosk's state folder: its key store, durable outbox and seq counter (with the software key store, a
 * table of the outbox's database, so that an attestation's count and its enqueue share one fsync).
 *
 * The key store: the TPM's when configured (`{ kind: 'tpm', tpm: 'swtpm:...' }`), and by default when the
 * kernel's TPM resource manager `/dev/tpmrm0` exists; the software store (a key file, development only) only when
 * asked for. With the TPM store, `seq` comes from a TPM NV counter, so a restored disk image cannot rewind it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BiokioskError } from '../protocol/errors.ts';
import { ensurePrivateDir, type NoticeSink } from '../protocol/private-files.ts';
import type { Signer } from '../protocol/signer.ts';
import { TpmClient } from '../drivers/tpm/index.ts';
import { SoftwareKeyStore } from './keystore/software.ts';
import { TpmKeyStore } from './keystore/tpm.ts';
import { Outbox, type OutboxOptions } from './outbox.ts';
import { SqliteSeqCounter, type SeqSource } from './seq-counter.ts';
import { TpmSeqCounter } from './tpm-seq-counter.ts';

export type KeyStoreChoice = { kind: 'software' } | { kind: 'tpm'; tpm: string; handle?: number; seqIndex?: number };

/** Where the default TPM would be: the kernel's resource manager. */
export const DEFAULT_TPM_DEVICE = '/dev/tpmrm0';

/**
 * The key store to use when the caller named none: the TPM at /dev/tpmrm0 when it exists. Otherwise there is no
 * safe default (a kiosk silently falling back to a key file would defeat the TPM): a clear error.
 */
export function defaultKeyStore(deviceExists: (path: string) => boolean = existsSync): KeyStoreChoice {
  if (deviceExists(DEFAULT_TPM_DEVICE)) return { kind: 'tpm', tpm: `device:${DEFAULT_TPM_DEVICE}` };
  throw new BiokioskError('NoKeyStore', `no TPM at ${DEFAULT_TPM_DEVICE}: name one (--tpm device:/dev/tpm0, --tpm swtpm:host=127.0.0.1,port=2321), or ask for the development key file (--keystore software)`, { kind: 'input' });
}

export interface KioskKeyStore extends Signer {
  /** True for the software store: never for a kiosk in service. */
  readonly developmentOnly: boolean;
  /** One line for operators: which store, where. */
  readonly description: string;
}

export interface KioskState {
  keystore: KioskKeyStore;
  outbox: Outbox;
  seq: SeqSource;
  /** The TPM key store itself when the TPM is used (Certify evidence, EK certificate), else null. */
  tpm: TpmKeyStore | null;
  close(): Promise<void>;
}

export interface KioskStateOptions {
  outbox?: OutboxOptions;
  keyStore?: KeyStoreChoice;
  /** Told when the state folder or a file in it was looser than 0700/0600 and has been tightened. */
  onNotice?: NoticeSink;
}

/** Opens (creating when new) the kiosk's state folder, 0700, its files 0600. */
export async function openKioskState(dir: string, options: KioskStateOptions = {}): Promise<KioskState> {
  const choice = options.keyStore ?? defaultKeyStore();
  ensurePrivateDir(dir, options.onNotice);
  const outboxOptions = { onNotice: options.onNotice, ...options.outbox };
  if (choice.kind === 'software') {
    const soft = await SoftwareKeyStore.open(join(dir, 'device-key.json'));
    const keystore: KioskKeyStore = Object.assign(soft, { description: `software key file ${join(dir, 'device-key.json')} (development only)` });
    const outbox = new Outbox(join(dir, 'outbox.db'), outboxOptions);
    const seq = new SqliteSeqCounter(outbox, join(dir, 'state.db'), options.onNotice);
    return {
      keystore,
      outbox,
      seq,
      tpm: null,
      async close() {
        outbox.close();
      },
    };
  }
  // One client for the key and the counter: a TPM (and swtpm) serves one connection at a time.
  const client = TpmClient.open(choice.tpm);
  try {
    const tpmStore = await TpmKeyStore.open({ tpm: client, handle: choice.handle });
    const seq = await TpmSeqCounter.open(client, choice.seqIndex);
    const keystore: KioskKeyStore = {
      kid: tpmStore.kid,
      publicJwk: tpmStore.publicJwk,
      developmentOnly: false,
      description: `TPM ${choice.tpm}, key at persistent handle 0x${tpmStore.handle.toString(16)}, seq from NV counter 0x${seq.index.toString(16)}`,
      sign: (digest) => tpmStore.sign(digest),
    };
    const outbox = new Outbox(join(dir, 'outbox.db'), outboxOptions);
    return {
      keystore,
      outbox,
      seq,
      tpm: tpmStore,
      async close() {
        outbox.close();
        await client.close();
      },
    };
  } catch (e) {
    await client.close();
    throw e;
  }
}
