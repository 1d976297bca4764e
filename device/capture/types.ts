/**
 * Capture devices, one per modality, behind one interface: the session asks for an image and gets an encoded one
 * (JPEG from a camera, PNG from a fingerprint module), never a template: extraction is models/' job. Each image is
 * the session's to zero when it is done with it (`wipe`).
 */
import { EventEmitter } from 'node:events';
import type { Modality } from '../../protocol/claims.ts';
import { BiokioskError } from '../../protocol/errors.ts';

export interface SensorInfo {
  make: string;
  model: string;
  serial: string;
  firmware: string;
}

export interface CapturedImage {
  modality: Modality;
  /** The encoded image, in a buffer of its own (wiped by the session when it is cleared). */
  bytes: Uint8Array;
  capturedAt: number;
}

export interface CaptureDeviceEvents {
  /** The device went away (unplugged, process died): the session in capture ends with a clear event. */
  vanished: [reason: string];
  /** It is back and usable again. */
  returned: [];
  /**
   * A copy of what a capture just saw, for the kiosk's own screen only (served on localhost, never stored, never
   * sent): the listener must copy what it keeps, the buffer is wiped by the session.
   */
  preview: [image: Uint8Array];
}

export interface CaptureDevice extends EventEmitter<CaptureDeviceEvents> {
  readonly modality: Modality;
  readonly description: string;
  readonly sensor: SensorInfo;
  readonly available: boolean;
  open(): Promise<void>;
  /**
   * One image, waiting up to `timeoutMs` for something to capture (a frame, a finger). Rejects with
   * CaptureTimeoutError, DeviceGoneError, or the signal's reason when aborted.
   */
  capture(o: { timeoutMs: number; signal: AbortSignal }): Promise<CapturedImage>;
  close(): Promise<void>;
}

/** Nothing to capture within the time the policy gives (no finger placed, no frame). */
export class CaptureTimeoutError extends BiokioskError {
  constructor(what: string, timeoutMs: number) {
    super('CaptureTimeout', `${what} within ${timeoutMs} ms`, { kind: 'input', details: { timeoutMs } });
  }
}

/** The device went away during a capture. */
export class DeviceGoneError extends BiokioskError {
  constructor(description: string, reason: string, cause?: unknown) {
    super('DeviceGone', `${description} went away: ${reason}`, { kind: 'internal', cause, details: { device: description } });
  }
}

/** Copies into a buffer of its own (so wiping it cannot touch a pool or a shared frame). */
export function ownCopy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** Overwrites biometric bytes before they are dropped. */
export function wipe(...buffers: Array<Uint8Array | null | undefined>): void {
  for (const b of buffers) b?.fill(0);
}

/** Rejects when the signal aborts (for waits that cannot take a signal themselves). */
export function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
