/**
 * The decision policy: a versioned JSON file naming, per scenario (a site kind and a service: over-the-counter
 * pickup, prescription, controlled substance, hospital admission), which sites may ask for it, the modalities and
 * number of factors it needs, the match threshold per modality, whether a fresh nonce and a TPM-resident device key
 * are required, whether it answers eligibility and allows the staff's check by hand; and the behaviour limits
 * (failures per identity in a sliding window and the growing lock, impossible travel between sites, a device's
 * rejection rate). Every decision names the policy version it was made under (in the log and the verdict).
 *
 * JSON, checked by a zod schema: a bad file is refused at start with the path of what is wrong.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { describeIssues, MODALITIES, ScenarioId, type Modality } from '../protocol/claims.ts';
import { BiokioskError } from '../protocol/errors.ts';

export class DecisionPolicyError extends BiokioskError {
  constructor(message: string) {
    super('BadDecisionPolicy', message, { kind: 'input' });
  }
}

const SiteKind = z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'must be 1-32 characters of a-z 0-9 _');
const Threshold = z.number().finite().min(0).max(2);

const Scenario = z.strictObject({
  /** Site kinds that may ask for this service (BDMI step 3: is the request reasonable for this provider?). */
  site_kinds: z.array(SiteKind).min(1),
  /** Modalities accepted, in the order a step_up offers them. */
  modalities: z.array(z.enum(MODALITIES)).min(1).max(3),
  /** Distinct modalities that must match (1: one biometric; 2: a second of another kind). */
  factors: z.int().min(1).max(3),
  /** Per modality, in its native measure: face maximum distance, fingerprint minimum score, iris maximum Hamming distance. */
  thresholds: z.partialRecord(z.enum(MODALITIES), Threshold).default({}),
  nonce_required: z.boolean().default(false),
  tpm_required: z.boolean().default(false),
  /** The verdict carries the eligibility answer (a hospital kiosk); otherwise only when the kiosk asks. */
  eligibility: z.boolean().default(false),
  /** The service the eligibility table is asked about (default: the scenario's id). */
  service: ScenarioId.optional(),
  consent_required: z.boolean().default(true),
  /** Staff may check the ID by hand instead (attested and logged). */
  override_allowed: z.boolean().default(true),
});

const PolicyFile = z
  .strictObject({
    /** Anything that names this revision, e.g. "2026-11-25.1": logged with every decision. */
    version: z.string().regex(/^[A-Za-z0-9._:+-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 . _ : + -'),
    /** The scenario of attempts that name none (kiosks before scenarios); absent: such attempts are refused. */
    default_scenario: ScenarioId.optional(),
    sites: z.record(
      z.string().min(1).max(128),
      z.strictObject({
        kind: SiteKind,
        /** Where the site is (degrees), for impossible travel. */
        lat: z.number().min(-90).max(90).optional(),
        lon: z.number().min(-180).max(180).optional(),
      }),
    ),
    scenarios: z.record(ScenarioId, Scenario),
    lockout: z
      .strictObject({
        window_minutes: z.number().positive().max(7 * 24 * 60).default(15),
        max_failures: z.int().min(1).max(100).default(5),
        base_delay_seconds: z.number().positive().max(86_400).default(30),
        max_delay_seconds: z.number().positive().max(7 * 86_400).default(3600),
      })
      .prefault({}),
    travel: z.strictObject({ max_km_per_hour: z.number().positive().max(100_000).default(900), window_hours: z.number().positive().max(72).default(12) }).prefault({}),
    device_rejections: z
      .strictObject({ window_minutes: z.number().positive().max(7 * 24 * 60).default(60), min_attempts: z.int().min(1).default(10), max_rate: z.number().min(0).max(1).default(0.6) })
      .prefault({}),
    /** How long a step_up waits for its next check. */
    step_up_minutes: z.number().positive().max(60).default(5),
  })
  .superRefine((p, ctx) => {
    if (p.default_scenario && !p.scenarios[p.default_scenario]) ctx.addIssue({ code: 'custom', path: ['default_scenario'], message: `names no scenario of this file (${Object.keys(p.scenarios).join(', ')})` });
    for (const [id, s] of Object.entries(p.scenarios)) {
      const distinct = new Set(s.modalities);
      if (distinct.size !== s.modalities.length) ctx.addIssue({ code: 'custom', path: ['scenarios', id, 'modalities'], message: 'lists a modality twice' });
      if (s.factors > distinct.size) ctx.addIssue({ code: 'custom', path: ['scenarios', id, 'factors'], message: `needs ${s.factors} distinct modalities but lists ${distinct.size}` });
    }
  });

export type DecisionPolicy = z.infer<typeof PolicyFile>;
export type ScenarioPolicy = DecisionPolicy['scenarios'][string];

/** Checks a parsed policy document; `where` names it in errors. */
export function parseDecisionPolicy(doc: unknown, where = 'the decision policy'): DecisionPolicy {
  const r = PolicyFile.safeParse(doc);
  if (!r.success) throw new DecisionPolicyError(`${where}: ${describeIssues(r.error)}`);
  return r.data;
}

export async function loadDecisionPolicy(path: string): Promise<DecisionPolicy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new DecisionPolicyError(`cannot read the decision policy ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new DecisionPolicyError(`the decision policy ${path} is not JSON: ${(e as Error).message}`);
  }
  return parseDecisionPolicy(doc, path);
}

/** Great-circle distance in km (haversine). */
export function distanceKm(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const r = (d: number) => (d * Math.PI) / 180;
  const h = Math.sin(r(b.lat - a.lat) / 2) ** 2 + Math.cos(r(a.lat)) * Math.cos(r(b.lat)) * Math.sin(r(b.lon - a.lon) / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Whether a match outcome passes the scenario's threshold for its modality (the matcher's own decision when none). */
export function passesThreshold(modality: Modality, m: { decision: 'match' | 'no_match'; score: number; native: { value: number } | null }, thresholds: ScenarioPolicy['thresholds']): boolean {
  const t = thresholds[modality];
  if (t === undefined || !m.native) return m.decision === 'match';
  // Fingerprints are scored (higher is closer); faces and irises are distances (lower is closer).
  return modality === 'fingerprint' ? m.score >= t : m.native.value <= t;
}
