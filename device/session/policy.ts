/**
 * A site's policy for verification sessions: which modalities are tried, in what order, how many captures each
 * gets and how long to wait for each, whether an online check (a verifier's nonce) is required, and the session's
 * other timeouts. Only fitted modalities (a capture device present) can be in the order.
 */
import type { Modality } from '../../protocol/claims.ts';
import { BiokioskError } from '../../protocol/errors.ts';

export interface ModalityStep {
  modality: Modality;
  /** Captures tried before falling back to the next modality (frames for a camera, placements for a finger). */
  maxCaptures: number;
  /** How long one capture may wait for something to capture. */
  captureTimeoutMs: number;
}

/** required: no verdict without a verifier's nonce (fails to the counter when none comes); when_online: ask when connected; never. */
export type NoncePolicy = 'required' | 'when_online' | 'never';

export interface SitePolicy {
  steps: ModalityStep[];
  nonce: NoncePolicy;
  /** Waiting for the subject id (typed or scanned). */
  identifyTimeoutMs: number;
  nonceTimeoutMs: number;
  /** Waiting for the verdict; then the attempt is reported "queued" and settled when it comes. */
  verdictTimeoutMs: number;
  /** How long the result stays before the session clears. */
  resultMs: number;
  /** required: no capture before the person consents (the screen asks); none: the caller has (the CLI). */
  consent: 'required' | 'none';
  /** The version of the consent text shown (logged with the decision). */
  consentText: string;
  /** Waiting for the consent answer. */
  consentTimeoutMs: number;
}

export interface SitePolicyInput {
  order?: Modality[];
  maxCaptures?: Partial<Record<Modality, number>>;
  captureTimeoutMs?: Partial<Record<Modality, number>>;
  nonce?: NoncePolicy;
  identifyTimeoutMs?: number;
  nonceTimeoutMs?: number;
  verdictTimeoutMs?: number;
  resultMs?: number;
  consent?: 'required' | 'none';
  consentText?: string;
  consentTimeoutMs?: number;
}

export class PolicyError extends BiokioskError {
  constructor(message: string) {
    super('BadPolicy', message, { kind: 'input' });
  }
}

const DEFAULT_CAPTURES: Record<Modality, number> = { face: 5, fingerprint: 3, iris: 5 };
const DEFAULT_CAPTURE_TIMEOUT: Record<Modality, number> = { face: 5000, fingerprint: 15_000, iris: 5000 };

function positive(name: string, v: number | undefined, fallback: number, max: number): number {
  const n = v ?? fallback;
  if (!Number.isInteger(n) || n < 0 || n > max) throw new PolicyError(`${name} must be an integer from 0 to ${max}, got ${v}`);
  return n;
}

/** The policy for the modalities fitted here; the order defaults to face, fingerprint, iris among those fitted. */
export function sitePolicy(input: SitePolicyInput, fitted: readonly Modality[]): SitePolicy {
  const order = input.order ?? (['face', 'fingerprint', 'iris'] as Modality[]).filter((m) => fitted.includes(m));
  if (order.length === 0) throw new PolicyError(`no capture device is fitted for any modality of the policy (fitted: ${fitted.join(', ') || 'none'})`);
  const seen = new Set<Modality>();
  for (const m of order) {
    if (!fitted.includes(m)) throw new PolicyError(`the policy tries ${m}, but no ${m} capture device is fitted`);
    if (seen.has(m)) throw new PolicyError(`the policy lists ${m} twice`);
    seen.add(m);
  }
  if (input.nonce !== undefined && !['required', 'when_online', 'never'].includes(input.nonce)) throw new PolicyError(`nonce must be required, when_online or never, got ${input.nonce}`);
  return {
    steps: order.map((m) => ({
      modality: m,
      maxCaptures: Math.max(1, positive(`maxCaptures.${m}`, input.maxCaptures?.[m], DEFAULT_CAPTURES[m], 100)),
      captureTimeoutMs: positive(`captureTimeoutMs.${m}`, input.captureTimeoutMs?.[m], DEFAULT_CAPTURE_TIMEOUT[m], 600_000),
    })),
    nonce: input.nonce ?? 'when_online',
    identifyTimeoutMs: positive('identifyTimeoutMs', input.identifyTimeoutMs, 120_000, 3_600_000),
    nonceTimeoutMs: positive('nonceTimeoutMs', input.nonceTimeoutMs, 5000, 600_000),
    verdictTimeoutMs: positive('verdictTimeoutMs', input.verdictTimeoutMs, 10_000, 3_600_000),
    resultMs: positive('resultMs', input.resultMs, 0, 600_000),
    consent: consentMode(input.consent),
    consentText: consentText(input.consentText),
    consentTimeoutMs: positive('consentTimeoutMs', input.consentTimeoutMs, 120_000, 3_600_000),
  };
}

function consentMode(v: string | undefined): 'required' | 'none' {
  if (v === undefined || v === 'none') return 'none';
  if (v === 'required') return 'required';
  throw new PolicyError(`consent must be required or none, got ${v}`);
}

function consentText(v: string | undefined): string {
  const t = v ?? 'consent-biometric/1';
  if (!/^[a-z0-9][a-z0-9._-]{0,31}\/[0-9]{1,4}$/.test(t)) throw new PolicyError(`consentText must look like 'name/version', e.g. 'consent-biometric/1', got ${v}`);
  return t;
}
