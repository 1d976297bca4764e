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
  'verifier_error',
  'rate_limited',
  'self_test',
  // Decision reasons (issue 15): the scenario's policy, consent, behaviour signals, the staff's check by hand.
  'unknown_scenario',
  'scenario_not_allowed',
  'consent_missing',
  'modality_not_allowed',
  'nonce_required',
  'tpm_evidence_required',
  'second_factor_required',
  'impossible_travel',
  'device_rejection_rate',
  'too_many_failures',
  'step_up_unknown',
  'staff_override',
  'override_not_allowed',
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
  verifier_error: 'The verifier could not decide this message; it has been recorded for the operators.',
  rate_limited: 'The sender has sent more failing messages than allowed; its messages are dropped for a while.',
  self_test: 'A self-test attestation: checked and logged like any other, never matched against the gallery.',
  unknown_scenario: 'The verifier has no decision policy for the requested service.',
  scenario_not_allowed: 'This site is not allowed to request a verification for this service.',
  consent_missing: "The person's consent to this verification for this purpose was not given with the attempt.",
  modality_not_allowed: 'The policy for this service does not accept this kind of biometric.',
  nonce_required: 'This service requires an online check with a fresh challenge from the verifier.',
  tpm_evidence_required: 'This service requires a kiosk whose key is proven to live in a TPM.',
  second_factor_required: 'This service requires one more check of a different kind.',
  impossible_travel: 'The same identity was checked at another site too recently to have travelled here.',
  device_rejection_rate: 'This kiosk has had an unusual share of failed checks recently.',
  too_many_failures: 'Too many failed attempts for this identity: wait, or have the ID checked at the counter.',
  step_up_unknown: 'The additional check does not follow a request for one to this kiosk, or came too late.',
  staff_override: 'Staff checked the identity document by hand.',
  override_not_allowed: 'The policy for this service does not allow a check of the ID by hand instead.',
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
    const clean = sanitizeText(detail, MAX_DETAIL);
    super(code, `${REJECTION_SENTENCES[code]} ${clean}`.trim(), { kind: 'input', ...options });
    this.detail = clean;
  }

  /**
   * The `{ code, message }` pair a verdict's `reasons` array carries: the code's fixed sentence only. The detail
   * often quotes what the sender sent (header members, ids): it stays in the verifier's own records, so no
   * attacker string ever reaches a signed verdict (or makes one fail its schema).
   */
  toReason(): { code: RejectionCode; message: string } {
    return reasonFor(this.code);
  }
}

/** The reason a verdict carries for a code: the code and its fixed sentence. */
export function reasonFor(code: RejectionCode): { code: RejectionCode; message: string } {
  return { code, message: REJECTION_SENTENCES[code] };
}

/** Longest detail a rejection keeps (it goes to logs and the verifier's sampled-rejections table). */
export const MAX_DETAIL = 300;

/**
 * Text that came from outside, made safe to print, log and store: control characters, lone surrogates and
 * Unicode line/bidi controls become U+FFFD, and the result is cut to `max` UTF-16 units (never inside a pair).
 */
export function sanitizeText(s: string, max: number): string {
  const cleaned = String(s).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  if (cleaned.length <= max) return cleaned;
  const cut = /[\ud800-\udbff]/.test(cleaned[max - 1] ?? '') ? max - 1 : max;
  return cleaned.slice(0, cut) + '\u2026';
}

/** Longest reason message a verdict carries (claims.ts bounds it to the same length). */
export const MAX_REASON_MESSAGE = 512;

export function isRejection(e: unknown, code?: RejectionCode): e is Rejection {
  return e instanceof Rejection && (code === undefined || e.code === code);
}
