/**
 * The `biokiosk-iris/1` template: the code and mask with the extractor that made them.
 *
 *   offset  size  field
 *   0       4     magic "BKIR"
 *   4       1     format version (1)
 *   5       1     quality (0-100)
 *   6       1     code rings (8)
 *   7       1     code columns / 8 (16: 128 columns)
 *   8       32    sha256 of the extractor model (IrisEngine: graph, parameters and code version)
 *   40      1     model name length m (<= 255)
 *   41      m     model name (UTF-8)
 *   41+m    256   code: column c = bits [16c, 16c+16), bit 2k real and 2k+1 imaginary sign of ring k (encode.ts)
 *   297+m   256   mask, same layout, 1 = bit usable
 *
 * At most 41 + 255 + 512 = 808 bytes (<= 1 KB whatever the name); 41 + 22 + 512 = 575 bytes with our model name.
 */
import { BadTemplateError } from '../../protocol/errors.ts';
import { CODE_BYTES, CODE_COLS, CODE_RINGS } from './encode.ts';

export const IRIS_TEMPLATE_FORMAT = 'biokiosk-iris/1';
const MAGIC = [0x42, 0x4b, 0x49, 0x52]; // "BKIR"
const VERSION = 1;
const FIXED = 41;
export const MAX_IRIS_TEMPLATE_BYTES = FIXED + 255 + 2 * CODE_BYTES;

export interface IrisTemplate {
  format: typeof IRIS_TEMPLATE_FORMAT;
  model: { name: string; sha256: string };
  quality: number;
  code: Uint8Array;
  mask: Uint8Array;
}

export function encodeIrisTemplate(t: Omit<IrisTemplate, 'format'>): Uint8Array {
  const name = new TextEncoder().encode(t.model.name);
  if (name.length > 255) throw new BadTemplateError('model name longer than 255 bytes');
  if (!/^[0-9a-f]{64}$/.test(t.model.sha256)) throw new BadTemplateError('model sha256 must be 64 lowercase hex digits');
  if (t.code.length !== CODE_BYTES || t.mask.length !== CODE_BYTES) throw new BadTemplateError(`code and mask must be ${CODE_BYTES} bytes each`);
  const out = new Uint8Array(FIXED + name.length + 2 * CODE_BYTES);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  out[5] = Math.max(0, Math.min(100, Math.round(t.quality)));
  out[6] = CODE_RINGS;
  out[7] = CODE_COLS / 8;
  out.set(Buffer.from(t.model.sha256, 'hex'), 8);
  out[40] = name.length;
  out.set(name, FIXED);
  out.set(t.code, FIXED + name.length);
  out.set(t.mask, FIXED + name.length + CODE_BYTES);
  return out;
}

export function decodeIrisTemplate(bytes: Uint8Array): IrisTemplate {
  if (bytes.length < FIXED) throw new BadTemplateError(`iris template too short (${bytes.length} bytes)`);
  if (!MAGIC.every((b, i) => bytes[i] === b)) throw new BadTemplateError('not a biokiosk iris template (bad magic)');
  if (bytes[4] !== VERSION) throw new BadTemplateError(`unsupported iris template version ${bytes[4]}`);
  if (bytes[5]! > 100) throw new BadTemplateError(`iris template quality ${bytes[5]} is out of range 0-100`);
  if (bytes[6] !== CODE_RINGS || bytes[7] !== CODE_COLS / 8) throw new BadTemplateError(`iris code of ${bytes[6]} rings x ${bytes[7]! * 8} columns; this build reads ${CODE_RINGS} x ${CODE_COLS}`);
  const m = bytes[40]!;
  const expected = FIXED + m + 2 * CODE_BYTES;
  if (bytes.length !== expected) throw new BadTemplateError(`iris template length ${bytes.length} does not match its header (expected ${expected})`);
  let name: string;
  try {
    name = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(FIXED, FIXED + m));
  } catch {
    throw new BadTemplateError('iris template model name is not UTF-8');
  }
  return {
    format: IRIS_TEMPLATE_FORMAT,
    model: { name, sha256: Buffer.from(bytes.subarray(8, 40)).toString('hex') },
    quality: bytes[5]!,
    code: bytes.slice(FIXED + m, FIXED + m + CODE_BYTES),
    mask: bytes.slice(FIXED + m + CODE_BYTES, expected),
  };
}
