/**
 * Canonical JSON for audit-log records, in the manner of RFC 8785 (JCS) for the types records use: strings,
 * finite numbers, booleans, null, arrays and plain objects. Object members sorted by key (UTF-16 code units, as
 * JCS says), no whitespace, numbers and strings serialised as ECMAScript's JSON.stringify does (which is what JCS
 * specifies). Anything else (undefined, NaN, Infinity, bigint, Dates, Buffers, class instances, cycles, strings
 * with lone surrogates) is refused rather than silently dropped or coerced: a record must hash the same way in
 * every program that reads it back.
 */
import { BiokioskError } from './errors.ts';

const SURROGATE = /[\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function canonicalJson(value: unknown): string {
  return write(value, []);
}

/** The canonical JSON as UTF-8 bytes: what a leaf of the audit log is. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

/** True when `bytes` are exactly the canonical JSON of what they parse to. */
export function isCanonicalJson(bytes: Uint8Array): boolean {
  try {
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
    return canonicalJson(JSON.parse(text)) === text && Buffer.from(text, 'utf8').equals(bytes);
  } catch {
    return false;
  }
}

/** `trail`: the objects and arrays being written, outermost first, with the key or index taken in each. */
type Trail = Array<{ container: object; at: string | number }>;

function fail(trail: Trail, what: string): never {
  const path = '$' + trail.map((t) => (typeof t.at === 'number' ? `[${t.at}]` : `.${t.at}`)).join('');
  throw new BiokioskError('BadAuditRecord', `cannot canonicalise ${path}: ${what}`, { kind: 'internal', details: { path } });
}

function str(s: string, trail: Trail): string {
  if (SURROGATE.test(s) && LONE_SURROGATE.test(s)) fail(trail, 'a string with a lone surrogate');
  return JSON.stringify(s);
}

function write(v: unknown, trail: Trail): string {
  switch (typeof v) {
    case 'string':
      return str(v, trail);
    case 'number':
      if (!Number.isFinite(v)) fail(trail, `the number ${v}`);
      return JSON.stringify(v); // -0 becomes 0, as JCS says
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      for (const t of trail) if (t.container === v) fail(trail, 'a cycle');
      const frame = { container: v as object, at: 0 as string | number };
      trail.push(frame);
      let out: string;
      if (Array.isArray(v)) {
        out = '[';
        for (let i = 0; i < v.length; i++) {
          frame.at = i;
          if (!(i in v)) fail(trail, 'a hole in an array');
          out += (i > 0 ? ',' : '') + write(v[i], trail);
        }
        out += ']';
      } else {
        const proto = Object.getPrototypeOf(v) as unknown;
        if (proto !== Object.prototype && proto !== null) {
          trail.pop();
          fail(trail, `a ${(v as object).constructor?.name ?? 'non-plain'} object`);
        }
        const keys = Object.keys(v).sort();
        out = '{';
        for (let i = 0; i < keys.length; i++) {
          const k = keys[i]!;
          frame.at = k;
          out += (i > 0 ? ',' : '') + str(k, trail) + ':' + write((v as Record<string, unknown>)[k], trail);
        }
        out += '}';
      }
      trail.pop();
      return out;
    }
    default:
      return fail(trail, `a value of type ${typeof v}`);
  }
}
