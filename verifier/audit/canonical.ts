/**
 * Canonical JSON for audit-log records, in the manner of RFC 8785 (JCS) for the types records use: strings,
 * finite numbers, booleans, null, arrays and plain objects. Object members sorted by key (UTF-16 code units, as
 * JCS says), no whitespace, numbers and strings serialised as ECMAScript's JSON.stringify does (which is what JCS
 * specifies). Anything else (undefined, NaN, Infinity, bigint, Dates, Buffers, class instances, cycles, strings
 * with lone surrogates) is refused rather than silently dropped or coerced: a record must hash the same way in
 * every program that reads it back.
 */
import { BiokioskError } from '../../protocol/errors.ts';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function canonicalJson(value: unknown): string {
  const parts: string[] = [];
  write(value, parts, new Set(), '$');
  return parts.join('');
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

function fail(path: string, what: string): never {
  throw new BiokioskError('BadAuditRecord', `cannot canonicalise ${path}: ${what}`, { kind: 'internal', details: { path } });
}

function write(v: unknown, out: string[], stack: Set<object>, path: string): void {
  switch (typeof v) {
    case 'string':
      if (LONE_SURROGATE.test(v)) fail(path, 'a string with a lone surrogate');
      out.push(JSON.stringify(v));
      return;
    case 'number':
      if (!Number.isFinite(v)) fail(path, `the number ${v}`);
      out.push(JSON.stringify(v)); // -0 becomes 0, as JCS says
      return;
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return;
    case 'object': {
      if (v === null) {
        out.push('null');
        return;
      }
      if (stack.has(v)) fail(path, 'a cycle');
      stack.add(v);
      if (Array.isArray(v)) {
        out.push('[');
        for (let i = 0; i < v.length; i++) {
          if (i > 0) out.push(',');
          if (!(i in v)) fail(`${path}[${i}]`, 'a hole in an array');
          write(v[i], out, stack, `${path}[${i}]`);
        }
        out.push(']');
      } else {
        const proto = Object.getPrototypeOf(v) as unknown;
        if (proto !== Object.prototype && proto !== null) fail(path, `a ${(v as object).constructor?.name ?? 'non-plain'} object`);
        const keys = Object.keys(v).sort();
        out.push('{');
        keys.forEach((k, i) => {
          if (i > 0) out.push(',');
          if (LONE_SURROGATE.test(k)) fail(path, 'a key with a lone surrogate');
          out.push(JSON.stringify(k), ':');
          write((v as Record<string, unknown>)[k], out, stack, `${path}.${k}`);
        });
        out.push('}');
      }
      stack.delete(v);
      return;
    }
    default:
      fail(path, `a value of type ${typeof v}`);
  }
}
