/**
 * The attestation `seq` from a TPM NV counter (TPM_NT_COUNTER): the TPM only lets it grow, and it lives in the
 * TPM, not on disk, so restoring an old disk image cannot rewind it. `next()` increments, then reads the 8-byte
 * big-endian value. The index is defined on first use (owner authorisation, empty index auth, no DA lockout).
 * After a lost connection the client retries the increment, which may skip a value: seq values are unique and
 * increasing, not necessarily dense.
 */
import { BiokioskError } from '../protocol/errors.ts';
import { NT, RC, TpmClient, TpmError, counterNvPublic } from '../drivers/tpm/index.ts';
import type { SeqSource } from './seq-counter.ts';

/** An index in the owner range (0x01000000-0x013FFFFF). */
export const DEFAULT_SEQ_INDEX = 0x01000b10;

export class TpmSeqCounter implements SeqSource {
  private constructor(
    readonly client: TpmClient,
    readonly index: number,
    private readonly ownsClient: boolean,
  ) {}

  static async open(tpm: string | TpmClient, index: number = DEFAULT_SEQ_INDEX): Promise<TpmSeqCounter> {
    if (index >>> 24 !== 0x01) throw new BiokioskError('BadUsage', `0x${index.toString(16)} is not an NV index handle (0x01xxxxxx)`);
    const owns = typeof tpm === 'string';
    const client = typeof tpm === 'string' ? TpmClient.open(tpm) : tpm;
    try {
      await ensureCounter(client, index);
    } catch (e) {
      if (owns) await client.close();
      throw e;
    }
    return new TpmSeqCounter(client, index, owns);
  }

  async next(): Promise<number> {
    await this.client.nvIncrement(this.index);
    return this.read();
  }

  /** The current value, or null before the first increment. */
  async current(): Promise<number | null> {
    try {
      return await this.read();
    } catch (e) {
      if (e instanceof TpmError && e.code === RC.NV_UNINITIALIZED) return null;
      throw e;
    }
  }

  private async read(): Promise<number> {
    const b = await this.client.nvRead(this.index, 8, 0);
    const v = Buffer.from(b).readBigUInt64BE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BiokioskError('TpmCounterOverflow', `TPM counter 0x${this.index.toString(16)} is ${v}, beyond a safe integer`, { kind: 'internal' });
    return Number(v);
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }
}

async function ensureCounter(client: TpmClient, index: number): Promise<void> {
  try {
    const { public: pub } = await client.nvReadPublic(index);
    if (((pub.attributes >>> 4) & 0xf) !== NT.COUNTER || pub.dataSize !== 8) {
      throw new BiokioskError('TpmCounterMismatch', `NV index 0x${index.toString(16)} exists but is not an 8-byte counter`, { kind: 'internal' });
    }
    return;
  } catch (e) {
    if (!(e instanceof TpmError && e.baseCode === RC.HANDLE)) throw e;
  }
  try {
    await client.nvDefineSpace(counterNvPublic(index));
  } catch (e) {
    if (!(e instanceof TpmError && e.code === RC.NV_DEFINED)) throw e;
  }
}
