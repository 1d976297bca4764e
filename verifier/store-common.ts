/** Pieces both stores share: schema errors and how a replay window's seen set is stored. */
import { BiokioskError } from '../protocol/errors.ts';

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
