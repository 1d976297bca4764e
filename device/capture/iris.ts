/**
 * The iris capture device: the USB HID iris camera of drivers/hid/ (our vendor protocol). It hands the 8-bit NIR
 * image on as a PNG (what the iris engine reads); the camera's `vanished` and `returned` events are passed on.
 */
import { EventEmitter } from 'node:events';
import sharp from 'sharp';
import { HidTimeoutError, HidVanishedError } from '../../drivers/hid/errors.ts';
import type { IrisCamera } from '../../drivers/hid/iris-camera.ts';
import { abortable, CaptureTimeoutError, DeviceGoneError, wipe, type CaptureDevice, type CaptureDeviceEvents, type CapturedImage, type SensorInfo } from './types.ts';

export class IrisCaptureDevice extends EventEmitter<CaptureDeviceEvents> implements CaptureDevice {
  readonly modality = 'iris' as const;
  private present = true;

  constructor(
    private readonly camera: IrisCamera,
    readonly sensor: SensorInfo,
  ) {
    super();
    camera.on('vanished', (e: unknown) => {
      this.present = false;
      this.emit('vanished', e instanceof Error ? e.message : String(e));
    });
    camera.on('returned', () => {
      this.present = true;
      this.emit('returned');
    });
  }

  /** Opens the camera's device info for the attestation's sensor claim. */
  static async fromCamera(camera: IrisCamera): Promise<IrisCaptureDevice> {
    const info = await camera.info();
    return new IrisCaptureDevice(camera, { make: info.make, model: info.model, serial: info.serial, firmware: info.firmware });
  }

  get description(): string {
    return `iris camera ${this.sensor.make} ${this.sensor.model} (${this.sensor.serial})`;
  }

  get available(): boolean {
    return this.present;
  }

  async open(): Promise<void> {}

  async capture(o: { timeoutMs: number; signal: AbortSignal }): Promise<CapturedImage> {
    let frame;
    try {
      frame = await abortable(this.camera.capture({ stallMs: Math.min(o.timeoutMs, 5000) }), o.signal);
    } catch (e) {
      if (e instanceof HidTimeoutError) throw new CaptureTimeoutError('no image from the iris camera', o.timeoutMs);
      if (e instanceof HidVanishedError) throw new DeviceGoneError(this.description, e.message, e);
      throw e;
    }
    try {
      const png = await sharp(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength), { raw: { width: frame.width, height: frame.height, channels: 1 } }).png({ compressionLevel: 0 }).toBuffer();
      const bytes = new Uint8Array(png);
      png.fill(0);
      return { modality: 'iris', bytes, capturedAt: Date.now() };
    } finally {
      wipe(frame.data);
    }
  }

  async close(): Promise<void> {
    await this.camera.close();
  }
}
