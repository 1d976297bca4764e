/**
 * The driver of a ZFM-family module on a serial port (the `serialport` package). One exchange at a time: write a
 * command packet, wait for its acknowledge (and, for UpImage, the data packets) with a timeout per packet.
 *
 * - Idempotent commands (VfyPwd, ReadSysPara, GenImg, UpImage, LED) are retried after a timeout, a packet error or a
 *   "packet receive error" (0x01) confirmation; commands that change the module's settings are sent once.
 * - A port that closes or fails under us (the module was unplugged) rejects the exchange in flight with
 *   SensorVanishedError; the driver then tries to reopen the same path every `reopenIntervalMs` and emits `returned`
 *   once the module answers again (a command issued meanwhile tries one reopen itself before failing).
 * - Drivers hand images, not templates: captureImage polls GenImg until a finger is present, then uploads the image.
 */
import { EventEmitter } from 'node:events';
import { SerialPort } from 'serialport';
import { CMD, DEFAULT_ADDRESS, DEFAULT_BAUD, DEFAULT_PASSWORD, IMAGE_PACKED_BYTES, PID, SYS_PARAM, packetSizeCode } from './constants.ts';
import { encodePacket, type Packet } from './codec.ts';
import { payloads, parseSystemParameters, type SystemParameters } from './commands.ts';
import {
  ConfirmationError,
  FingerprintConfigError,
  NoFingerError,
  PacketError,
  ProtocolError,
  SensorNotFoundError,
  SensorTimeoutError,
  SensorVanishedError,
  TruncatedPacketError,
} from './errors.ts';
import { unpackImage, type GrayImage } from './image.ts';
import { PacketParser, type DropReport } from './parser.ts';

export interface FingerprintSensorOptions {
  path: string;
  /** Default 57600 (the factory setting). */
  baudRate?: number;
  /** Default 0xFFFFFFFF. */
  address?: number;
  /** Default 0. */
  password?: number;
  /** Verify the password right after opening (and reopening). Default true: a module with a password refuses the rest. */
  verifyOnOpen?: boolean;
  /** How long to wait for each packet. Default 1000 ms (a 258-byte packet takes 280 ms at 9600 baud). */
  packetTimeoutMs?: number;
  /** Extra attempts for idempotent commands. Default 2. */
  retries?: number;
  /** Reopen a vanished port in the background. Default true. */
  autoReopen?: boolean;
  reopenIntervalMs?: number;
}

export interface CaptureOptions {
  /** Pause between GenImg polls while there is no finger. Default 20 ms. */
  pollMs?: number;
  /** Give up (NoFingerError) after this long without a finger. Default 10 s. */
  timeoutMs?: number;
  /** Stops waiting for a finger (the session was cancelled): rejects with the signal's reason between polls. */
  signal?: AbortSignal;
}

export interface FingerprintSensorStats {
  commands: number;
  retries: number;
  droppedBytes: number;
  reopens: number;
}

type State = 'closed' | 'open' | 'vanished';

interface Waiter {
  resolve: (p: Packet) => void;
  reject: (e: Error) => void;
}

const NON_IDEMPOTENT = new Set<number>([CMD.setSysPara, CMD.setPwd, CMD.setAddr]);

export class FingerprintSensor extends EventEmitter {
  readonly path: string;
  readonly baudRate: number;
  readonly address: number;
  private readonly password: number;
  private readonly verifyOnOpen: boolean;
  private readonly packetTimeoutMs: number;
  private readonly retries: number;
  private readonly autoReopen: boolean;
  private readonly reopenIntervalMs: number;

  private port: SerialPort | null = null;
  private state: State = 'closed';
  private readonly parser: PacketParser;
  private readonly queue: Packet[] = [];
  private waiter: Waiter | null = null;
  /** Packet errors seen since the current wait began: they explain a timeout better than "timeout". */
  private recentPacketErrors: PacketError[] = [];
  private lastRxAt = 0;
  private lock: Promise<unknown> = Promise.resolve();
  private reopenTimer: NodeJS.Timeout | null = null;
  private closing = false;
  readonly stats: FingerprintSensorStats = { commands: 0, retries: 0, droppedBytes: 0, reopens: 0 };

  constructor(o: FingerprintSensorOptions) {
    super();
    this.path = o.path;
    this.baudRate = o.baudRate ?? DEFAULT_BAUD;
    this.address = (o.address ?? DEFAULT_ADDRESS) >>> 0;
    this.password = (o.password ?? DEFAULT_PASSWORD) >>> 0;
    this.verifyOnOpen = o.verifyOnOpen ?? true;
    this.packetTimeoutMs = o.packetTimeoutMs ?? 1000;
    this.retries = o.retries ?? 2;
    this.autoReopen = o.autoReopen ?? true;
    this.reopenIntervalMs = o.reopenIntervalMs ?? 250;
    if (!Number.isInteger(this.baudRate) || this.baudRate <= 0) throw new FingerprintConfigError(`baud rate must be a positive integer, got ${this.baudRate}`);
    this.parser = new PacketParser({
      onPacket: (p) => this.onPacket(p),
      onDrop: (d) => this.onDrop(d),
    });
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Opens the port (and verifies the password unless told not to). A port that cannot be opened: SensorNotFoundError. */
  async open(): Promise<void> {
    if (this.state === 'open') return;
    this.closing = false;
    try {
      await this.openPort();
    } catch (e) {
      throw new SensorNotFoundError(`cannot open ${this.path}: ${(e as Error).message}`, { path: this.path });
    }
    if (this.verifyOnOpen) {
      try {
        await this.verifyPassword();
      } catch (e) {
        await this.close();
        throw e;
      }
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    this.state = 'closed';
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    this.reopenTimer = null;
    this.failWaiter(new SensorVanishedError(this.path, 'the driver was closed'));
    const port = this.port;
    this.port = null;
    if (port?.isOpen) await new Promise<void>((r) => port.close(() => r()));
  }

  // ---- commands -------------------------------------------------------------------------------------------------

  /** VfyPwd (0x13). A wrong password: ConfirmationError 0x13 WrongPassword (kind input). */
  async verifyPassword(password = this.password): Promise<void> {
    await this.command('VfyPwd', payloads.vfyPwd(password >>> 0));
  }

  /** ReadSysPara (0x0F). */
  async readSystemParameters(): Promise<SystemParameters> {
    return parseSystemParameters(await this.command('ReadSysPara', payloads.readSysPara()));
  }

  /** GenImg (0x01) once: true when an image was captured, false when there is no finger (0x02). */
  async genImg(): Promise<boolean> {
    const ack = await this.command('GenImg', payloads.genImg(), { accept: [0x02] });
    return ack[0] === 0x00;
  }

  /** UpImage (0x0A): the image buffer as the module sends it, 4 bits per pixel (36,864 bytes). */
  async uploadImagePacked(): Promise<Uint8Array> {
    return this.serial(async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.uploadOnce();
        } catch (e) {
          if (!this.retryable(e) || attempt >= this.retries) throw e;
          this.stats.retries++;
          await this.settle();
        }
      }
    });
  }

  /** Polls GenImg until a finger is present, then uploads: an 8-bit 256x288 image. */
  async captureImage(o: CaptureOptions = {}): Promise<GrayImage> {
    const pollMs = o.pollMs ?? 20;
    const timeoutMs = o.timeoutMs ?? 10_000;
    const t0 = Date.now();
    let polls = 0;
    for (;;) {
      o.signal?.throwIfAborted();
      polls++;
      if (await this.genImg()) break;
      if (Date.now() - t0 >= timeoutMs) throw new NoFingerError(timeoutMs, polls);
      if (pollMs > 0) await sleep(pollMs);
    }
    o.signal?.throwIfAborted();
    return unpackImage(await this.uploadImagePacked());
  }

  /** SetSysPara (0x0E) data packet size (32/64/128/256). Changes a setting: sent once, never retried. */
  async setPacketSize(bytes: 32 | 64 | 128 | 256): Promise<void> {
    await this.command('SetSysPara', payloads.setSysPara(SYS_PARAM.packetSize, packetSizeCode(bytes)));
  }

  /** R503 ring LED (AuraLedConfig 0x35). Modules without it answer with a confirmation error. */
  async auraLed(control: number, speed: number, color: number, count = 0): Promise<void> {
    await this.command('AuraLedConfig', payloads.auraLedConfig(control, speed, color, count));
  }

  /** Backlight on/off (0x50/0x51) on modules that have the plain LED commands (FPM10A/ZFM-60 boards; not R307/R503). */
  async led(on: boolean): Promise<void> {
    await this.command(on ? 'OpenLED' : 'CloseLED', on ? payloads.openLed() : payloads.closeLed());
  }

  /**
   * Sends one command and returns its acknowledge payload (confirmation code first). A confirmation other than 0x00
   * (and the codes in `accept`) throws ConfirmationError.
   */
  async command(name: string, payload: Uint8Array, o: { accept?: number[] } = {}): Promise<Uint8Array> {
    return this.serial(async () => {
      const idempotent = !NON_IDEMPOTENT.has(payload[0]!);
      for (let attempt = 0; ; attempt++) {
        try {
          const ack = await this.exchange(name, payload);
          const code = ack[0]!;
          if (code !== 0x00 && !(o.accept ?? []).includes(code)) throw new ConfirmationError(code, name);
          return ack;
        } catch (e) {
          if (!idempotent || !this.retryable(e) || attempt >= this.retries) throw e;
          this.stats.retries++;
          await this.settle();
        }
      }
    });
  }

  // ---- exchanges ------------------------------------------------------------------------------------------------

  private retryable(e: unknown): boolean {
    return e instanceof SensorTimeoutError || e instanceof PacketError || e instanceof ProtocolError || (e instanceof ConfirmationError && e.confirmation === 0x01);
  }

  /** Runs `fn` after every exchange queued before it. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => {});
    return run;
  }

  private async exchange(name: string, payload: Uint8Array): Promise<Uint8Array> {
    await this.ensureOpen();
    this.discardStale();
    this.stats.commands++;
    this.write(encodePacket({ address: this.address, pid: PID.command, payload }));
    for (;;) {
      const p = await this.nextPacket(name);
      if (p.pid === PID.ack) {
        if (p.payload.length < 1) throw new ProtocolError(`${name}: empty acknowledge`);
        return p.payload;
      }
      // A data packet left over from an aborted upload: not ours.
    }
  }

  private async uploadOnce(): Promise<Uint8Array> {
    const ack = await this.exchange('UpImage', payloads.upImage());
    if (ack[0] !== 0x00) throw new ConfirmationError(ack[0]!, 'UpImage');
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const p = await this.nextPacket('UpImage data');
      if (p.pid !== PID.data && p.pid !== PID.endData) throw new ProtocolError(`UpImage: packet id 0x${p.pid.toString(16)} inside the image data`);
      parts.push(p.payload);
      total += p.payload.length;
      if (total > IMAGE_PACKED_BYTES) throw new ProtocolError(`UpImage: more than ${IMAGE_PACKED_BYTES} bytes of image data`);
      if (p.pid === PID.endData) break;
    }
    if (total !== IMAGE_PACKED_BYTES) {
      const lost = this.recentPacketErrors.length > 0 ? ` (${this.recentPacketErrors.length} packets dropped: ${this.recentPacketErrors[0]!.message})` : '';
      throw new ProtocolError(`UpImage: ${total} bytes of image data, expected ${IMAGE_PACKED_BYTES}${lost}`, { bytes: total });
    }
    return Buffer.concat(parts);
  }

  private nextPacket(what: string): Promise<Packet> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.state !== 'open') return Promise.reject(new SensorVanishedError(this.path, 'the port is not open'));
    return new Promise<Packet>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        const pending = this.parser.pending;
        const packetErr = this.recentPacketErrors[0];
        this.parser.reset();
        if (pending >= 2) reject(new TruncatedPacketError(pending, this.packetTimeoutMs));
        else if (packetErr) reject(packetErr);
        else reject(new SensorTimeoutError(what, this.packetTimeoutMs, { path: this.path, baudRate: this.baudRate }));
      }, this.packetTimeoutMs);
      this.waiter = {
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  private onPacket(p: Packet): void {
    if (p.address !== this.address) {
      this.onDrop({ bytes: p.payload.length + 11, reason: 'other-address' });
      return;
    }
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w.resolve(p);
    } else this.queue.push(p);
  }

  private onDrop(d: DropReport): void {
    this.stats.droppedBytes += d.bytes;
    if (d.error) this.recentPacketErrors.push(d.error);
    this.emit('drop', d);
  }

  /** Forgets packets and errors from before this exchange. */
  private discardStale(): void {
    this.queue.length = 0;
    this.recentPacketErrors = [];
  }

  /** After a failed attempt: waits until the line has been quiet a moment, so the retry does not read old packets. */
  private async settle(): Promise<void> {
    const quietMs = Math.min(100, this.packetTimeoutMs);
    const deadline = Date.now() + 5 * this.packetTimeoutMs;
    while (Date.now() - this.lastRxAt < quietMs && Date.now() < deadline && this.state === 'open') await sleep(quietMs / 2);
    this.parser.reset();
    this.discardStale();
  }

  private write(buf: Buffer): void {
    const port = this.port;
    if (!port) throw new SensorVanishedError(this.path, 'the port is not open');
    port.write(buf, (err) => {
      if (err) this.vanished(`write failed: ${err.message}`, err);
    });
  }

  private failWaiter(e: Error): void {
    const w = this.waiter;
    this.waiter = null;
    w?.reject(e);
  }

  // ---- opening, vanishing, reopening -------------------------------------------------------------------------------

  private async openPort(): Promise<void> {
    const port = new SerialPort({ path: this.path, baudRate: this.baudRate, autoOpen: false, lock: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    this.port = port;
    this.state = 'open';
    this.parser.reset();
    this.discardStale();
    port.on('data', (chunk: Buffer) => {
      if (this.port !== port) return;
      this.lastRxAt = Date.now();
      this.parser.push(chunk);
    });
    port.on('error', (err: Error) => {
      if (this.port === port) this.vanished(err.message, err);
    });
    port.on('close', (err: Error | null) => {
      if (this.port === port && !this.closing) this.vanished(err ? err.message : 'the port closed', err ?? undefined);
    });
  }

  private vanished(reason: string, cause?: unknown): void {
    if (this.state !== 'open') return;
    const port = this.port;
    this.port = null;
    this.state = 'vanished';
    if (port?.isOpen) port.close(() => {});
    this.parser.reset();
    this.failWaiter(new SensorVanishedError(this.path, reason, cause));
    this.emit('vanished', reason);
    if (this.autoReopen) this.scheduleReopen();
  }

  private scheduleReopen(): void {
    if (this.reopenTimer || this.closing) return;
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = null;
      if (this.state !== 'vanished') return;
      void this.serial(() => this.tryReopen()).then((ok) => {
        if (!ok && this.state === 'vanished') this.scheduleReopen();
      });
    }, this.reopenIntervalMs);
    this.reopenTimer.unref();
  }

  /** One reopen attempt: open the path and check that a module answers. Runs under the exchange lock. */
  private async tryReopen(): Promise<boolean> {
    if (this.state === 'open') return true;
    if (this.closing) return false;
    try {
      await this.openPort();
    } catch {
      return false;
    }
    if (this.closing) {
      // close() ran while the port was opening: do not leave it open behind the caller's back.
      const port = this.port;
      this.port = null;
      this.state = 'closed';
      if (port?.isOpen) await new Promise<void>((r) => port.close(() => r()));
      return false;
    }
    try {
      const ack = await this.exchange('VfyPwd', payloads.vfyPwd(this.password));
      if (ack[0] !== 0x00 && this.verifyOnOpen) throw new ConfirmationError(ack[0]!, 'VfyPwd');
    } catch {
      const port = this.port;
      this.port = null;
      this.state = 'vanished';
      if (port?.isOpen) await new Promise<void>((r) => port.close(() => r()));
      return false;
    }
    this.stats.reopens++;
    this.emit('returned');
    return true;
  }

  private async ensureOpen(): Promise<void> {
    if (this.state === 'open') return;
    if (this.state === 'closed') throw new SensorVanishedError(this.path, 'the driver is not open (call open())');
    if (this.reopenTimer) {
      clearTimeout(this.reopenTimer);
      this.reopenTimer = null;
    }
    if (!(await this.tryReopen())) {
      if (this.autoReopen) this.scheduleReopen();
      throw new SensorVanishedError(this.path, 'it has not come back');
    }
  }

  /** Resolves when the module has come back (or at once if open); rejects after `timeoutMs`. */
  waitUntilReturned(timeoutMs: number): Promise<void> {
    if (this.state === 'open') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.off('returned', on);
        reject(new SensorVanishedError(this.path, `it did not come back within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (): void => {
        clearTimeout(t);
        resolve();
      };
      this.once('returned', on);
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
