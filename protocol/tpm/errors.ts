/**
 * The TPM driver's errors. Three kinds, because a caller reacts differently to each:
 * - `TpmError`: the TPM answered with a non-zero response code (decoded into the spec's name and a sentence);
 * - `TpmFormatError`: the bytes that came back are not a well-formed response (truncated, wrong sizes, junk);
 * - `TpmTransportError`: the device or socket failed, timed out, or framed a response we refuse to read.
 * All three extend `TpmFailure`, so `catch (e) { if (e instanceof TpmFailure) ... }` covers the driver.
 */
import { describeRc, type RcInfo } from './rc.ts';

export class TpmFailure extends Error {}

/** A TPM response code other than TPM_RC_SUCCESS. */
export class TpmError extends TpmFailure {
  /** The raw response code as the TPM returned it (e.g. 0x902, or 0x18b for handle 1's TPM_RC_HANDLE). */
  readonly code: number;
  /** The base code with the handle/parameter/session number stripped (e.g. 0x08b for TPM_RC_HANDLE). */
  readonly baseCode: number;
  /** The spec's name, e.g. `TPM_RC_OBJECT_MEMORY`. */
  readonly rcName: string;
  /** A sentence for a person, e.g. "out of object slots; flush transient handles". */
  readonly description: string;
  /** Which command failed, e.g. `TPM2_Load`. */
  readonly command: string;
  readonly info: RcInfo;

  constructor(code: number, command: string) {
    const info = describeRc(code);
    super(`${command} failed: 0x${code.toString(16).padStart(3, '0')} ${info.name}: ${info.description}${info.where ? ` (${info.where})` : ''}`);
    this.name = 'TpmError';
    this.code = code;
    this.baseCode = info.base;
    this.rcName = info.name;
    this.description = info.description;
    this.command = command;
    this.info = info;
  }
}

/** A response that does not parse: names what was wrong and where. */
export class TpmFormatError extends TpmFailure {
  constructor(message: string) {
    super(`malformed TPM response: ${message}`);
    this.name = 'TpmFormatError';
  }
}

/** The device or socket failed, timed out, or sent a frame outside the bounds we accept. */
export class TpmTransportError extends TpmFailure {
  /** True when the connection is gone (worth reconnecting), false for e.g. a timeout on a live link. */
  readonly connectionLost: boolean;
  constructor(message: string, options: { connectionLost?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TpmTransportError';
    this.connectionLost = options.connectionLost ?? false;
  }
}

/** A TPM setting string that does not parse. */
export class TpmConfigError extends TpmFailure {
  constructor(message: string) {
    super(message);
    this.name = 'TpmConfigError';
  }
}
