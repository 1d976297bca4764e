/**
 * What every camera driver hands to the rest of biokiosk: encoded images (JPEG for MJPEG sources, whatever the
 * file is for a directory), never decoded pixels and never templates. Decoding and extraction happen in models/.
 */
import { BiokioskError, type ErrorKind } from '../../protocol/errors.ts';

export interface Frame {
  /** The encoded image: a whole JPEG for MJPEG sources, the file's bytes for a directory source. */
  data: Buffer;
  /** image/jpeg, image/png, ... */
  mime: string;
  /** 1 for the first frame the source received, counting every frame received (dropped ones too). */
  seq: number;
  /** When the driver received the frame's last byte, ms since the epoch. */
  receivedAt: number;
  /** The source's description, e.g. "v4l2:/dev/video0". */
  source: string;
}

/** Counters a source keeps so a kiosk can log why frames went missing. */
export interface FrameSourceStats {
  /** Frames received from the device (whether or not a consumer took them). */
  received: number;
  /** Frames thrown away because the consumer was slower than the camera (oldest dropped first). */
  dropped: number;
  /** Frames thrown away because they exceeded the size bound. */
  oversize: number;
  /** Frames thrown away because their structure was broken (truncated, bad marker). */
  corrupt: number;
}

export interface FrameSource {
  /** Names the source for messages and logs (credentials never included). */
  readonly description: string;
  /** Starts the source. Resolves once the first frame has arrived, so a bad device fails here, not later. */
  open(): Promise<void>;
  /**
   * The next frame (the oldest one queued). Rejects with CameraTimeoutError when none arrives within timeoutMs
   * (the source stays open: a caller may retry or close), and with CameraError when the source failed or ended.
   */
  nextFrame(timeoutMs?: number): Promise<Frame>;
  /** Frames until the source ends; throws CameraTimeoutError / CameraError like nextFrame. Breaking out does not close the source. */
  frames(): AsyncIterable<Frame>;
  stats(): FrameSourceStats;
  /** Stops the source and releases the device (kills ffmpeg, drops the HTTP connection). Idempotent. */
  close(): Promise<void>;
}

/** A camera that sent nothing for too long. The machine's (or the camera's) fault, not the caller's. */
export class CameraTimeoutError extends BiokioskError {
  /** `what` names what did not come, e.g. "frame", "first frame", "HTTP response". */
  constructor(source: string, timeoutMs: number, what = 'frame') {
    super('CameraTimeout', `camera ${source}: no ${what} within ${timeoutMs} ms`, {
      kind: 'internal',
      details: { source, timeoutMs },
    });
  }
}

/**
 * Why a source stopped: `failed` (could not start, or died: ffmpeg's last stderr lines are in the message),
 * `ended` (a finite source ran out, or the camera closed its stream cleanly), `closed` (close() was called).
 */
export type CameraErrorReason = 'failed' | 'ended' | 'closed';

export class CameraError extends BiokioskError {
  readonly reason: CameraErrorReason;

  constructor(
    source: string,
    reason: CameraErrorReason,
    message: string,
    options: { kind?: ErrorKind; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super('CameraError', `camera ${source}: ${message}`, {
      kind: options.kind ?? 'internal',
      cause: options.cause,
      details: { source, reason, ...options.details },
    });
    this.reason = reason;
  }
}

/** A camera setting that cannot work: a bad spec string, a bad option, an empty image folder. The caller's fault. */
export class CameraConfigError extends BiokioskError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('BadCameraConfig', message, { kind: 'input', details });
  }
}

export function isCameraEnded(e: unknown): boolean {
  return e instanceof CameraError && e.reason === 'ended';
}

/** The frames() of every source: nextFrame until the source ends cleanly; failures and timeouts propagate. */
export async function* iterateFrames(source: FrameSource, timeoutMs?: number): AsyncGenerator<Frame, void, undefined> {
  for (;;) {
    let frame: Frame;
    try {
      frame = await source.nextFrame(timeoutMs);
    } catch (e) {
      if (isCameraEnded(e)) return;
      throw e;
    }
    yield frame;
  }
}
