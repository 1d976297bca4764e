/**
 * The fingerprint capture device: a ZFM-family module on a serial port (drivers/fingerprint/). It waits for a
 * finger, uploads the 8-bit image and hands it on as a PNG (what the fingerprint engine reads). The driver reopens
 * a port that vanished by itself; its `vanished` and `returned` events are passed on.
 */
import { EventEmitter } from 'node:events';
import sharp from 'sharp';
import { FingerprintSensor, NoFingerError, SensorVanishedError, type FingerprintSensorOptions } from '../../drivers/fingerprint/index.ts';
import { CaptureTimeoutError, DeviceGoneError, wipe, type CaptureDevice, type CaptureDeviceEvents, type CapturedImage, type SensorInfo } from './types.ts';

export class FingerprintCaptureDevice extends EventEmitter<CaptureDeviceEvents> implements CaptureDevice {
  readonly modality = 'fingerprint' as const;
  readonly sensor: SensorInfo;
  private readonly driver: FingerprintSensor;
  private opened = false;

  constructor(o: FingerprintSensorOptions & { sensor?: Partial<SensorInfo> }) {
    super();
    const { sensor, ...driverOptions } = o;
    this.driver = new FingerprintSensor(driverOptions);
    this.sensor = { make: 'ZFM', model: 'R30x', serial: o.path.slice(0, 120), firmware: '1', ...sensor };
    this.driver.on('vanished', (reason: string) => this.emit('vanished', String(reason)));
    this.driver.on('returned', () => this.emit('returned'));
  }

  get description(): string {
    return `fingerprint module on ${this.driver.path}`;
  }

  get available(): boolean {
    return this.driver.isOpen;
  }

  async open(): Promise<void> {
    if (this.opened && this.driver.isOpen) return;
    await this.driver.open();
    this.opened = true;
  }

  async capture(o: { timeoutMs: number; signal: AbortSignal }): Promise<CapturedImage> {
    await this.open();
    let gray: Uint8Array | null = null;
    try {
      const img = await this.driver.captureImage({ timeoutMs: o.timeoutMs, signal: o.signal });
      gray = img.data;
      // PNG without compression: the image never leaves this process, and zlib would cost more than it saves.
      const png = await sharp(Buffer.from(gray.buffer, gray.byteOffset, gray.byteLength), { raw: { width: img.width, height: img.height, channels: 1 } }).png({ compressionLevel: 0 }).toBuffer();
      const bytes = new Uint8Array(png);
      png.fill(0);
      return { modality: 'fingerprint', bytes, capturedAt: Date.now() };
    } catch (e) {
      if (e instanceof NoFingerError) throw new CaptureTimeoutError('no finger on the sensor', o.timeoutMs);
      if (e instanceof SensorVanishedError) throw new DeviceGoneError(this.description, e.message, e);
      throw e;
    } finally {
      wipe(gray);
    }
  }

  async close(): Promise<void> {
    this.opened = false;
    await this.driver.close();
  }
}
