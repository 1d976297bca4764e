/**
 * The iris camera driver (protocol: iris-protocol.ts, README.md), a small frame source for the kiosk session:
 * `capture()` gives one 8-bit NIR image `{ width, height, data }` in memory.
 *
 * - capture: set capture control to streaming, take the first image that arrives whole (ImageAssembler), stop.
 *   A damaged image (lost, repeated or reordered report, bad CRC) is dropped, counted, and the next one in the
 *   stream is taken, up to `retries` times; then the last fault is thrown.
 * - a stream with no report for `stallMs` is stalled: HidTimeoutError, after a stop request.
 * - unplugged: the port's 'vanished' rejects what is in flight with HidVanishedError, the camera emits 'vanished'
 *   and tries to open the same device again every `reopenIntervalMs`, emitting 'returned' when it is back; a call
 *   made meanwhile tries one reopen itself before failing.
 */
import { EventEmitter } from 'node:events';
import { HidProtocolError, HidTimeoutError, HidVanishedError } from './errors.ts';
import {
  decodeCapture,
  decodeDeviceInfo,
  decodeExposure,
  decodeIllumination,
  encodeCapture,
  encodeExposure,
  encodeIllumination,
  ImageAssembler,
  REPORT,
  REPORT_LENGTH,
  type Exposure,
  type Illumination,
  type IrisDeviceInfo,
} from './iris-protocol.ts';
import { ReportStream, type HidBinding, type HidPort, type HidSelector } from './transport.ts';

/** Our iris camera's USB ids (a development vendor id: pid.codes' test range). */
export const IRIS_CAMERA_IDS = Object.freeze({ vendorId: 0x1209, productId: 0xb1a5 });

export interface IrisFrame {
  width: number;
  height: number;
  data: Uint8Array;
  /** The device's image sequence number, the images dropped before it, and the time from start to image. */
  seq: number;
  dropped: number;
  ms: number;
}

export interface IrisCameraOptions {
  /** Default: our vendor/product id. */
  selector?: HidSelector;
  stallMs?: number;
  retries?: number;
  autoReopen?: boolean;
  reopenIntervalMs?: number;
}

export class IrisCamera extends EventEmitter {
  private port: HidPort | null = null;
  private stream: ReportStream | null = null;
  private lock: Promise<unknown> = Promise.resolve();
  private reopenTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private cachedInfo: IrisDeviceInfo | null = null;
  readonly stats = { images: 0, dropped: 0, faults: {} as Record<string, number>, reopens: 0 };
  readonly selector: HidSelector;
  private readonly stallMs: number;
  private readonly retries: number;
  private readonly autoReopen: boolean;
  private readonly reopenIntervalMs: number;

  private constructor(private readonly binding: HidBinding, o: IrisCameraOptions) {
    super();
    this.selector = o.selector ?? IRIS_CAMERA_IDS;
    this.stallMs = o.stallMs ?? 500;
    this.retries = o.retries ?? 3;
    this.autoReopen = o.autoReopen ?? true;
    this.reopenIntervalMs = o.reopenIntervalMs ?? 250;
  }

  static async open(binding: HidBinding, o: IrisCameraOptions = {}): Promise<IrisCamera> {
    const cam = new IrisCamera(binding, o);
    await cam.attach();
    return cam;
  }

  get isOpen(): boolean {
    return this.port?.isOpen ?? false;
  }

  private async attach(): Promise<void> {
    const port = await this.binding.open(this.selector);
    this.port = port;
    this.stream = new ReportStream(port);
    port.on('vanished', (e) => {
      if (this.port !== port) return;
      this.port = null;
      this.stream = null;
      if (this.closed) return;
      this.emit('vanished', e);
      if (this.autoReopen) this.scheduleReopen();
    });
    this.cachedInfo = decodeDeviceInfo(await port.getFeatureReport(REPORT.deviceInfo, REPORT_LENGTH.deviceInfo));
  }

  private scheduleReopen(): void {
    if (this.reopenTimer || this.closed) return;
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = null;
      void this.serial(async () => {
        if (this.port || this.closed) return;
        try {
          await this.attach();
          this.stats.reopens++;
          this.emit('returned');
        } catch {
          this.scheduleReopen();
        }
      });
    }, this.reopenIntervalMs);
    this.reopenTimer.unref();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => {});
    return run;
  }

  private async ready(): Promise<{ port: HidPort; stream: ReportStream }> {
    if (this.closed) throw new HidVanishedError(describe(this.selector), 'the camera was closed');
    if (!this.port) {
      try {
        await this.attach();
        this.stats.reopens++;
        this.emit('returned');
      } catch (e) {
        if (this.autoReopen) this.scheduleReopen();
        throw new HidVanishedError(describe(this.selector), 'it has not come back', e);
      }
    }
    return { port: this.port!, stream: this.stream! };
  }

  info(): Promise<IrisDeviceInfo> {
    return this.serial(async () => {
      await this.ready();
      return this.cachedInfo!;
    });
  }

  getIllumination(): Promise<Illumination> {
    return this.serial(async () => decodeIllumination(await (await this.ready()).port.getFeatureReport(REPORT.illumination, REPORT_LENGTH.illumination)));
  }

  async setIllumination(i: Illumination): Promise<void> {
    const report = encodeIllumination(i);
    return this.serial(async () => (await this.ready()).port.sendFeatureReport(report));
  }

  getExposure(): Promise<Exposure> {
    return this.serial(async () => decodeExposure(await (await this.ready()).port.getFeatureReport(REPORT.exposure, REPORT_LENGTH.exposure)));
  }

  async setExposure(e: Exposure): Promise<void> {
    const report = encodeExposure(e);
    return this.serial(async () => (await this.ready()).port.sendFeatureReport(report));
  }

  /** One image; width/height 0 = the sensor's own size. */
  capture(o: { width?: number; height?: number; retries?: number; stallMs?: number } = {}): Promise<IrisFrame> {
    return this.serial(async () => {
      const { port, stream } = await this.ready();
      const stallMs = o.stallMs ?? this.stallMs;
      const retries = o.retries ?? this.retries;
      const assembler = new ImageAssembler();
      const t0 = performance.now();
      stream.clear();
      await port.sendFeatureReport(encodeCapture({ streaming: true, width: o.width ?? 0, height: o.height ?? 0 }));
      let dropped = 0;
      try {
        for (;;) {
          const report = await stream.next(stallMs, 'iris camera image stream stalled');
          let image;
          try {
            image = assembler.push(report);
          } catch (e) {
            if (!(e instanceof HidProtocolError)) throw e;
            dropped++;
            this.stats.dropped++;
            this.stats.faults[e.fault] = (this.stats.faults[e.fault] ?? 0) + 1;
            this.emit('retry', e);
            if (dropped > retries) throw e;
            continue;
          }
          if (image) {
            this.stats.images++;
            return { ...image, dropped, ms: performance.now() - t0 };
          }
        }
      } finally {
        // Stop streaming whatever happened (a vanished device needs no stop).
        if (port.isOpen) await port.sendFeatureReport(encodeCapture({ streaming: false, width: 0, height: 0 })).catch(() => {});
      }
    });
  }

  /** The device's capture state (streaming or not). */
  captureState(): Promise<{ streaming: boolean; width: number; height: number }> {
    return this.serial(async () => decodeCapture(await (await this.ready()).port.getFeatureReport(REPORT.capture, REPORT_LENGTH.capture)));
  }

  /** Resolves when the camera is back (or at once if open); rejects after `timeoutMs`. */
  waitUntilReturned(timeoutMs: number): Promise<void> {
    if (this.port) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.off('returned', on);
        reject(new HidTimeoutError('waiting for the iris camera to come back', timeoutMs));
      }, timeoutMs);
      const on = () => {
        clearTimeout(t);
        resolve();
      };
      this.once('returned', on);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    this.reopenTimer = null;
    const port = this.port;
    this.port = null;
    this.stream?.end();
    this.stream = null;
    await port?.close();
  }
}

function describe(s: HidSelector): string {
  return 'path' in s ? s.path : `${s.vendorId.toString(16)}:${s.productId.toString(16)}`;
}
