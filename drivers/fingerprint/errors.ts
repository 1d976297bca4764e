/**
 * The fingerprint driver's errors, all `FingerprintError` (a BiokioskError), so one `instanceof` covers the driver:
 * - `PacketError` and its three subclasses: bytes that are not a well-formed packet (checksum, length, packet id);
 * - `ConfirmationError`: the module answered with a non-zero confirmation code (named with the datasheet's meaning);
 * - `SensorTimeoutError`: no (complete, valid) packet within the per-packet timeout on a live link;
 * - `SensorVanishedError`: the port closed or failed under us (unplugged), or cannot be opened again;
 * - `NoFingerError`: nobody put a finger on the sensor before the capture timeout;
 * - `SensorNotFoundError`: discovery probed every candidate port and baud rate without an answer.
 */
import { BiokioskError, type ErrorKind } from '../../protocol/errors.ts';
import { describeConfirmation } from './confirmation.ts';

export class FingerprintError extends BiokioskError {
  constructor(code: string, message: string, options: { kind?: ErrorKind; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, { kind: options.kind ?? 'internal', cause: options.cause, details: options.details });
  }
}

/** Bytes that do not form a valid packet. */
export class PacketError extends FingerprintError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, { details });
  }
}

export class BadChecksumError extends PacketError {
  readonly expected: number;
  readonly actual: number;
  constructor(expected: number, actual: number) {
    super('FingerprintBadChecksum', `packet checksum 0x${hex(actual, 4)} does not match the computed 0x${hex(expected, 4)}`, { expected, actual });
    this.expected = expected;
    this.actual = actual;
  }
}

export class BadLengthError extends PacketError {
  readonly length: number;
  constructor(length: number, reason: string) {
    super('FingerprintBadLength', `packet length ${length}: ${reason}`, { length });
    this.length = length;
  }
}

export class UnknownPidError extends PacketError {
  readonly pid: number;
  constructor(pid: number) {
    super('FingerprintUnknownPid', `unknown packet identifier 0x${hex(pid, 2)}`, { pid });
    this.pid = pid;
  }
}

/** A packet that began (a header and some bytes) and then stopped: the rest never came within the timeout. */
export class TruncatedPacketError extends PacketError {
  readonly received: number;
  constructor(received: number, timeoutMs: number) {
    super('FingerprintTruncatedPacket', `truncated packet: ${received} bytes of a packet, then nothing for ${timeoutMs} ms`, { received, timeoutMs });
    this.received = received;
  }
}

/** A packet that is well-formed but not what the exchange calls for (wrong type, short payload, wrong image size). */
export class ProtocolError extends FingerprintError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('FingerprintProtocol', message, { details });
  }
}

/** A non-zero confirmation code. A wrong password is the caller's setting (kind input); the rest are the module's. */
export class ConfirmationError extends FingerprintError {
  readonly confirmation: number;
  readonly confirmationName: string;
  readonly meaning: string;
  readonly command: string;
  constructor(confirmation: number, command: string) {
    const info = describeConfirmation(confirmation);
    super(`Fingerprint${info.name}`, `${command}: module answered 0x${hex(confirmation, 2)} ${info.name}: ${info.meaning}`, {
      kind: confirmation === 0x13 || confirmation === 0x21 ? 'input' : 'internal',
      details: { confirmation, command },
    });
    this.confirmation = confirmation;
    this.confirmationName = info.name;
    this.meaning = info.meaning;
    this.command = command;
  }
}

export class SensorTimeoutError extends FingerprintError {
  constructor(what: string, timeoutMs: number, details?: Record<string, unknown>) {
    super('FingerprintTimeout', `${what}: no valid packet from the module within ${timeoutMs} ms`, { details: { timeoutMs, ...details } });
  }
}

export class SensorVanishedError extends FingerprintError {
  readonly path: string;
  constructor(path: string, reason: string, cause?: unknown) {
    super('SensorVanished', `fingerprint sensor on ${path} vanished: ${reason}`, { cause, details: { path } });
    this.path = path;
  }
}

export class NoFingerError extends FingerprintError {
  constructor(timeoutMs: number, polls: number) {
    super('NoFinger', `no finger on the sensor within ${timeoutMs} ms (${polls} polls)`, { kind: 'input', details: { timeoutMs, polls } });
  }
}

export class SensorNotFoundError extends FingerprintError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('SensorNotFound', message, { kind: 'input', details });
  }
}

export class FingerprintConfigError extends FingerprintError {
  constructor(message: string) {
    super('FingerprintConfig', message, { kind: 'input' });
  }
}

function hex(v: number, digits: number): string {
  return v.toString(16).padStart(digits, '0');
}
