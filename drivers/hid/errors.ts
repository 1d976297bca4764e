/**
 * The HID drivers' errors, all `HidError` (a BiokioskError), so one `instanceof` covers them:
 * - `HidNotFoundError`: no device at that path / with that vendor and product id (kind input);
 * - `HidPermissionError`: the device exists but this user may not open it (udev rule missing; kind input);
 * - `HidVanishedError`: the device went away under us (unplugged), or the port was closed;
 * - `HidTimeoutError`: a stream stalled: no report within the timeout on an open device;
 * - `HidProtocolError`: reports that break the protocol (bad length, unknown id, out of sequence, bad CRC).
 */
import { BiokioskError, type ErrorKind } from '../../protocol/errors.ts';

export class HidError extends BiokioskError {
  constructor(code: string, message: string, o: { kind?: ErrorKind; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, { kind: o.kind ?? 'internal', cause: o.cause, details: o.details });
  }
}

export class HidNotFoundError extends HidError {
  constructor(what: string, details?: Record<string, unknown>) {
    super('HidNotFound', `no HID device ${what}`, { kind: 'input', details });
  }
}

export class HidPermissionError extends HidError {
  constructor(path: string, cause?: unknown) {
    super('HidPermissionDenied', `HID device ${path} exists but cannot be opened by this user (add a udev rule giving it access)`, { kind: 'input', cause, details: { path } });
  }
}

export class HidVanishedError extends HidError {
  constructor(path: string, reason: string, cause?: unknown) {
    super('HidVanished', `HID device ${path} vanished: ${reason}`, { cause, details: { path } });
  }
}

export class HidTimeoutError extends HidError {
  constructor(what: string, timeoutMs: number, details?: Record<string, unknown>) {
    super('HidTimeout', `${what}: no report within ${timeoutMs} ms`, { details: { timeoutMs, ...details } });
  }
}

/** Why an image transfer failed: each is detected and the image retried (iris-camera.ts). */
export type TransferFault = 'lost' | 'repeated' | 'reordered' | 'crc' | 'length' | 'malformed' | 'interrupted';

export class HidProtocolError extends HidError {
  readonly fault: TransferFault;
  constructor(fault: TransferFault, message: string, details?: Record<string, unknown>) {
    super('HidProtocol', message, { details: { fault, ...details } });
    this.fault = fault;
  }
}
