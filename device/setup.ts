/** Opens a kiosk's state folder: its key store, durable outbox and seq counter. */
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { SoftwareKeyStore } from './keystore/software.ts';
import { Outbox, type OutboxOptions } from './outbox.ts';
import { SqliteSeqCounter } from './seq-counter.ts';

export interface KioskState {
  keystore: SoftwareKeyStore;
  outbox: Outbox;
  seq: SqliteSeqCounter;
  close(): void;
}

export async function openKioskState(dir: string, options: { outbox?: OutboxOptions } = {}): Promise<KioskState> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keystore = await SoftwareKeyStore.open(join(dir, 'device-key.json'));
  const outbox = new Outbox(join(dir, 'outbox.db'), options.outbox);
  const seq = new SqliteSeqCounter(join(dir, 'state.db'));
  return {
    keystore,
    outbox,
    seq,
    close() {
      outbox.close();
      seq.close();
    },
  };
}
