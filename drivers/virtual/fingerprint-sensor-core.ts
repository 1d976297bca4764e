/**
 * The simulated module itself (runs inside the virtual sensor's process, see fingerprint-sensor.ts): a ZFM-family
 * module's protocol state machine on one end of a socat pty pair, answering the driver byte for byte as an R307/R503
 * would, pacing every byte it sends at the module's baud rate, and breaking on request.
 *
 * - It answers only packets sent to its address and refuses every command but VfyPwd (0x21) until a non-zero password
 *   has been verified. If the host side of the pty is set to another baud rate than the module's, the module hears
 *   noise and stays silent, as a real one does (the host's rate is read with `stty -F`, since a pty carries none).
 * - Output is paced at 10 bits per byte; a command is also held back for the time its own bytes take on the wire.
 * - Faults are one-shot and armed by the controller: a bad checksum, a truncated packet or garbage before a packet
 *   (on the next acknowledge or on the n-th data packet of the next upload), no finger for N polls, and a disconnect
 *   after n data packets of the next upload (socat is stopped: the host's pty hangs up; `return` restarts it).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { SerialPort } from 'serialport';
import sharp from 'sharp';
import { encodePacket, type Packet } from '../fingerprint/codec.ts';
import { encodeSystemParameters } from '../fingerprint/commands.ts';
import {
  BAUD_UNIT,
  BITS_PER_BYTE,
  CMD,
  DEFAULT_ADDRESS,
  DEFAULT_BAUD,
  IMAGE_HEIGHT,
  IMAGE_WIDTH,
  MAX_BAUD_MULTIPLIER,
  PACKET_SIZES,
  PID,
  SYS_PARAM,
} from '../fingerprint/constants.ts';
import { packImage } from '../fingerprint/image.ts';
import { PacketParser } from '../fingerprint/parser.ts';

export type FaultTarget = 'ack' | 'data';

export type SensorFault =
  | { type: 'badChecksum'; target?: FaultTarget; index?: number }
  | { type: 'truncate'; target?: FaultTarget; index?: number }
  | { type: 'garbage'; target?: FaultTarget; index?: number; bytes?: number }
  | { type: 'noFinger'; polls: number }
  | { type: 'disconnect'; afterDataPackets: number };

export interface SimulatedModuleConfig {
  /** The pty link the driver opens, and the one the module opens. */
  hostPath: string;
  sensorPath: string;
  socatPath?: string;
  baud?: number;
  address?: number;
  password?: number;
  /** Data bytes per data packet: 32, 64, 128 (default, the R307 factory setting) or 256. */
  packetSize?: number;
  /** Image files or one folder of images; any size (cover-resized to 256x288), converted to gray. */
  images?: string[] | string;
  /** Raw 256x288 8-bit gray images, base64. */
  rawImages?: string[];
  /** Whether a finger rests on the sensor at start. Default true. */
  finger?: boolean;
  /** Pace output at the baud rate. Default true. */
  pacing?: boolean;
  /** Stay silent when the host's pty is set to another baud rate. Default true. */
  checkHostBaud?: boolean;
  /** Which LED commands the model has: 'aura' (R503, 0x35), 'plain' (0x50/0x51), 'none' (R307). Default 'aura'. */
  led?: 'aura' | 'plain' | 'none';
  /** Time GenImg takes when a finger is present (the real optics take ~100-500 ms). Default 0. */
  captureMs?: number;
}

export type ModuleEvent = Record<string, unknown> & { event: string };

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.webp', '.bmp', '.pgm']);

/** Decodes, grays and cover-fits one image file to 256x288. */
export async function loadSensorImage(file: string): Promise<Uint8Array> {
  const { data, info } = await sharp(await readFile(file))
    .removeAlpha()
    .grayscale()
    .resize(IMAGE_WIDTH, IMAGE_HEIGHT, { fit: 'cover' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1 || data.length !== IMAGE_WIDTH * IMAGE_HEIGHT) throw new Error(`${file}: decoded to ${info.width}x${info.height}x${info.channels}`);
  return new Uint8Array(data);
}

/** A deterministic ridge-like test pattern, for a module started without images. */
export function patternImage(seed: number): Uint8Array {
  const out = new Uint8Array(IMAGE_WIDTH * IMAGE_HEIGHT);
  const cx = 128 + (seed % 7) * 4;
  const cy = 144 + (seed % 5) * 4;
  for (let y = 0; y < IMAGE_HEIGHT; y++) {
    for (let x = 0; x < IMAGE_WIDTH; x++) {
      const r = Math.hypot(x - cx, (y - cy) * 1.2);
      out[y * IMAGE_WIDTH + x] = Math.round(127.5 + 120 * Math.cos(r / 1.6 + seed));
    }
  }
  return out;
}

async function loadImages(c: SimulatedModuleConfig): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const b64 of c.rawImages ?? []) {
    const raw = new Uint8Array(Buffer.from(b64, 'base64'));
    if (raw.length !== IMAGE_WIDTH * IMAGE_HEIGHT) throw new Error(`raw image of ${raw.length} bytes, expected ${IMAGE_WIDTH * IMAGE_HEIGHT}`);
    out.push(raw);
  }
  let files: string[] = [];
  if (typeof c.images === 'string') {
    const names = (await readdir(c.images)).filter((n) => IMAGE_EXT.has(extname(n).toLowerCase())).sort();
    files = names.map((n) => join(c.images as string, n));
  } else if (c.images) files = c.images;
  for (const f of files) out.push(await loadSensorImage(f));
  if (out.length === 0) out.push(patternImage(1), patternImage(2));
  return out;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class SimulatedModule {
  private readonly c: SimulatedModuleConfig;
  private readonly emitEvent: (e: ModuleEvent) => void;
  private images: Uint8Array[] = [];
  private nextImage = 0;
  private imageBuffer: Uint8Array | null = null;
  private servedIndex = -1;

  private baud: number;
  private address: number;
  private password: number;
  private packetSize: number;
  private securityLevel = 3;
  private verified: boolean;
  private finger: boolean;
  private faults: SensorFault[] = [];
  private led: Record<string, number> = {};

  private socat: ChildProcess | null = null;
  private port: SerialPort | null = null;
  private connected = false;
  private readonly parser: PacketParser;
  private work: Promise<void> = Promise.resolve();
  private wireFreeAt = 0;
  readonly counters = { commands: 0, ignored: 0, uploads: 0, genImg: 0 };

  constructor(c: SimulatedModuleConfig, emitEvent: (e: ModuleEvent) => void) {
    this.c = c;
    this.emitEvent = emitEvent;
    this.baud = c.baud ?? DEFAULT_BAUD;
    this.address = (c.address ?? DEFAULT_ADDRESS) >>> 0;
    this.password = (c.password ?? 0) >>> 0;
    this.packetSize = c.packetSize ?? 128;
    if (!(PACKET_SIZES as readonly number[]).includes(this.packetSize)) throw new Error(`packet size must be one of ${PACKET_SIZES.join(', ')}`);
    if (this.baud % BAUD_UNIT !== 0 || this.baud / BAUD_UNIT < 1 || this.baud / BAUD_UNIT > MAX_BAUD_MULTIPLIER) throw new Error(`baud must be N x 9600, N = 1..12, got ${this.baud}`);
    this.verified = this.password === 0;
    this.finger = c.finger ?? true;
    this.parser = new PacketParser({
      onPacket: (p) => {
        this.work = this.work.then(() => this.handle(p)).catch((e) => this.emitEvent({ event: 'error', message: (e as Error).message }));
      },
      onDrop: (d) => this.emitEvent({ event: 'noise', bytes: d.bytes, reason: d.reason }),
    });
  }

  async start(): Promise<void> {
    this.images = await loadImages(this.c);
    await this.connect();
  }

  status(): Record<string, unknown> {
    return {
      connected: this.connected,
      baud: this.baud,
      address: this.address,
      packetSize: this.packetSize,
      verified: this.verified,
      finger: this.finger,
      faults: this.faults.length,
      servedIndex: this.servedIndex,
      led: this.led,
      images: this.images.length,
      ...this.counters,
    };
  }

  /** The image (8-bit, as loaded) of index i, base64; tests compare the driver's capture with it. */
  image(i: number): string {
    const img = this.images[i];
    if (!img) throw new Error(`no image ${i}`);
    return Buffer.from(img).toString('base64');
  }

  arm(f: SensorFault): void {
    this.faults.push(f);
  }

  setFinger(present: boolean): void {
    this.finger = present;
  }

  // ---- the link ----------------------------------------------------------------------------------------------------

  async connect(): Promise<void> {
    if (this.connected) return;
    const socat = spawn(
      this.c.socatPath ?? 'socat',
      [`pty,raw,echo=0,link=${this.c.hostPath}`, `pty,raw,echo=0,link=${this.c.sensorPath}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    socat.stderr?.on('data', (d) => (err += String(d)));
    const spawnError = new Promise<never>((_, reject) => socat.once('error', (e) => reject(new Error(`cannot run socat: ${e.message}`))));
    this.socat = socat;
    const deadline = Date.now() + 5000;
    while (!(existsSync(this.c.hostPath) && existsSync(this.c.sensorPath))) {
      if (socat.exitCode !== null) throw new Error(`socat exited with ${socat.exitCode}: ${err}`);
      if (Date.now() > deadline) throw new Error(`socat made no ptys within 5 s: ${err}`);
      await Promise.race([sleep(10), spawnError]);
    }
    const port = new SerialPort({ path: this.c.sensorPath, baudRate: this.baud, autoOpen: false, lock: false });
    await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
    port.on('data', (chunk: Buffer) => {
      if (this.port === port) this.parser.push(chunk);
    });
    port.on('close', () => {
      if (this.port === port) void this.disconnect('the pty closed');
    });
    port.on('error', () => {});
    this.port = port;
    this.connected = true;
    // A module that lost power forgets the verified password.
    this.verified = this.password === 0;
    this.emitEvent({ event: 'connected', hostPath: this.c.hostPath });
  }

  /** Unplugs: stops socat, so the host's pty hangs up and its link disappears. */
  async disconnect(reason = 'requested'): Promise<void> {
    if (!this.connected) return;
    this.connected = false;
    const port = this.port;
    this.port = null;
    const socat = this.socat;
    this.socat = null;
    if (socat && socat.exitCode === null) {
      const exited = new Promise<void>((r) => socat.once('exit', () => r()));
      socat.kill('SIGTERM');
      await Promise.race([exited, sleep(2000)]);
      if (socat.exitCode === null) socat.kill('SIGKILL');
    }
    if (port?.isOpen) await new Promise<void>((r) => port.close(() => r()));
    this.parser.reset();
    this.emitEvent({ event: 'disconnected', reason });
  }

  async stop(): Promise<void> {
    await this.disconnect('stopped');
  }

  // ---- output ------------------------------------------------------------------------------------------------------

  /** Writes bytes as a UART at `baud` would deliver them: each slice lands when its last bit would have. */
  private async send(bytes: Uint8Array): Promise<void> {
    const pacing = this.c.pacing ?? true;
    const slice = 32;
    for (let off = 0; off < bytes.length; off += slice) {
      const port = this.port;
      if (!port || !this.connected) return;
      const part = bytes.subarray(off, Math.min(bytes.length, off + slice));
      if (pacing) {
        const now = performance.now();
        // An idle line starts now; a busy one keeps its schedule, so timer lateness does not add up.
        if (this.wireFreeAt < now - 2) this.wireFreeAt = now;
        this.wireFreeAt += (part.length * BITS_PER_BYTE * 1000) / this.baud;
        const wait = this.wireFreeAt - performance.now();
        if (wait > 0.5) await sleep(wait);
      }
      port.write(Buffer.from(part));
    }
    const port = this.port;
    if (port) await new Promise<void>((r) => port.drain(() => r()));
  }

  /** Sends one packet, applying the first armed fault that targets it. */
  private async sendPacket(pid: number, payload: Uint8Array, target: FaultTarget, dataIndex = 0): Promise<void> {
    let bytes: Uint8Array = encodePacket({ address: this.address, pid, payload });
    const i = this.faults.findIndex(
      (f) => (f.type === 'badChecksum' || f.type === 'truncate' || f.type === 'garbage') && (f.target ?? 'ack') === target && (target === 'ack' || (f.index ?? 0) === dataIndex),
    );
    if (i >= 0) {
      const f = this.faults.splice(i, 1)[0]!;
      this.emitEvent({ event: 'fault', fault: f });
      if (f.type === 'badChecksum') {
        const b = Buffer.from(bytes);
        b[b.length - 1] = b[b.length - 1]! ^ 0x5a;
        bytes = b;
      } else if (f.type === 'truncate') {
        bytes = bytes.subarray(0, Math.max(3, Math.floor(bytes.length / 2)));
      } else if (f.type === 'garbage') {
        // Noise with a false header in it, so the host has to resynchronise, not just skip to the first EF.
        const n = Math.max(4, f.bytes ?? 16);
        const g = Buffer.alloc(n);
        for (let k = 0; k < n; k++) g[k] = (k * 37 + 11) & 0xff;
        g[1] = 0xef;
        g[2] = 0x01;
        bytes = Buffer.concat([g, bytes]);
      }
    }
    await this.send(bytes);
  }

  private ack(code: number, extra: Uint8Array = new Uint8Array(0)): Promise<void> {
    return this.sendPacket(PID.ack, Uint8Array.from([code, ...extra]), 'ack');
  }

  // ---- commands ----------------------------------------------------------------------------------------------------

  /**
   * The baud rate the host's end of the pty is set to. Read afresh for every command (about 1-2 ms): the host may
   * have reopened the port at another rate since the last one, as discovery does.
   */
  private hostBaud(): number | null {
    try {
      const out = execFileSync('stty', ['-F', this.c.hostPath, 'speed'], { encoding: 'utf8', timeout: 1000, stdio: ['ignore', 'pipe', 'ignore'] });
      return Number(out.trim()) || null;
    } catch {
      return null;
    }
  }

  private async handle(p: Packet): Promise<void> {
    if (!this.connected) return;
    if (p.pid !== PID.command || p.address !== this.address || p.payload.length === 0) {
      this.counters.ignored++;
      return;
    }
    if ((this.c.checkHostBaud ?? true)) {
      const host = this.hostBaud();
      if (host !== null && host !== this.baud) {
        this.counters.ignored++;
        this.emitEvent({ event: 'baudMismatch', host, module: this.baud });
        return;
      }
    }
    // The command's own bytes take time on the wire before the module can act on them.
    if (this.c.pacing ?? true) await sleep(((p.payload.length + 11) * BITS_PER_BYTE * 1000) / this.baud);
    this.counters.commands++;
    const cmd = p.payload[0]!;
    const arg = p.payload.subarray(1);
    if (cmd === CMD.vfyPwd) {
      if (arg.length !== 4) return this.ack(0x01);
      const ok = Buffer.from(arg).readUInt32BE(0) === this.password;
      if (ok) this.verified = true;
      return this.ack(ok ? 0x00 : 0x13);
    }
    if (!this.verified) return this.ack(0x21);
    switch (cmd) {
      case CMD.readSysPara:
        return this.ack(
          0x00,
          encodeSystemParameters({
            status: (this.verified ? 0x04 : 0) | (this.imageBuffer ? 0x08 : 0),
            systemId: 0x0009,
            librarySize: 1000,
            securityLevel: this.securityLevel,
            address: this.address,
            packetSizeCode: (PACKET_SIZES as readonly number[]).indexOf(this.packetSize),
            baudMultiplier: this.baud / BAUD_UNIT,
          }),
        );
      case CMD.genImg:
        return this.genImg();
      case CMD.upImage:
        return this.upImage();
      case CMD.setSysPara:
        return this.setSysPara(arg);
      case CMD.setPwd:
        if (arg.length !== 4) return this.ack(0x01);
        this.password = Buffer.from(arg).readUInt32BE(0);
        return this.ack(0x00);
      case CMD.auraLedConfig:
        if (this.c.led !== undefined && this.c.led !== 'aura') return this.ack(0xfc);
        if (arg.length !== 4) return this.ack(0x01);
        this.led = { control: arg[0]!, speed: arg[1]!, color: arg[2]!, count: arg[3]! };
        return this.ack(0x00);
      case CMD.openLed:
      case CMD.closeLed:
        if (this.c.led !== 'plain') return this.ack(0xfc);
        this.led = { on: cmd === CMD.openLed ? 1 : 0 };
        return this.ack(0x00);
      case CMD.checkSensor:
      case CMD.handShake:
        return this.ack(0x00);
      default:
        return this.ack(0xfc);
    }
  }

  private async genImg(): Promise<void> {
    this.counters.genImg++;
    const nf = this.faults.find((f) => f.type === 'noFinger');
    if (nf && nf.type === 'noFinger') {
      nf.polls--;
      if (nf.polls <= 0) this.faults.splice(this.faults.indexOf(nf), 1);
      return this.ack(0x02);
    }
    if (!this.finger) return this.ack(0x02);
    if (this.c.captureMs) await sleep(this.c.captureMs);
    this.servedIndex = this.nextImage % this.images.length;
    this.nextImage++;
    this.imageBuffer = this.images[this.servedIndex]!;
    this.emitEvent({ event: 'captured', index: this.servedIndex });
    return this.ack(0x00);
  }

  private async upImage(): Promise<void> {
    if (!this.imageBuffer) return this.ack(0x0f);
    await this.ack(0x00);
    this.counters.uploads++;
    const packed = packImage(this.imageBuffer);
    const n = Math.ceil(packed.length / this.packetSize);
    const dIdx = this.faults.findIndex((f) => f.type === 'disconnect');
    const disconnectAfter = dIdx >= 0 ? (this.faults.splice(dIdx, 1)[0] as { afterDataPackets: number }).afterDataPackets : -1;
    for (let k = 0; k < n; k++) {
      if (k === disconnectAfter) {
        this.emitEvent({ event: 'fault', fault: { type: 'disconnect', afterDataPackets: k } });
        await this.disconnect('fault: disconnect mid-upload');
        return;
      }
      if (!this.connected) return;
      const chunk = packed.subarray(k * this.packetSize, Math.min(packed.length, (k + 1) * this.packetSize));
      await this.sendPacket(k === n - 1 ? PID.endData : PID.data, chunk, 'data', k);
    }
    this.emitEvent({ event: 'uploaded', index: this.servedIndex });
  }

  private async setSysPara(arg: Uint8Array): Promise<void> {
    if (arg.length !== 2) return this.ack(0x01);
    const [param, value] = [arg[0]!, arg[1]!];
    if (param === SYS_PARAM.baud) {
      if (value < 1 || value > MAX_BAUD_MULTIPLIER) return this.ack(0x1b);
      // The acknowledge still goes out at the old rate.
      await this.ack(0x00);
      this.baud = value * BAUD_UNIT;
      return;
    }
    if (param === SYS_PARAM.securityLevel) {
      if (value < 1 || value > 5) return this.ack(0x1b);
      this.securityLevel = value;
      return this.ack(0x00);
    }
    if (param === SYS_PARAM.packetSize) {
      const size = PACKET_SIZES[value];
      if (size === undefined) return this.ack(0x1b);
      this.packetSize = size;
      return this.ack(0x00);
    }
    return this.ack(0x1a);
  }
}
