/**
 * Moving command bytes to a TPM and response bytes back: the kernel's character device (/dev/tpmrm0, /dev/tpm0)
 * or swtpm's data socket (TCP or Unix). One setting string selects the transport; `parseTpmUrl` is the only
 * parser of it:
 *
 *   device:/dev/tpmrm0
 *   swtpm:host=127.0.0.1,port=2321[,ctrl=2322]      (ctrl defaults to port+1, as swtpm and tpm2-tss assume)
 *   swtpm:unix=/run/swtpm/sock[,ctrl=/run/swtpm/ctrl]
 *
 * Framing is the TPM's own: a 10-byte header whose size field gives the whole length. Sizes below 10 or above
 * MAX_FRAME are refused, every command has a deadline, and a connection that breaks mid-command is reported as
 * `connectionLost` so the client can reconnect once and retry.
 */
import { promises as fs } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { HEADER_SIZE, MAX_FRAME } from '../../protocol/tpm/constants.ts';
import { TpmConfigError, TpmTransportError } from '../../protocol/tpm/errors.ts';

export type TpmTarget =
  | { kind: 'device'; path: string }
  | { kind: 'tcp'; host: string; port: number; ctrlPort: number }
  | { kind: 'unix'; path: string; ctrlPath?: string };

export interface Transport {
  readonly description: string;
  /** Sends one command; resolves with one whole response frame. */
  send(command: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /** Drops the connection (if any) and opens a new one. */
  reconnect(): Promise<void>;
  close(): Promise<void>;
}

function parsePort(v: string | undefined, what: string, setting: string): number {
  const n = Number(v);
  if (!v || !/^\d+$/.test(v) || n < 1 || n > 65535) throw new TpmConfigError(`TPM setting ${JSON.stringify(setting)}: ${what} must be a port number 1-65535, got ${JSON.stringify(v ?? '')}`);
  return n;
}

export function parseTpmUrl(setting: string): TpmTarget {
  const colon = setting.indexOf(':');
  const scheme = colon < 0 ? '' : setting.slice(0, colon);
  const rest = colon < 0 ? '' : setting.slice(colon + 1);
  if (scheme === 'device') {
    if (!rest.startsWith('/')) throw new TpmConfigError(`TPM setting ${JSON.stringify(setting)}: expected device:/dev/tpmrm0 (an absolute path)`);
    return { kind: 'device', path: rest };
  }
  if (scheme === 'swtpm') {
    const kv = new Map<string, string>();
    for (const part of rest.split(',')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      if (eq <= 0) throw new TpmConfigError(`TPM setting ${JSON.stringify(setting)}: ${JSON.stringify(part)} is not key=value`);
      const k = part.slice(0, eq);
      if (kv.has(k)) throw new TpmConfigError(`TPM setting ${JSON.stringify(setting)}: ${k} given twice`);
      kv.set(k, part.slice(eq + 1));
    }
    const allowed = kv.has('unix') ? ['unix', 'ctrl'] : ['host', 'port', 'ctrl'];
    for (const k of kv.keys()) if (!allowed.includes(k)) throw new TpmConfigError(`TPM setting ${JSON.stringify(setting)}: unknown key ${JSON.stringify(k)} (allowed: ${allowed.join(', ')})`);
    const unix = kv.get('unix');
    if (unix !== undefined) {
      if (!unix.startsWith('/')) throw new TpmConfigError(`TPM setting ${JSON.stringify(setting)}: unix= needs an absolute socket path`);
      const ctrl = kv.get('ctrl');
      return { kind: 'unix', path: unix, ...(ctrl ? { ctrlPath: ctrl } : {}) };
    }
    const port = parsePort(kv.get('port'), 'port', setting);
    const ctrl = kv.get('ctrl');
    return { kind: 'tcp', host: kv.get('host') || '127.0.0.1', port, ctrlPort: ctrl === undefined ? port + 1 : parsePort(ctrl, 'ctrl', setting) };
  }
  throw new TpmConfigError(`TPM setting ${JSON.stringify(setting)}: expected device:/dev/tpmrm0, swtpm:host=H,port=P[,ctrl=C] or swtpm:unix=/path`);
}

export function describeTarget(t: TpmTarget): string {
  switch (t.kind) {
    case 'device':
      return `device:${t.path}`;
    case 'tcp':
      return `swtpm:host=${t.host},port=${t.port},ctrl=${t.ctrlPort}`;
    case 'unix':
      return `swtpm:unix=${t.path}${t.ctrlPath ? `,ctrl=${t.ctrlPath}` : ''}`;
  }
}

export function openTransport(target: TpmTarget): Transport {
  return target.kind === 'device' ? new DeviceTransport(target.path) : new SocketTransport(target);
}

/** Reads the size out of a header and checks it against the bounds. */
export function frameSize(header: Uint8Array, where: string): number {
  const size = ((header[2]! << 24) | (header[3]! << 16) | (header[4]! << 8) | header[5]!) >>> 0;
  if (size < HEADER_SIZE) throw new TpmTransportError(`${where}: response header announces ${size} bytes, less than the 10-byte header`);
  if (size > MAX_FRAME) throw new TpmTransportError(`${where}: response header announces ${size} bytes, over the ${MAX_FRAME}-byte bound`);
  return size;
}

/** swtpm's data channel (TCP or Unix socket): a byte stream carrying raw TPM commands and responses. */
export class SocketTransport implements Transport {
  readonly description: string;
  private socket: Socket | null = null;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private waiter: { resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | null = null;

  constructor(private readonly target: Extract<TpmTarget, { kind: 'tcp' | 'unix' }>) {
    this.description = describeTarget(target);
  }

  private connect(timeoutMs: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = this.target.kind === 'tcp' ? createConnection({ host: this.target.host, port: this.target.port }) : createConnection({ path: this.target.path });
      s.setNoDelay?.(true);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new TpmTransportError(`${this.description}: connect timed out after ${timeoutMs} ms`, { connectionLost: true }));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.off('error', onError);
        s.on('data', (d: Buffer) => this.onData(s, d));
        s.on('error', (e) => this.onGone(s, e));
        s.on('close', () => this.onGone(s));
        resolve(s);
      });
      const onError = (e: Error): void => {
        clearTimeout(timer);
        reject(new TpmTransportError(`${this.description}: cannot connect: ${e.message}`, { connectionLost: true, cause: e }));
      };
      s.once('error', onError);
    });
  }

  private onData(s: Socket, d: Buffer): void {
    if (s !== this.socket) return;
    if (!this.waiter) {
      // Bytes nobody asked for: the stream is out of step with our commands; start over on a new connection.
      this.drop(s);
      return;
    }
    this.pending.push(d);
    this.pendingLen += d.length;
    if (this.pendingLen < HEADER_SIZE) return;
    const buf = Buffer.concat(this.pending, this.pendingLen);
    this.pending = [buf];
    let size: number;
    try {
      size = frameSize(buf, this.description);
    } catch (e) {
      this.fail(e as Error);
      this.drop(s);
      return;
    }
    if (buf.length < size) return;
    if (buf.length > size) {
      this.fail(new TpmTransportError(`${this.description}: ${buf.length - size} bytes beyond the announced ${size}-byte response`));
      this.drop(s);
      return;
    }
    const w = this.waiter;
    this.waiter = null;
    this.pending = [];
    this.pendingLen = 0;
    w.resolve(new Uint8Array(buf));
  }

  private onGone(s: Socket, e?: Error): void {
    if (s !== this.socket) return;
    this.socket = null;
    this.fail(new TpmTransportError(`${this.description}: connection lost${e ? `: ${e.message}` : ''}`, { connectionLost: true, cause: e }));
  }

  private fail(e: Error): void {
    const w = this.waiter;
    this.waiter = null;
    this.pending = [];
    this.pendingLen = 0;
    w?.reject(e);
  }

  private drop(s: Socket): void {
    if (this.socket === s) this.socket = null;
    s.destroy();
  }

  async send(command: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.waiter) throw new TpmTransportError(`${this.description}: a command is already in flight`);
    const s = this.socket ?? (this.socket = await this.connect(timeoutMs));
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A late response would be mistaken for the next command's: drop the connection.
        this.fail(new TpmTransportError(`${this.description}: no complete response within ${timeoutMs} ms`));
        this.drop(s);
      }, timeoutMs);
      this.waiter = {
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      s.write(command, (err) => {
        if (err) this.onGone(s, err);
      });
    });
  }

  async reconnect(): Promise<void> {
    if (this.socket) this.drop(this.socket);
    this.socket = await this.connect(5000);
  }

  async close(): Promise<void> {
    if (this.socket) this.drop(this.socket);
  }
}

/**
 * The kernel's TPM character device. One write() is one command; one read() returns one whole response. The
 * resource manager (/dev/tpmrm0) flushes our transient objects when the file is closed.
 */
export class DeviceTransport implements Transport {
  readonly description: string;
  private fh: fs.FileHandle | null = null;

  constructor(private readonly path: string) {
    this.description = `device:${path}`;
  }

  private async handle(): Promise<fs.FileHandle> {
    if (this.fh) return this.fh;
    try {
      this.fh = await fs.open(this.path, 'r+');
    } catch (e) {
      throw new TpmTransportError(`${this.description}: cannot open: ${(e as Error).message}`, { connectionLost: false, cause: e });
    }
    return this.fh;
  }

  async send(command: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const fh = await this.handle();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // A read on a char device cannot be cancelled; closing the file is the way out.
        void this.close();
        reject(new TpmTransportError(`${this.description}: no response within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exchange(fh, command), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async exchange(fh: fs.FileHandle, command: Uint8Array): Promise<Uint8Array> {
    try {
      const { bytesWritten } = await fh.write(command, 0, command.length, null);
      if (bytesWritten !== command.length) throw new TpmTransportError(`${this.description}: short write (${bytesWritten} of ${command.length})`);
      const buf = Buffer.alloc(MAX_FRAME + 1);
      let got = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, null);
        if (bytesRead === 0) throw new TpmTransportError(`${this.description}: end of file after ${got} response bytes`, { connectionLost: true });
        got += bytesRead;
        if (got < HEADER_SIZE) continue;
        const size = frameSize(buf, this.description);
        if (got === size) return new Uint8Array(buf.subarray(0, got));
        if (got > size) throw new TpmTransportError(`${this.description}: read ${got} bytes, header announces ${size}`);
      }
    } catch (e) {
      if (e instanceof TpmTransportError) throw e;
      throw new TpmTransportError(`${this.description}: ${(e as Error).message}`, { connectionLost: true, cause: e });
    }
  }

  async reconnect(): Promise<void> {
    await this.close();
    await this.handle();
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close().catch(() => undefined);
  }
}
