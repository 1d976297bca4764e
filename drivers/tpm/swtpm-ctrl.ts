/**
 * swtpm's own control channel (see swtpm's man page swtpm_ioctls): a separate socket taking 4-byte big-endian
 * command codes with small fixed payloads, answering with a 4-byte result (or, for GET_CAPABILITY, an 8-byte
 * capability mask). This is NOT the Microsoft simulator's platform port: swtpm speaks its own protocol here.
 * Used to power-cycle the emulated TPM (CMD_INIT: like a reset, the TPM then wants TPM2_Startup) and to stop it.
 */
import { createConnection } from 'node:net';
import { TpmTransportError } from '../../protocol/tpm/errors.ts';
import type { TpmTarget } from './transport.ts';

export const SWTPM_CMD = {
  GET_CAPABILITY: 1,
  INIT: 2,
  SHUTDOWN: 3,
  GET_TPMESTABLISHED: 4,
  SET_LOCALITY: 5,
  CANCEL_TPM_CMD: 9,
  STORE_VOLATILE: 10,
  STOP: 14,
} as const;

/** CMD_INIT flag: throw away the volatile state saved by CMD_STORE_VOLATILE. */
export const INIT_FLAG_DELETE_VOLATILE = 1;

export class SwtpmControl {
  readonly description: string;

  constructor(
    private readonly endpoint: { host: string; port: number } | { path: string },
    private readonly timeoutMs = 5000,
  ) {
    this.description = 'path' in endpoint ? `swtpm ctrl unix:${endpoint.path}` : `swtpm ctrl ${endpoint.host}:${endpoint.port}`;
  }

  /** The control endpoint belonging to a data-channel target (tcp: ctrl port; unix: needs ctrl=PATH). */
  static forTarget(t: TpmTarget): SwtpmControl {
    if (t.kind === 'tcp') return new SwtpmControl({ host: t.host, port: t.ctrlPort });
    if (t.kind === 'unix' && t.ctrlPath) return new SwtpmControl({ path: t.ctrlPath });
    throw new TpmTransportError(`no swtpm control channel for this TPM setting (a device, or a unix socket without ctrl=PATH)`);
  }

  /** One request on a fresh connection: `cmd` and its payload out, exactly `responseLength` bytes back. */
  private request(cmd: number, payload: Uint8Array, responseLength: number): Promise<Buffer> {
    const msg = Buffer.alloc(4 + payload.length);
    msg.writeUInt32BE(cmd, 0);
    msg.set(payload, 4);
    return new Promise((resolve, reject) => {
      const s = 'path' in this.endpoint ? createConnection({ path: this.endpoint.path }) : createConnection({ host: this.endpoint.host, port: this.endpoint.port });
      const chunks: Buffer[] = [];
      let len = 0;
      const done = (e: Error | null, v?: Buffer): void => {
        clearTimeout(timer);
        s.destroy();
        if (e) reject(e);
        else resolve(v!);
      };
      const timer = setTimeout(() => done(new TpmTransportError(`${this.description}: command ${cmd} got no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      s.on('connect', () => s.write(msg));
      s.on('data', (d: Buffer) => {
        chunks.push(d);
        len += d.length;
        const all = Buffer.concat(chunks, len);
        // A 4-byte answer where more was expected is an error result (e.g. TPM_BAD_ORDINAL for an unknown command).
        if (len >= responseLength) done(null, all.subarray(0, responseLength));
      });
      s.on('error', (e) => done(new TpmTransportError(`${this.description}: ${e.message}`, { connectionLost: true, cause: e })));
      s.on('close', () => {
        if (len >= 4 && len < responseLength) {
          const rc = Buffer.concat(chunks, len).readUInt32BE(0);
          done(new TpmTransportError(`${this.description}: command ${cmd} failed with result 0x${rc.toString(16)}`));
        } else done(new TpmTransportError(`${this.description}: connection closed after ${len} of ${responseLength} bytes`));
      });
    });
  }

  private async simple(cmd: number, payload = new Uint8Array(0)): Promise<void> {
    const res = await this.request(cmd, payload, 4);
    const rc = res.readUInt32BE(0);
    if (rc !== 0) throw new TpmTransportError(`${this.description}: command ${cmd} failed with result 0x${rc.toString(16)}`);
  }

  /** The PTM_CAP_* bit mask of control commands this swtpm supports. */
  async getCapability(): Promise<bigint> {
    return (await this.request(SWTPM_CMD.GET_CAPABILITY, new Uint8Array(0), 8)).readBigUInt64BE(0);
  }

  /** (Re)initialises the TPM, as a platform reset does: afterwards it answers TPM_RC_INITIALIZE until Startup. */
  async init(flags = 0): Promise<void> {
    const p = Buffer.alloc(4);
    p.writeUInt32BE(flags, 0);
    await this.simple(SWTPM_CMD.INIT, p);
  }

  /** Stops the TPM without ending the process (CMD_INIT starts it again). */
  async stop(): Promise<void> {
    await this.simple(SWTPM_CMD.STOP);
  }

  /** Ends the swtpm process. */
  async shutdown(): Promise<void> {
    await this.simple(SWTPM_CMD.SHUTDOWN);
  }
}
