/**
 * The hand-over between a camera (which produces frames at its own pace) and a consumer (which asks for them with
 * a timeout). Bounded: when the consumer is slower than the camera the oldest frames are dropped, so a kiosk
 * always works on a recent image and memory stays flat. Once the source stops (failed, ended, closed) the frames
 * still queued are delivered first, then every request gets the stop error.
 */
import { CameraTimeoutError, type Frame } from './types.ts';

interface Waiter {
  resolve(frame: Frame): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | undefined;
}

export class FrameQueue {
  /** Frames thrown away because the queue was full. */
  dropped = 0;
  private readonly frames: Frame[] = [];
  private readonly waiters: Waiter[] = [];
  private stopError: Error | null = null;

  constructor(
    private readonly source: string,
    private readonly capacity: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`frame queue capacity must be a positive integer, got ${capacity}`);
  }

  get stopped(): boolean {
    return this.stopError !== null;
  }

  get length(): number {
    return this.frames.length;
  }

  push(frame: Frame): void {
    if (this.stopError) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      if (waiter.timer) clearTimeout(waiter.timer);
      waiter.resolve(frame);
      return;
    }
    this.frames.push(frame);
    if (this.frames.length > this.capacity) {
      this.frames.shift();
      this.dropped++;
    }
  }

  /** Puts a frame taken with next() back at the front (open() peeks at the first frame this way). */
  unshift(frame: Frame): void {
    if (this.stopError) return;
    this.frames.unshift(frame);
    if (this.frames.length > this.capacity) {
      this.frames.shift();
      this.dropped++;
    }
  }

  /** Stops the queue: later pushes are ignored; after the queued frames, requests reject with error. First stop wins. */
  stop(error: Error, { discardQueued = false } = {}): void {
    if (this.stopError) return;
    this.stopError = error;
    if (discardQueued) this.frames.length = 0;
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(error);
    }
  }

  /** The oldest queued frame, or the next one to arrive; rejects with CameraTimeoutError after timeoutMs. */
  next(timeoutMs: number, what = 'frame'): Promise<Frame> {
    const queued = this.frames.shift();
    if (queued) return Promise.resolve(queued);
    if (this.stopError) return Promise.reject(this.stopError);
    return new Promise<Frame>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: undefined };
      if (Number.isFinite(timeoutMs)) {
        waiter.timer = setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new CameraTimeoutError(this.source, timeoutMs, what));
        }, Math.max(0, timeoutMs));
      }
      this.waiters.push(waiter);
    });
  }
}
