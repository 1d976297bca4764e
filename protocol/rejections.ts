/**
 * Why a message was refused. Each code is stable (verdicts carry it, logs and dashboards count it) and comes with
 * one human sentence; `Rejection` is the error every boundary check throws, so a caller maps it to a verdict
 * without guessing from message text.
 */
import { BiokioskError } from './errors.ts';

export const REJECTION_CODES = [
  'malformed',
  'oversized',
  'unknown_device',
  'revoked_device',
  'bad_signature',
  'expired',
  'not_yet_valid',
  'nonce_unknown',
  'nonce_reused',
  'replayed_seq',
  'untrusted_model',
  'template_undecryptable',
  'unsupported_modality',
  'no_enrollment',
  'bad_template',
] as const;

export type RejectionCode = (typeof REJECTION_CODES)[number];

export const REJECTION_SENTENCES: Readonly<Record<RejectionCode, string>> = {
  malformed: 'The message does not follow the protocol schema.',
  oversized: 'The message is larger than the protocol allows.',
  unknown_device: 'The message is signed by a key that is not registered for the device it names.',
  revoked_device: 'The signing device has been revoked.',
  bad_signature: 'The signature does not verify.',
  expired: 'The message was issued too long ago.',
  not_yet_valid: 'The message is dated in the future.',
  nonce_unknown: 'The challenge nonce was not issued by this verifier or has expired.',
  nonce_reused: 'The challenge nonce has already been used.',
  replayed_seq: 'The sequence number is not above the last one seen from this device.',
  untrusted_model: 'The template was made by a model the verifier does not trust.',
  template_undecryptable: 'The encrypted template cannot be decrypted.',
  unsupported_modality: 'The verifier does not handle this modality.',
  no_enrollment: 'The claimed subject has no enrolled template.',
  bad_template: 'The template is malformed or of an unknown format.',
};

const CODE_SET: ReadonlySet<string> = new Set(REJECTION_CODES);

export function isRejectionCode(s: unknown): s is RejectionCode {
  return typeof s === 'string' && CODE_SET.has(s);
}

/** A message refused at a boundary. `code` is the rejection code itself; `detail` says what exactly was wrong. */
export class Rejection extends BiokioskError {
  declare readonly code: RejectionCode;
  readonly detail: string;

  constructor(code: RejectionCode, detail: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, `${REJECTION_SENTENCES[code]} ${detail}`.trim(), { kind: 'input', ...options });
    this.detail = detail;
  }

  /** The `{ code, message }` pair a verdict's `reasons` array carries. */
  toReason(): { code: RejectionCode; message: string } {
    return { code: this.code, message: this.message.slice(0, MAX_REASON_MESSAGE) };
  }
}

/** Longest reason message a verdict carries (claims.ts bounds it to the same length). */
export const MAX_REASON_MESSAGE = 512;

export function isRejection(e: unknown, code?: RejectionCode): e is Rejection {
  return e instanceof Rejection && (code === undefined || e.code === code);
}
