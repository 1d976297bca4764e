/**
 * Decisions from several dimensions (verifier/decide.ts) over the decision policy file (verifier/decision-policy.ts)
 * and the CSV eligibility table (verifier/eligibility.ts): the scenario and who may ask for it, consent, nonce and
 * TPM evidence, thresholds per modality, the lock that grows, impossible travel, a device's rejection rate, step-ups,
 * the staff's check by hand, and the eligibility answer (a file replaced in place is picked up without a restart).
 * The browser test (ui.test.ts) runs the same paths end to end.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Consent } from '../protocol/claims.ts';
import { EXAMPLE_ELIGIBILITY, EXAMPLE_POLICY } from '../cli/demo.ts';
import { decide, lockState, type DecisionContext, type DecisionInput } from '../verifier/decide.ts';
import { DecisionPolicyError, distanceKm, loadDecisionPolicy, parseDecisionPolicy, type DecisionPolicy } from '../verifier/decision-policy.ts';
import { checkCoverage, CsvEligibilitySource, EligibilityCsvError, parseCoverageCsv, parseCsv } from '../verifier/eligibility.ts';
import type { AttemptRow, StepUpRow } from '../verifier/store.ts';
import { waitFor } from './helpers/e2e.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function temp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'bk-decision-'));
  dirs.push(d);
  return d;
}

const POLICY = parseDecisionPolicy({
  version: 'unit-1',
  sites: {
    'shanghai-1': { kind: 'pharmacy', lat: 31.2304, lon: 121.4737 },
    'beijing-1': { kind: 'pharmacy', lat: 39.9042, lon: 116.4074 },
    'hospital-1': { kind: 'hospital' },
  },
  scenarios: {
    prescription: { site_kinds: ['pharmacy'], modalities: ['face', 'fingerprint'], factors: 1, thresholds: { face: 0.3 } },
    controlled_substance: { site_kinds: ['pharmacy'], modalities: ['fingerprint', 'face'], factors: 2, nonce_required: true, tpm_required: true, override_allowed: false },
    hospital_admission: { site_kinds: ['hospital'], modalities: ['face'], factors: 1, eligibility: true },
  },
  lockout: { window_minutes: 15, max_failures: 3, base_delay_seconds: 60, max_delay_seconds: 200 },
  device_rejections: { window_minutes: 60, min_attempts: 4, max_rate: 0.5 },
});

const NOW = Date.parse('2026-11-25T10:00:00Z');
const MATCH = { decision: 'match' as const, score: 0.9, native: { value: 0.2 } };
const MISS = { decision: 'no_match' as const, score: 0.1, native: { value: 0.8 } };

function consent(purpose: string): Consent {
  return { purpose, at: Math.floor(NOW / 1000), text: 'consent-biometric/1', lang: 'en' };
}

function input(o: Partial<DecisionInput> = {}): DecisionInput {
  const scenario = o.scenario === undefined ? 'prescription' : o.scenario;
  return {
    now: NOW,
    attId: 'att-1',
    ueid: 'kiosk-1',
    site: 'shanghai-1',
    subject: 'alice',
    modality: 'face',
    scenario,
    consent: scenario ? consent(scenario) : null,
    hasNonce: false,
    keyStore: 'software',
    override: null,
    stepOf: null,
    wantEligibility: false,
    match: MATCH,
    ...o,
  };
}

const ctx: DecisionContext = { policy: POLICY, eligibility: undefined };
const none = new Map<string, StepUpRow>();
const fail = (min: number, o: Partial<AttemptRow> = {}): AttemptRow => ({ subject: 'alice', ueid: 'kiosk-1', site: 'shanghai-1', at: NOW + min * 60_000, failed: true, outcome: 'no_match', ...o });

describe('the decision policy file', () => {
  it('fills defaults, and refuses a bad file naming what is wrong', async () => {
    expect(POLICY.lockout.window_minutes).toBe(15);
    expect(POLICY.travel).toEqual({ max_km_per_hour: 900, window_hours: 12 });
    expect(POLICY.scenarios['prescription']).toMatchObject({ consent_required: true, nonce_required: false, override_allowed: true, eligibility: false });
    const bad = (doc: unknown) => () => parseDecisionPolicy(doc, 'p.json');
    expect(bad({ ...POLICY, version: 'has space' })).toThrow(/p\.json.*version/);
    expect(bad({ ...POLICY, scenarios: { x: { site_kinds: ['pharmacy'], modalities: ['face'], factors: 2 } } })).toThrow(/factors.*needs 2 distinct modalities but lists 1/);
    expect(bad({ ...POLICY, scenarios: { x: { site_kinds: ['pharmacy'], modalities: ['face', 'face'], factors: 1 } } })).toThrow(/lists a modality twice/);
    expect(bad({ ...POLICY, default_scenario: 'nope' })).toThrow(/default_scenario.*names no scenario/);
    expect(bad({ ...POLICY, surprise: 1 })).toThrow(DecisionPolicyError);
    const dir = await temp();
    await writeFile(join(dir, 'p.json'), '{ not json');
    await expect(loadDecisionPolicy(join(dir, 'p.json'))).rejects.toThrow(/is not JSON/);
    await expect(loadDecisionPolicy(join(dir, 'missing.json'))).rejects.toThrow(/ENOENT/);
    await writeFile(join(dir, 'ok.json'), JSON.stringify({ version: 'v2', sites: {}, scenarios: {} }));
    expect((await loadDecisionPolicy(join(dir, 'ok.json'))).version).toBe('v2');
  });

  it('ships an example policy and eligibility table that load (deploy/policy/, used by `biokiosk demo --screen`)', async () => {
    const p = await loadDecisionPolicy(EXAMPLE_POLICY);
    expect(Object.keys(p.scenarios).sort()).toEqual(['controlled_substance', 'hospital_admission', 'otc_pickup', 'prescription']);
    expect(p.scenarios['hospital_admission']).toMatchObject({ site_kinds: ['hospital'], eligibility: true });
    const s = await CsvEligibilitySource.open(EXAMPLE_ELIGIBILITY);
    try {
      expect(s.check('alice', 'hospital_admission', NOW).answer).toBe('covered');
      expect(s.check('bob', 'hospital_admission', NOW).code).toBe('coverage_expired');
    } finally {
      s.close();
    }
  });

  it('measures distances on the globe (Shanghai to Beijing is about 1,070 km)', () => {
    const km = distanceKm({ lat: 31.2304, lon: 121.4737 }, { lat: 39.9042, lon: 116.4074 });
    expect(km).toBeGreaterThan(1040);
    expect(km).toBeLessThan(1100);
  });
});

describe('decide', () => {
  it('refuses what the scenario does not allow, each with its own reason and the policy version', () => {
    const reason = (o: Partial<DecisionInput>) => {
      const r = decide(ctx, input(o), [], none);
      return [r.decision, ...r.reasons, r.detail?.policy_version];
    };
    expect(reason({ scenario: 'space_travel' })).toEqual(['rejected', 'unknown_scenario', 'unit-1']);
    expect(reason({ scenario: null })).toEqual(['rejected', 'unknown_scenario', 'unit-1']);
    expect(reason({ site: 'hospital-1' })).toEqual(['rejected', 'scenario_not_allowed', 'unit-1']);
    expect(reason({ site: 'unlisted' })).toEqual(['rejected', 'scenario_not_allowed', 'unit-1']);
    expect(reason({ consent: null })).toEqual(['rejected', 'consent_missing', 'unit-1']);
    // Consent for another purpose is not consent for this one.
    expect(reason({ consent: consent('hospital_admission') })).toEqual(['rejected', 'consent_missing', 'unit-1']);
    expect(reason({ modality: 'iris' })).toEqual(['rejected', 'modality_not_allowed', 'unit-1']);
    expect(reason({ scenario: 'controlled_substance', keyStore: 'tpm' })).toEqual(['rejected', 'nonce_required', 'unit-1']);
    expect(reason({ scenario: 'controlled_substance', hasNonce: true })).toEqual(['rejected', 'tpm_evidence_required', 'unit-1']);
    // Refusals of the request are not failed checks: they never count towards the lock.
    expect(decide(ctx, input({ consent: null }), [], none).attempt).toBeNull();
  });

  it("applies the scenario's threshold, not only the matcher's decision", () => {
    // The matcher said match at distance 0.35; prescription asks for 0.3 or closer.
    const near = decide(ctx, input({ match: { decision: 'match', score: 0.8, native: { value: 0.35 } } }), [], none);
    expect(near.decision).toBe('no_match');
    expect(near.attempt).toMatchObject({ failed: true, outcome: 'no_match', site: 'shanghai-1' });
    expect(decide(ctx, input({ match: { decision: 'match', score: 0.9, native: { value: 0.29 } } }), [], none).decision).toBe('match');
  });

  it('locks after N failures across kiosks, for a delay that doubles with each further one, up to the maximum', () => {
    const two = [fail(-10, { ueid: 'kiosk-1' }), fail(-5, { ueid: 'kiosk-2', site: 'shanghai-1' })];
    const third = decide(ctx, input({ match: MISS }), two, none);
    expect(third.decision).toBe('locked');
    expect(third.reasons).toEqual(['too_many_failures']);
    expect(third.detail?.locked_until).toBe(Math.ceil((NOW + 60_000) / 1000));
    // A genuine attempt during the lock is refused too, and counted: the lock doubles (120 s), then caps (200 s).
    const during = decide(ctx, input(), [...two, third.attempt!], none);
    expect(during.decision).toBe('locked');
    expect(during.detail?.locked_until).toBe(Math.ceil((NOW + 120_000) / 1000));
    expect(lockState([...two, fail(0), fail(0.1), fail(0.2)], POLICY.lockout, NOW + 13_000).lockedUntil).toBe(NOW + 12_000 + 200_000);
    // After the lock, old failures out of the window, a match clears the count.
    const later = NOW + 20 * 60_000;
    expect(lockState([...two, fail(0)], POLICY.lockout, later)).toEqual({ failures: 0, lockedUntil: null });
    expect(decide(ctx, input({ now: later }), [...two, fail(0)], none).decision).toBe('match');
    expect(lockState([fail(-3), fail(-2), { ...fail(-1), failed: false, outcome: 'match' }, fail(0)], POLICY.lockout, NOW)).toEqual({ failures: 1, lockedUntil: null });
  });

  it('asks for one more check after an impossible journey (Beijing then Shanghai in 30 minutes), not after a possible one', () => {
    const fromBeijing = [{ ...fail(-30, { ueid: 'kiosk-9', site: 'beijing-1' }), failed: false, outcome: 'match' }];
    const r = decide(ctx, input(), fromBeijing, none);
    expect(r.decision).toBe('step_up');
    expect(r.reasons).toEqual(['impossible_travel']);
    expect(r.detail?.step_up).toEqual({ modalities: ['fingerprint'], factors: { have: 1, need: 2 }, counter: true });
    expect(r.stepUp).toMatchObject({ attId: 'att-1', subject: 'alice', done: ['face'], need: 2, expiresAt: NOW + POLICY.step_up_minutes * 60_000 });
    // Four hours is enough for 1,070 km (under 900 km/h).
    expect(decide(ctx, input(), [{ ...fromBeijing[0]!, at: NOW - 4 * 3_600_000 }], none).decision).toBe('match');
  });

  it("asks for one more check on a device that fails too often (over the policy's rate)", () => {
    const others = ['bob', 'carol', 'dave', 'erin'].map((subject, i) => fail(-10 + i, { subject }));
    const r = decide(ctx, input(), others, none);
    expect(r.decision).toBe('step_up');
    expect(r.reasons).toEqual(['device_rejection_rate']);
    // Under min_attempts the rate is not judged.
    expect(decide(ctx, input(), others.slice(0, 3), none).decision).toBe('match');
  });

  it('follows a step_up: the second modality on the same kiosk completes it; another kiosk, subject or a used modality cannot', () => {
    const c2 = { ...ctx };
    const base = input({ scenario: 'controlled_substance', hasNonce: true, keyStore: 'tpm', modality: 'fingerprint' });
    const first = decide(c2, base, [], none);
    expect(first).toMatchObject({ decision: 'step_up', reasons: ['second_factor_required'], detail: { step_up: { modalities: ['face'], factors: { have: 1, need: 2 } } } });
    const rows = new Map([['att-1', first.stepUp!]]);
    const next = (o: Partial<DecisionInput>) => decide(c2, { ...base, attId: 'att-2', modality: 'face', stepOf: 'att-1', ...o }, [first.attempt!], rows);
    expect(next({})).toMatchObject({ decision: 'match', consumed: 'att-1' });
    expect(next({ ueid: 'kiosk-2' })).toMatchObject({ decision: 'rejected', reasons: ['step_up_unknown'] });
    expect(next({ subject: 'mallory' })).toMatchObject({ decision: 'rejected', reasons: ['step_up_unknown'] });
    expect(next({ modality: 'fingerprint' })).toMatchObject({ decision: 'rejected', reasons: ['step_up_unknown'] });
    expect(next({ now: NOW + 6 * 60_000 })).toMatchObject({ decision: 'rejected', reasons: ['step_up_unknown'] });
    // A failed second check is a failure like any other.
    expect(next({ match: MISS })).toMatchObject({ decision: 'no_match', attempt: { failed: true } });
  });

  it("accepts the staff's check by hand where the scenario allows it, without a biometric or its consent", () => {
    const override = { of: 'att-0', reason: 'id_document_checked' as const, staff: 'pharmacist-07' };
    const r = decide(ctx, input({ override, consent: null, match: null }), [fail(-1), fail(-1), fail(-1)], none);
    expect(r).toMatchObject({ decision: 'match', reasons: ['staff_override'], attempt: null, detail: { override } });
    expect(decide(ctx, input({ scenario: 'controlled_substance', keyStore: 'tpm', override, match: null }), [], none)).toMatchObject({ decision: 'rejected', reasons: ['override_not_allowed'] });
  });

  it('decides by the matcher alone, as before, when no policy is configured', () => {
    expect(decide({ policy: undefined, eligibility: undefined }, input({ scenario: null, consent: null }), [], none)).toMatchObject({ decision: 'match', reasons: [], detail: undefined });
    expect(decide({ policy: undefined, eligibility: undefined }, input({ match: MISS }), [], none)).toMatchObject({ decision: 'no_match', detail: { scenario: 'prescription', policy_version: null } });
  });
});

describe('eligibility', () => {
  const CSV = [
    'subject,payer,plan,valid_from,valid_to,services',
    'alice,Shanghai Medical Insurance,Basic-A,2020-01-01,,hospital_admission;prescription',
    '"bob","Ping An, Health","Gold ""Plus""",2026-01-01,2026-06-30,hospital_admission',
    'carol,Taikang,Silver,2027-01-01,,hospital_admission',
    'dave,Taikang,Silver,2020-01-01,2030-12-31,prescription',
  ].join('\r\n');

  it('parses RFC 4180 fields and refuses a bad row naming its line', () => {
    expect(parseCsv('a,"b,""c""\nd",e\n\nf\n')).toEqual([
      { line: 1, fields: ['a', 'b,"c"\nd', 'e'] },
      { line: 4, fields: ['f'] },
    ]);
    const rows = parseCoverageCsv(CSV);
    expect(rows[1]).toEqual({ subject: 'bob', payer: 'Ping An, Health', plan: 'Gold "Plus"', validFrom: '2026-01-01', validTo: '2026-06-30', services: ['hospital_admission'] });
    const head = 'subject,payer,plan,valid_from,valid_to,services\n';
    expect(() => parseCoverageCsv('subject,plan\n')).toThrow(/header/);
    expect(() => parseCoverageCsv(`${head}x,P,A,2026-02-30,,s\n`, 'e.csv')).toThrow(/e\.csv line 2: valid_from must be a date/);
    expect(() => parseCoverageCsv(`${head}x,P,A,2026-02-01,2026-01-01,s\n`)).toThrow(/line 2: valid_to 2026-01-01 is before/);
    expect(() => parseCoverageCsv(`${head}x,P,A,2026-02-01,,\n`)).toThrow(/line 2: services must list/);
    expect(() => parseCoverageCsv(`${head}\n\nx,P,A\n`)).toThrow(EligibilityCsvError);
    expect(() => parseCoverageCsv(`${head}x,"P,A,2026-02-01,,s\n`)).toThrow(/not closed/);
  });

  it('answers covered / not covered / unknown with the reason', () => {
    const rows = parseCoverageCsv(CSV);
    const at = (who: string, service = 'hospital_admission') => checkCoverage(rows, who, service, NOW);
    expect(at('alice')).toMatchObject({ answer: 'covered', code: 'covered', payer: 'Shanghai Medical Insurance', plan: 'Basic-A', service: 'hospital_admission' });
    expect(at('bob')).toMatchObject({ answer: 'not_covered', code: 'coverage_expired' });
    expect(at('carol')).toMatchObject({ answer: 'not_covered', code: 'coverage_not_yet_valid' });
    expect(at('dave')).toMatchObject({ answer: 'not_covered', code: 'service_not_covered' });
    expect(at('erin')).toMatchObject({ answer: 'unknown', code: 'no_coverage_record', payer: null });
    // valid_to is inclusive: bob was covered on his last day.
    expect(checkCoverage(rows, 'bob', 'hospital_admission', Date.parse('2026-06-30T23:59:00Z')).answer).toBe('covered');
  });

  it("is in a hospital admission's verdict, not in a pharmacy's unless asked", async () => {
    const dir = await temp();
    await writeFile(join(dir, 'e.csv'), CSV);
    const eligibility = await CsvEligibilitySource.open(join(dir, 'e.csv'));
    try {
      const c = { policy: POLICY, eligibility };
      expect(decide(c, input({ site: 'hospital-1', scenario: 'hospital_admission' }), [], none).detail?.eligibility).toMatchObject({ answer: 'covered' });
      expect(decide(c, input(), [], none).detail?.eligibility).toBeUndefined();
      expect(decide(c, input({ wantEligibility: true }), [], none).detail?.eligibility).toMatchObject({ answer: 'covered', service: 'prescription' });
      // A failed check answers nothing about insurance.
      expect(decide(c, input({ site: 'hospital-1', scenario: 'hospital_admission', match: MISS }), [], none).detail?.eligibility).toBeUndefined();
    } finally {
      eligibility.close();
    }
  });

  it('picks up a replaced file without a restart, and keeps the table in force when the new file is bad', async () => {
    const dir = await temp();
    const path = join(dir, 'e.csv');
    await writeFile(path, CSV);
    const reloads: Array<{ rows: number } | { error: Error }> = [];
    const s = await CsvEligibilitySource.open(path, { pollMs: 50, onReload: (r) => reloads.push(r) });
    try {
      expect(s.check('erin', 'hospital_admission', NOW).answer).toBe('unknown');
      // A payer's export replaces the file (written aside, renamed in).
      await writeFile(join(dir, 'next.csv'), `${CSV}\r\nerin,Taikang,Silver,2026-01-01,,hospital_admission\r\n`);
      await rename(join(dir, 'next.csv'), path);
      await waitFor(() => s.check('erin', 'hospital_admission', NOW).answer === 'covered', 10_000, 'the new table');
      expect(s.size).toBe(5);
      // A half-written export: refused with its line, and erin stays covered.
      await writeFile(path, 'subject,payer,plan,valid_from,valid_to,services\nerin,Taikang');
      await waitFor(() => s.error !== null, 10_000, 'the bad file noticed');
      expect(s.error?.message).toMatch(/line 2: 2 fields, expected 6/);
      expect(s.check('erin', 'hospital_admission', NOW).answer).toBe('covered');
      expect(reloads.some((r) => 'error' in r)).toBe(true);
    } finally {
      s.close();
    }
    await expect(CsvEligibilitySource.open(join(dir, 'missing.csv'))).rejects.toThrow(/ENOENT/);
  });
});
