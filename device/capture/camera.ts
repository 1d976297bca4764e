/** The face capture device: a frame source of drivers/camera/ (v4l2, MJPEG over HTTP, a folder, the virtual camera). */
import { EventEmitter } from 'node:events';
import { CameraError, CameraTimeoutError, openFrameSource, type FrameSource } from '../../drivers/camera/index.ts';
import { abortable, CaptureTimeoutError, DeviceGoneError, ownCopy, type CaptureDevice, type CaptureDeviceEvents, type CapturedImage, type SensorInfo } from './types.ts';

export class CameraCaptureDevice extends EventEmitter<CaptureDeviceEvents> implements CaptureDevice {
  readonly modality = 'face' as const;
  readonly sensor: SensorInfo;
  private source: FrameSource | null = null;

  constructor(
    readonly spec: string,
    sensor?: Partial<SensorInfo>,
  ) {
    super();
    this.sensor = { make: 'biokiosk', model: 'camera', serial: spec.replace(/\/\/[^@/]*@/, '//').slice(0, 120), firmware: '1', ...sensor };
  }

  get description(): string {
    return this.source?.description ?? `camera ${this.sensor.serial}`;
  }

  get available(): boolean {
    return this.source !== null;
  }

  async open(): Promise<void> {
    if (!this.source) this.source = await openFrameSource(this.spec);
  }

  async capture(o: { timeoutMs: number; signal: AbortSignal }): Promise<CapturedImage> {
    await this.open();
    try {
      const frame = await abortable(this.source!.nextFrame(o.timeoutMs), o.signal);
      const bytes = ownCopy(frame.data);
      frame.data.fill(0);
      if (this.listenerCount('preview') > 0) this.emit('preview', bytes);
      return { modality: 'face', bytes, capturedAt: frame.receivedAt };
    } catch (e) {
      if (e instanceof CameraTimeoutError) throw new CaptureTimeoutError('no frame from the camera', o.timeoutMs);
      if (e instanceof CameraError) {
        // The source failed or ended: closed, so the next capture opens it again.
        const s = this.source;
        this.source = null;
        await s?.close().catch(() => {});
        this.emit('vanished', e.message);
        throw new DeviceGoneError(this.description, e.message, e);
      }
      throw e;
    }
  }

  async close(): Promise<void> {
    const s = this.source;
    this.source = null;
    await s?.close();
  }
}
