/**
 * Insurance eligibility: a source behind an interface, answering covered / not covered / unknown for a subject,
 * a service and a day, with a code and its fixed sentence (protocol/claims.ts ELIGIBILITY_SENTENCES). This issue's
 * source is a table imported from a CSV file (subject, payer, plan, valid_from, valid_to, services) that a payer's
 * export replaces in place: it is re-read when the file changes (polled), without a restart, and a file that does
 * not parse leaves the previous table in force (the error names the line) so a half-written export never empties it.
 *
 * Each verifier node reads its own copy of the file (the table is not behaviour: it is the same input on every node).
 */
import { readFile, stat } from 'node:fs/promises';
import { unwatchFile, watchFile } from 'node:fs';
import { ELIGIBILITY_SENTENCES, type Eligibility, type EligibilityCode } from '../protocol/claims.ts';
import { BiokioskError } from '../protocol/errors.ts';

export interface EligibilitySource {
  /** The answer for `subject` and `service` on the day of `at` (ms). Never throws: a failure is `unknown`. */
  check(subject: string, service: string, at: number): Eligibility;
  close(): void;
}

export interface CoverageRow {
  subject: string;
  payer: string;
  plan: string;
  /** Days as YYYY-MM-DD (UTC), inclusive; validTo null: open-ended. */
  validFrom: string;
  validTo: string | null;
  services: string[];
}

export class EligibilityCsvError extends BiokioskError {
  constructor(message: string) {
    super('BadEligibilityCsv', message, { kind: 'input' });
  }
}

const HEADER = ['subject', 'payer', 'plan', 'valid_from', 'valid_to', 'services'] as const;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const SERVICE = /^[a-z][a-z0-9_]{0,47}$/;

/** RFC 4180 fields (quotes, doubled quotes, commas and newlines inside quotes); rows with their first line number. */
export function parseCsv(text: string): Array<{ line: number; fields: string[] }> {
  const rows: Array<{ line: number; fields: string[] }> = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  const src = text.startsWith('\ufeff') ? text.slice(1) : text;
  for (let i = 0; i < src.length; i++) {
    const ch = src[i]!;
    if (quoted) {
      if (ch === '"') {
        if (src[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (ch === '\n') line++;
        field += ch;
      }
      continue;
    }
    if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      fields.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && src[i + 1] === '\n') i++;
      fields.push(field);
      if (fields.length > 1 || fields[0] !== '') rows.push({ line: rowLine, fields });
      fields = [];
      field = '';
      line++;
      rowLine = line;
    } else field += ch;
  }
  if (quoted) throw new EligibilityCsvError(`line ${rowLine}: a quoted field is not closed`);
  if (field !== '' || fields.length > 0) {
    fields.push(field);
    rows.push({ line: rowLine, fields });
  }
  return rows;
}

/** The coverage table of a CSV text; `where` names the file in errors. */
export function parseCoverageCsv(text: string, where = 'the eligibility CSV'): CoverageRow[] {
  const rows = parseCsv(text);
  const head = rows.shift();
  if (!head || head.fields.map((f) => f.trim().toLowerCase()).join(',') !== HEADER.join(',')) throw new EligibilityCsvError(`${where}: the first line must be the header ${HEADER.join(',')}`);
  return rows.map(({ line, fields }) => {
    const at = `${where} line ${line}`;
    if (fields.length !== HEADER.length) throw new EligibilityCsvError(`${at}: ${fields.length} fields, expected ${HEADER.length} (${HEADER.join(',')})`);
    const [subject, payer, plan, from, to, services] = fields.map((f) => f.trim()) as [string, string, string, string, string, string];
    if (subject.length === 0 || subject.length > 128) throw new EligibilityCsvError(`${at}: subject must be 1-128 characters`);
    for (const [name, v] of [['payer', payer], ['plan', plan]] as const) {
      if (v.length === 0 || v.length > 64 || /[\u0000-\u001f\u007f]/.test(v)) throw new EligibilityCsvError(`${at}: ${name} must be 1-64 characters without control characters`);
    }
    const day = (name: string, v: string) => {
      if (!DAY.test(v) || Number.isNaN(Date.parse(`${v}T00:00:00Z`)) || new Date(`${v}T00:00:00Z`).toISOString().slice(0, 10) !== v) throw new EligibilityCsvError(`${at}: ${name} must be a date YYYY-MM-DD, got "${v.slice(0, 40)}"`);
      return v;
    };
    const validFrom = day('valid_from', from);
    const validTo = to === '' ? null : day('valid_to', to);
    if (validTo !== null && validTo < validFrom) throw new EligibilityCsvError(`${at}: valid_to ${validTo} is before valid_from ${validFrom}`);
    const list = services.split(/[;|]/).map((s) => s.trim()).filter((s) => s.length > 0);
    if (list.length === 0) throw new EligibilityCsvError(`${at}: services must list at least one service (separated by ;)`);
    for (const s of list) if (!SERVICE.test(s)) throw new EligibilityCsvError(`${at}: service "${s.slice(0, 40)}" must be 1-48 characters of a-z 0-9 _`);
    return { subject, payer, plan, validFrom, validTo, services: list };
  });
}

function answer(code: EligibilityCode, service: string, row?: CoverageRow): Eligibility {
  const a = code === 'covered' ? 'covered' : code === 'no_coverage_record' || code === 'source_unavailable' ? 'unknown' : 'not_covered';
  return { answer: a, code, message: ELIGIBILITY_SENTENCES[code], service, payer: row?.payer ?? null, plan: row?.plan ?? null };
}

/** The answer a table gives (pure: the CSV source and the tests use it). */
export function checkCoverage(rows: readonly CoverageRow[], subject: string, service: string, at: number): Eligibility {
  const today = new Date(at).toISOString().slice(0, 10);
  const mine = rows.filter((r) => r.subject === subject);
  if (mine.length === 0) return answer('no_coverage_record', service);
  const current = mine.filter((r) => r.validFrom <= today && (r.validTo === null || today <= r.validTo));
  const covering = current.find((r) => r.services.includes(service));
  if (covering) return answer('covered', service, covering);
  if (current.length > 0) return answer('service_not_covered', service, current[0]);
  // Only past or future coverage: say which is nearest in kind (any future one first: it will start).
  const future = mine.find((r) => r.validFrom > today);
  return future ? answer('coverage_not_yet_valid', service, future) : answer('coverage_expired', service, mine[mine.length - 1]);
}

export interface CsvSourceOptions {
  /** How often the file's size and time are looked at (ms, default 1000). */
  pollMs?: number;
  /** Told when the table was (re)loaded, and when a reload failed (the previous table stays). */
  onReload?: (r: { rows: number } | { error: Error }) => void;
}

/** The CSV table, re-read when the file changes. */
export class CsvEligibilitySource implements EligibilitySource {
  private rows: CoverageRow[] = [];
  private bySubject = new Map<string, CoverageRow[]>();
  private loaded = false;
  private reloading: Promise<void> | null = null;
  private lastError: Error | null = null;

  private constructor(
    readonly path: string,
    private readonly o: CsvSourceOptions,
  ) {}

  /** Loads the file (a bad one is refused at start, naming the line) and watches it. */
  static async open(path: string, o: CsvSourceOptions = {}): Promise<CsvEligibilitySource> {
    const s = new CsvEligibilitySource(path, o);
    await s.reload({ throwOnError: true });
    watchFile(path, { interval: o.pollMs ?? 1000, persistent: false }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) void s.reload();
    });
    return s;
  }

  get size(): number {
    return this.rows.length;
  }

  /** The last reload's failure, if the table in force is older than the file. */
  get error(): Error | null {
    return this.lastError;
  }

  /** Reads the file again now (also what the watcher does). */
  reload(o: { throwOnError?: boolean } = {}): Promise<void> {
    const run = async () => {
      try {
        await stat(this.path);
        const rows = parseCoverageCsv(await readFile(this.path, 'utf8'), this.path);
        const by = new Map<string, CoverageRow[]>();
        for (const r of rows) by.set(r.subject, [...(by.get(r.subject) ?? []), r]);
        this.rows = rows;
        this.bySubject = by;
        this.loaded = true;
        this.lastError = null;
        this.o.onReload?.({ rows: rows.length });
      } catch (e) {
        const err = e instanceof BiokioskError ? e : new EligibilityCsvError(`cannot read ${this.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        this.lastError = err;
        this.o.onReload?.({ error: err });
        if (o.throwOnError) throw err;
      }
    };
    // One reload at a time, in order; the chain itself never rejects (the caller gets the error from `p`).
    const p = (this.reloading ?? Promise.resolve()).then(run);
    const settled: Promise<void> = p.then(
      () => {},
      () => {},
    );
    this.reloading = settled;
    void settled.then(() => {
      if (this.reloading === settled) this.reloading = null;
    });
    return p;
  }

  check(subject: string, service: string, at: number): Eligibility {
    if (!this.loaded) return answer('source_unavailable', service);
    return checkCoverage(this.bySubject.get(subject) ?? [], subject, service, at);
  }

  close(): void {
    unwatchFile(this.path);
  }
}
