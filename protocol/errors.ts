/**
 * Typed errors shared by every part of biokiosk.
 *
 * `kind` tells a caller whose fault it was: `input` (bad usage, a bad file, a bad message: exit code 2 on the
 * CLI) or `internal` (our bug or the machine's: exit code 1). `code` is a stable name for scripts and logs.
 */
export type ErrorKind = 'input' | 'internal';

export class BiokioskError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: { kind?: ErrorKind; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = code;
    this.code = code;
    this.kind = options.kind ?? 'input';
    this.details = options.details;
  }

  toJSON(): { code: string; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

/** Bad command-line usage or configuration. */
export class UsageError extends BiokioskError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('BadUsage', message, { kind: 'input', details });
  }
}

/** An image that cannot be decoded: unreadable, truncated, not an image, or too large. */
export class BadImageError extends BiokioskError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('BadImage', message, { kind: 'input', ...options });
  }
}

/** A template that is malformed, of an unknown format, or made by a model the reader does not trust. */
export class BadTemplateError extends BiokioskError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('BadTemplate', message, { kind: 'input', details });
  }
}

export function isBiokioskError(e: unknown): e is BiokioskError {
  return e instanceof BiokioskError;
}
