/**
 * The virtual iris camera: the device side of drivers/hid/iris-protocol.ts. It answers the feature reports,
 * and while capture control says "streaming" it sends image after image (begin, data chunks, end with the CRC-32)
 * at `reportRate` reports per second (default 8,000: one 1,024-byte report per 125 us high-speed microframe, the
 * most a high-speed interrupt endpoint with one transaction per microframe carries).
 *
 * Images: gray images given directly, loaded from files (`loadIrisImages`), or synthetic irises (models/iris/synth).
 * Faults are one-shot and apply to the next image sent: a dropped, duplicated or reordered data report, a bad CRC,
 * a stall (nothing more after n reports, until capture is started again), an unplug after n reports.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { encodeCapture, encodeDeviceInfo, encodeExposure, encodeIllumination, imageReports, PROTOCOL_VERSION, REPORT, decodeCapture, decodeExposure, decodeIllumination, type Exposure, type Illumination } from '../hid/iris-protocol.ts';
import { IRIS_CAMERA_IDS } from '../hid/iris-camera.ts';
import { VirtualHidDevice } from './hid-binding.ts';

export interface GrayFrame {
  width: number;
  height: number;
  data: Uint8Array;
}

export type IrisCameraFault =
  | { type: 'drop'; index: number }
  | { type: 'duplicate'; index: number }
  | { type: 'reorder'; index: number }
  | { type: 'badCrc' }
  | { type: 'stall'; afterReports: number }
  | { type: 'unplug'; afterReports: number };

export interface VirtualIrisCameraOptions {
  images: GrayFrame[];
  path?: string;
  serial?: string;
  reportRate?: number;
}

/** Decodes image files to 8-bit gray frames (any format sharp reads). */
export async function loadIrisImages(files: string[]): Promise<GrayFrame[]> {
  return Promise.all(
    files.map(async (f) => {
      const { data, info } = await sharp(await readFile(f)).removeAlpha().grayscale().raw().toBuffer({ resolveWithObject: true });
      return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
    }),
  );
}

export class VirtualIrisCamera extends VirtualHidDevice {
  private readonly images: GrayFrame[];
  private readonly reportRate: number;
  private illumination: Illumination = { level: 60, wavelengthNm: 850 };
  private exposure: Exposure = { microseconds: 8000, gain: 16 };
  private streaming = false;
  private seq = 0;
  private next = 0;
  private queue: Uint8Array[] = [];
  private faults: IrisCameraFault[] = [];
  private stalled = false;
  private unplugAt = -1;
  private sentThisImage = 0;
  private timer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private sent = 0;
  /** Counters for tests and benchmarks. */
  readonly stats = { images: 0, reports: 0, starts: 0, stops: 0 };

  constructor(o: VirtualIrisCameraOptions) {
    super({ path: o.path ?? '/dev/hidraw-virtual-iris0', ...IRIS_CAMERA_IDS, manufacturer: 'biokiosk', product: 'Virtual NIR iris camera', serialNumber: o.serial ?? 'VIRT-0001', usagePage: 0xff00, usage: 0x01, interface: 0 });
    if (o.images.length === 0) throw new RangeError('the virtual iris camera needs at least one image');
    this.images = o.images;
    this.reportRate = o.reportRate ?? 8000;
  }

  arm(f: IrisCameraFault): void {
    this.faults.push(f);
  }

  get isStreaming(): boolean {
    return this.streaming;
  }

  protected getFeature(id: number): Uint8Array | null {
    const first = this.images[0]!;
    switch (id) {
      case REPORT.deviceInfo:
        return encodeDeviceInfo({ protocol: PROTOCOL_VERSION, make: 'biokiosk', model: 'virtual-nir-1', serial: this.info.serialNumber ?? '', firmware: '1.2.3', maxWidth: first.width, maxHeight: first.height });
      case REPORT.illumination:
        return encodeIllumination(this.illumination);
      case REPORT.exposure:
        return encodeExposure(this.exposure);
      case REPORT.capture:
        return encodeCapture({ streaming: this.streaming, width: first.width, height: first.height });
      default:
        return null;
    }
  }

  protected setFeature(d: Uint8Array): boolean {
    try {
      switch (d[0]) {
        case REPORT.illumination:
          this.illumination = decodeIllumination(d);
          return this.illumination.level <= 100;
        case REPORT.exposure:
          this.exposure = decodeExposure(d);
          return true;
        case REPORT.capture: {
          const c = decodeCapture(d);
          if (c.streaming) this.start();
          else this.stop();
          return true;
        }
        default:
          return false;
      }
    } catch {
      return false;
    }
  }

  protected override onIdle(): void {
    this.stop();
  }

  private start(): void {
    this.stats.starts++;
    this.streaming = true;
    this.stalled = false;
    this.queue = [];
    this.startedAt = performance.now();
    this.sent = 0;
    this.pump();
  }

  private stop(): void {
    if (this.streaming) this.stats.stops++;
    // An image cut off by the stop was never delivered: it is the one sent first at the next start.
    if (this.queue.length > 0) this.next = (this.next + this.images.length - 1) % this.images.length;
    this.streaming = false;
    this.queue = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The next image's reports, with the armed faults applied. */
  private nextImage(): Uint8Array[] {
    const img = this.images[this.next++ % this.images.length]!;
    const reports = imageReports(this.seq++, img.width, img.height, img.data);
    this.stats.images++;
    this.sentThisImage = 0;
    this.unplugAt = -1;
    const faults = this.faults;
    this.faults = [];
    for (const f of faults) {
      // Data reports are 1..n-2 (0 is begin, the last is end); `index` counts data reports from 0.
      const at = (i: number) => Math.min(reports.length - 2, 1 + i);
      if (f.type === 'drop') reports.splice(at(f.index), 1);
      else if (f.type === 'duplicate') reports.splice(at(f.index), 0, reports[at(f.index)]!);
      else if (f.type === 'reorder') {
        const i = at(f.index);
        [reports[i], reports[i + 1]] = [reports[i + 1]!, reports[i]!];
      } else if (f.type === 'badCrc') {
        const end = reports[reports.length - 1]!;
        end[3]! ^= 0xff;
      } else if (f.type === 'stall') reports.splice(f.afterReports);
      else if (f.type === 'unplug') this.unplugAt = f.afterReports;
      if (f.type === 'stall') this.stalled = true;
    }
    return reports;
  }

  private pump(): void {
    this.timer = null;
    if (!this.streaming || !this.plugged) return;
    const due = Math.floor(((performance.now() - this.startedAt) * this.reportRate) / 1000) - this.sent;
    for (let k = 0; k < Math.min(due, 256); k++) {
      if (this.queue.length === 0) {
        if (this.stalled) return; // a stalled stream sends nothing until capture starts again
        this.queue = this.nextImage();
      }
      if (this.unplugAt >= 0 && this.sentThisImage >= this.unplugAt) {
        this.unplug();
        return;
      }
      const r = this.queue.shift()!;
      this.sent++;
      this.sentThisImage++;
      this.stats.reports++;
      this.emitReport(r);
      if (!this.streaming) return;
    }
    if (this.queue.length === 0 && this.stalled) return;
    this.timer = setTimeout(() => this.pump(), 1);
  }
}
