/**
 * The decision from several dimensions (THEKEY's BDMI): the biometric (the match, against the scenario's
 * threshold), the device (its key store, the nonce, its recent rejection rate), the scenario (is this site allowed
 * to ask for this service, with the person's consent for that purpose?) and behaviour (this identity's failures
 * across every kiosk in a sliding window, attempts at sites too far apart for the time between them).
 *
 * Pure: the verifier reads the attempts and step-ups under the decision lock (so every node sees every kiosk's
 * attempts), calls this once per attestation in order, and writes back what it returns in the same transaction.
 *
 * Outcomes: match; no_match; step_up (one more check of another modality, or the ID at the counter); locked (after
 * N failures, for a delay that doubles with each further failure, up to a maximum); rejected (the request itself
 * is not acceptable: scenario, consent, nonce, TPM). Each with the reason codes that led to it.
 */
import type { Consent, Decision, Eligibility, Modality, Override, VerdictDetail } from '../protocol/claims.ts';
import type { RejectionCode } from '../protocol/rejections.ts';
import { distanceKm, passesThreshold, type DecisionPolicy, type ScenarioPolicy } from './decision-policy.ts';
import type { EligibilitySource } from './eligibility.ts';
import type { AttemptRow, DeviceKeyStore, StepUpRow } from './store.ts';

export interface DecisionInput {
  now: number;
  attId: string;
  ueid: string;
  site: string;
  subject: string;
  modality: Modality;
  scenario: string | null;
  consent: Consent | null;
  hasNonce: boolean;
  keyStore: DeviceKeyStore;
  override: Override | null;
  stepOf: string | null;
  wantEligibility: boolean;
  /** The matcher's outcome (null for an override, which carries no template). */
  match: { decision: 'match' | 'no_match'; score: number; native: { value: number } | null } | null;
}

export interface DecisionOutput {
  decision: Decision;
  reasons: RejectionCode[];
  detail: VerdictDetail | undefined;
  /** The attempt to record for the behaviour signals (null: not an attempt at a biometric check). */
  attempt: AttemptRow | null;
  /** A step-up to keep for the next check. */
  stepUp: StepUpRow | null;
  /** A step-up this attempt used up. */
  consumed: string | null;
}

export interface DecisionContext {
  policy: DecisionPolicy | undefined;
  eligibility: EligibilitySource | undefined;
}

/** How far back a batch must read attempts for `policy`'s signals. */
export function attemptsHorizonMs(policy: DecisionPolicy): number {
  const l = policy.lockout;
  return Math.max((l.window_minutes * 60 + l.max_delay_seconds) * 1000, policy.travel.window_hours * 3_600_000, policy.device_rejections.window_minutes * 60_000);
}

/**
 * The lock of an identity from its attempts (oldest first): failures within the window of each failure, reset
 * by a match; reaching `max_failures` locks for `base_delay` doubled for each failure beyond, up to `max_delay`.
 */
export function lockState(attempts: readonly AttemptRow[], lockout: DecisionPolicy['lockout'], now: number): { failures: number; lockedUntil: number | null } {
  const windowMs = lockout.window_minutes * 60_000;
  let failures: number[] = [];
  let lockedUntil: number | null = null;
  for (const a of attempts) {
    if (a.outcome === 'match') {
      failures = [];
      lockedUntil = null;
      continue;
    }
    if (!a.failed) continue;
    failures = failures.filter((t) => t > a.at - windowMs);
    failures.push(a.at);
    if (failures.length >= lockout.max_failures) {
      const delayS = Math.min(lockout.max_delay_seconds, lockout.base_delay_seconds * 2 ** (failures.length - lockout.max_failures));
      lockedUntil = a.at + delayS * 1000;
    }
  }
  return { failures: failures.filter((t) => t > now - windowMs).length, lockedUntil: lockedUntil !== null && lockedUntil > now ? lockedUntil : null };
}

/** The signals that ask for one more check: impossible travel, a device failing too often. */
export function behaviourSignals(policy: DecisionPolicy, input: DecisionInput, subjectAttempts: readonly AttemptRow[], deviceAttempts: readonly AttemptRow[]): RejectionCode[] {
  const out: RejectionCode[] = [];
  const here = policy.sites[input.site];
  const travelSince = input.now - policy.travel.window_hours * 3_600_000;
  const last = [...subjectAttempts].reverse().find((a) => a.at >= travelSince && a.site !== null && a.site !== input.site);
  if (last && here?.lat !== undefined && here.lon !== undefined) {
    const there = policy.sites[last.site!];
    if (there?.lat !== undefined && there.lon !== undefined) {
      const km = distanceKm({ lat: here.lat, lon: here.lon }, { lat: there.lat, lon: there.lon });
      const hours = Math.max(input.now - last.at, 1) / 3_600_000;
      if (km / hours > policy.travel.max_km_per_hour) out.push('impossible_travel');
    }
  }
  const d = policy.device_rejections;
  const recent = deviceAttempts.filter((a) => a.at >= input.now - d.window_minutes * 60_000);
  if (recent.length >= d.min_attempts && recent.filter((a) => a.failed).length / recent.length > d.max_rate) out.push('device_rejection_rate');
  return out;
}

function refuse(code: RejectionCode, detail: VerdictDetail | undefined, consumed: string | null = null): DecisionOutput {
  return { decision: 'rejected', reasons: [code], detail, attempt: null, stepUp: null, consumed };
}

function eligibilityFor(ctx: DecisionContext, sp: ScenarioPolicy | undefined, scenario: string | null, input: DecisionInput): Eligibility | undefined {
  if (!ctx.eligibility) return undefined;
  if (!(sp?.eligibility || input.wantEligibility)) return undefined;
  const service = sp?.service ?? scenario;
  if (!service) return undefined;
  return ctx.eligibility.check(input.subject, service, input.now);
}

/**
 * Decides one attestation. `attempts` are the subject's and the device's attempts (oldest first, this batch's
 * earlier ones included); `stepUps` the pending step-ups by att_id.
 */
export function decide(ctx: DecisionContext, input: DecisionInput, attempts: readonly AttemptRow[], stepUps: ReadonlyMap<string, StepUpRow>): DecisionOutput {
  const { policy } = ctx;
  const attempt = (failed: boolean, outcome: string): AttemptRow => ({ subject: input.subject, ueid: input.ueid, site: input.site, at: input.now, failed, outcome });
  if (!policy) {
    // No decision policy: the matcher decides, as before policies existed; a staff override is logged and accepted.
    const eligibility = eligibilityFor(ctx, undefined, input.scenario, input);
    if (input.override) return { decision: 'match', reasons: ['staff_override'], detail: { scenario: input.scenario, policy_version: null, override: input.override, ...(eligibility ? { eligibility } : {}) }, attempt: null, stepUp: null, consumed: null };
    const decision = input.match?.decision ?? 'no_match';
    const detail = input.scenario !== null || (eligibility && decision === 'match') ? { scenario: input.scenario, policy_version: null, ...(eligibility && decision === 'match' ? { eligibility } : {}) } : undefined;
    return { decision, reasons: [], detail, attempt: null, stepUp: null, consumed: null };
  }
  const scenario = input.scenario ?? policy.default_scenario ?? null;
  const sp = scenario === null ? undefined : policy.scenarios[scenario];
  const base = { scenario: scenario !== null && sp ? scenario : null, policy_version: policy.version };
  if (!sp || scenario === null) return refuse('unknown_scenario', base);
  const kind = policy.sites[input.site]?.kind;
  if (kind === undefined || !sp.site_kinds.includes(kind)) return refuse('scenario_not_allowed', base);
  if (sp.tpm_required && input.keyStore !== 'tpm') return refuse('tpm_evidence_required', base);
  // The staff's check by hand takes no biometric: the biometric consent and the nonce are not its conditions.
  if (input.override) {
    if (!sp.override_allowed) return refuse('override_not_allowed', base);
    const eligibility = eligibilityFor(ctx, sp, scenario, input);
    return { decision: 'match', reasons: ['staff_override'], detail: { ...base, override: input.override, ...(eligibility ? { eligibility } : {}) }, attempt: null, stepUp: null, consumed: null };
  }
  if (sp.consent_required && (!input.consent || input.consent.purpose !== scenario)) return refuse('consent_missing', base);
  if (sp.nonce_required && !input.hasNonce) return refuse('nonce_required', base);
  if (!sp.modalities.includes(input.modality)) return refuse('modality_not_allowed', base);
  let row: StepUpRow | undefined;
  if (input.stepOf !== null) {
    row = stepUps.get(input.stepOf);
    if (!row || row.subject !== input.subject || row.ueid !== input.ueid || row.scenario !== scenario || row.expiresAt < input.now || row.done.includes(input.modality)) return refuse('step_up_unknown', base);
  }
  const consumed = row ? row.attId : null;
  const mine = attempts.filter((a) => a.subject === input.subject);
  const lock = lockState(mine, policy.lockout, input.now);
  const lockedAfterFailure = () => lockState([...mine, attempt(true, 'no_match')], policy.lockout, input.now).lockedUntil;
  if (lock.lockedUntil !== null) {
    // Refused while locked, and counted: trying again during the lock makes it longer.
    const until = lockedAfterFailure() ?? lock.lockedUntil;
    return { decision: 'locked', reasons: ['too_many_failures'], detail: { ...base, locked_until: Math.ceil(until / 1000) }, attempt: attempt(true, 'locked'), stepUp: null, consumed };
  }
  const m = input.match;
  if (!m || !passesThreshold(input.modality, m, sp.thresholds)) {
    const until = lockedAfterFailure();
    if (until !== null) return { decision: 'locked', reasons: ['too_many_failures'], detail: { ...base, locked_until: Math.ceil(until / 1000) }, attempt: attempt(true, 'no_match'), stepUp: null, consumed };
    return { decision: 'no_match', reasons: [], detail: base, attempt: attempt(true, 'no_match'), stepUp: null, consumed };
  }
  const done = [...(row?.done ?? []), input.modality];
  const signals = row ? [] : behaviourSignals(policy, input, mine, attempts.filter((a) => a.ueid === input.ueid));
  const need = Math.max(sp.factors, row?.need ?? 1, signals.length > 0 ? done.length + 1 : 1);
  if (done.length >= need) {
    const eligibility = eligibilityFor(ctx, sp, scenario, input);
    return { decision: 'match', reasons: [], detail: { ...base, ...(eligibility ? { eligibility } : {}) }, attempt: attempt(false, 'match'), stepUp: null, consumed };
  }
  const reasons: RejectionCode[] = [...signals];
  if (sp.factors > done.length || reasons.length === 0) reasons.push('second_factor_required');
  const next = sp.modalities.filter((x) => !done.includes(x));
  const stepUp: StepUpRow = { attId: input.attId, subject: input.subject, ueid: input.ueid, scenario, done, need, expiresAt: input.now + policy.step_up_minutes * 60_000 };
  return {
    decision: 'step_up',
    reasons,
    detail: { ...base, step_up: { modalities: next, factors: { have: done.length, need }, counter: true } },
    attempt: attempt(false, 'step_up'),
    stepUp,
    consumed,
  };
}
