/** Pieces both stores share: schema errors and how a replay window's seen set is stored. */
import { BiokioskError } from '../protocol/errors.ts';
import type { AttemptRow, StepUpRow } from './store.ts';

/** The database is not at the schema version this build reads and writes (or cannot be brought there). */
export class SchemaError extends BiokioskError {
  constructor(message: string) {
    super('SchemaMismatch', message, { kind: 'input' });
  }
}

/** The seqs accepted above a window's floor, as stored: a JSON array, ascending. */
export function encodeSeen(seen: ReadonlySet<number>): string {
  return JSON.stringify([...seen].sort((a, b) => a - b));
}

export function decodeSeen(text: string): Set<number> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || !v.every((x) => Number.isSafeInteger(x))) {
    throw new BiokioskError('StoreCorrupt', 'a stored replay window is not a list of integers', { kind: 'internal' });
  }
  return new Set(v as number[]);
}

/** Rows of the behaviour tables as both databases return them. */
export interface AttemptDbRow {
  subject: string;
  ueid: string;
  site: string | null;
  at: number;
  failed: number | boolean;
  outcome: string;
}

export interface StepUpDbRow {
  att_id: string;
  subject: string;
  ueid: string;
  scenario: string;
  done: string;
  need: number;
  expires_at: number;
}

export function toAttempt(r: AttemptDbRow): AttemptRow {
  return { subject: r.subject, ueid: r.ueid, site: r.site, at: Number(r.at), failed: r.failed === true || r.failed === 1, outcome: r.outcome };
}

export function toStepUp(r: StepUpDbRow): StepUpRow {
  return { attId: r.att_id, subject: r.subject, ueid: r.ueid, scenario: r.scenario, done: JSON.parse(r.done) as string[], need: Number(r.need), expiresAt: Number(r.expires_at) };
}
