/**
 * The `biokiosk-fingerprint/1` template: a standard ISO/IEC 19794-2:2005 minutiae record wrapped with the extractor
 * that made it, so a verifier can refuse templates from an extractor it does not trust (same idea as biokiosk-face/1).
 *
 *   offset  size  field
 *   0       4     magic "BKFP"
 *   4       1     format version (1)
 *   5       1     quality (0-100)
 *   6       2     length n of the ISO record (uint16 LE)
 *   8       32    sha256 of the extractor model
 *   40      1     model name length m
 *   41      m     model name (UTF-8)
 *   41+m    n     ISO/IEC 19794-2:2005 record with exactly one finger view
 *
 * Orientation descriptors (descriptor.ts), when every minutia has one, travel in the ISO view's extended data, as
 * one vendor-defined area of type DESCRIPTOR_AREA_TYPE: DESCRIPTOR_BYTES per minutia, in the minutiae's order. A
 * template without that area (older extractors) decodes as before, with no descriptors; areas of other types are
 * skipped, as the standard allows.
 *
 * Size bound: a template is at most 1024 bytes whatever the model name. Without descriptors: 41 + 255 (longest name)
 * + 24 (ISO header) + 4 (view header) + 2 (extended data length) + 6 per minutia <= 1024 gives MAX_TEMPLATE_MINUTIAE =
 * 116. With descriptors, 4 bytes more for the area's header and 6 + DESCRIPTOR_BYTES per minutia, counted with the
 * actual name: maxMinutiaeWithDescriptors (65 with the extractor's 32-byte name, 49 with a 255-byte one). With more
 * minutiae the encoder keeps those of highest quality (ties: earlier first) in their original order. A typical
 * 40-minutia template with descriptors and a 32-byte name is 41 + 32 + 34 + 560 = 667 bytes.
 */
import { BadTemplateError } from '../../protocol/errors.ts';
import { decodeIsoRecord, encodeIsoRecord, fingerRecordToIso, isoToFingerRecord, IsoRecordError, type IsoViewOptions } from './iso19794-2.ts';
import { DESCRIPTOR_BYTES, DESCRIPTOR_SAMPLES, packDescriptors, unpackDescriptors } from './descriptor.ts';
import type { FingerRecord, Minutia } from './minutiae.ts';

export const FINGERPRINT_TEMPLATE_FORMAT = 'biokiosk-fingerprint/1';
const MAGIC = [0x42, 0x4b, 0x46, 0x50]; // "BKFP"
const VERSION = 1;
const FIXED = 41;
export const MAX_TEMPLATE_BYTES = 1024;
export const MAX_MODEL_NAME_BYTES = 255;
export const MAX_TEMPLATE_MINUTIAE = Math.floor((MAX_TEMPLATE_BYTES - FIXED - MAX_MODEL_NAME_BYTES - 24 - 4 - 2) / 6); // 116
/** Vendor-defined ISO extended data type (0x0100-0xFFFF are the vendors') of the orientation descriptors. */
export const DESCRIPTOR_AREA_TYPE = 0xb1d0;

/** How many minutiae with descriptors fit in MAX_TEMPLATE_BYTES beside a model name of `nameBytes` bytes. */
export function maxMinutiaeWithDescriptors(nameBytes: number): number {
  return Math.floor((MAX_TEMPLATE_BYTES - FIXED - nameBytes - 24 - 4 - 2 - 4) / (6 + DESCRIPTOR_BYTES));
}

export interface FingerprintTemplate {
  format: typeof FINGERPRINT_TEMPLATE_FORMAT;
  model: { name: string; sha256: string };
  /** Overall capture quality 0-100 (the extraction's quality report). */
  quality: number;
  record: FingerRecord;
  /** ISO finger view fields carried through (position 0 = unknown). */
  fingerPosition: number;
  impressionType: number;
}

export type FingerprintTemplateInput = Omit<FingerprintTemplate, 'format' | 'fingerPosition' | 'impressionType'> & {
  fingerPosition?: number;
  impressionType?: number;
};

/** The `max` minutiae of highest quality, in their original order (stable for equal quality). */
export function keepBestMinutiae(minutiae: readonly Minutia[], max = MAX_TEMPLATE_MINUTIAE): Minutia[] {
  if (minutiae.length <= max) return [...minutiae];
  const order = minutiae.map((m, i) => i).sort((a, b) => minutiae[b]!.quality - minutiae[a]!.quality || a - b);
  const keep = new Set(order.slice(0, max));
  return minutiae.filter((_, i) => keep.has(i));
}

export function encodeFingerprintTemplate(t: FingerprintTemplateInput): Uint8Array {
  const name = new TextEncoder().encode(t.model.name);
  if (name.length > MAX_MODEL_NAME_BYTES) throw new BadTemplateError(`model name longer than ${MAX_MODEL_NAME_BYTES} bytes`);
  if (!/^[0-9a-f]{64}$/.test(t.model.sha256)) throw new BadTemplateError('model sha256 must be 64 lowercase hex digits');
  const described = t.record.minutiae.length > 0 && t.record.minutiae.every((m) => m.descriptor?.length === DESCRIPTOR_SAMPLES);
  const kept = keepBestMinutiae(t.record.minutiae, described ? maxMinutiaeWithDescriptors(name.length) : MAX_TEMPLATE_MINUTIAE);
  const record: FingerRecord = { ...t.record, minutiae: kept.map(({ descriptor: _, ...m }) => m) };
  const options: IsoViewOptions = { fingerPosition: t.fingerPosition ?? 0, impressionType: t.impressionType ?? 0 };
  const isoRecord = fingerRecordToIso(record, options);
  if (described) {
    const codes = new Uint8Array(kept.length * DESCRIPTOR_SAMPLES);
    kept.forEach((m, i) => codes.set(m.descriptor!, i * DESCRIPTOR_SAMPLES));
    isoRecord.views[0]!.extendedData.push({ type: DESCRIPTOR_AREA_TYPE, data: packDescriptors(codes) });
  }
  const iso = encodeIsoRecord(isoRecord);
  const out = new Uint8Array(FIXED + name.length + iso.length);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  out[5] = Math.max(0, Math.min(100, Math.round(t.quality)));
  new DataView(out.buffer).setUint16(6, iso.length, true);
  out.set(Buffer.from(t.model.sha256, 'hex'), 8);
  out[40] = name.length;
  out.set(name, FIXED);
  out.set(iso, FIXED + name.length);
  return out;
}

export function decodeFingerprintTemplate(bytes: Uint8Array): FingerprintTemplate {
  if (bytes.length < FIXED) throw new BadTemplateError(`fingerprint template too short (${bytes.length} bytes)`);
  if (!MAGIC.every((b, i) => bytes[i] === b)) throw new BadTemplateError('not a biokiosk fingerprint template (bad magic)');
  if (bytes[4] !== VERSION) throw new BadTemplateError(`unsupported fingerprint template version ${bytes[4]}`);
  if (bytes[5]! > 100) throw new BadTemplateError(`fingerprint template quality ${bytes[5]} is out of range 0-100`);
  const isoLength = bytes[6]! | (bytes[7]! << 8);
  const nameLength = bytes[40]!;
  const expected = FIXED + nameLength + isoLength;
  if (bytes.length !== expected) {
    throw new BadTemplateError(`fingerprint template length ${bytes.length} does not match its header (expected ${expected})`);
  }
  let name: string;
  try {
    name = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(FIXED, FIXED + nameLength));
  } catch {
    throw new BadTemplateError('fingerprint template model name is not UTF-8');
  }
  const iso = decodeIsoRecord(bytes.subarray(FIXED + nameLength));
  if (iso.views.length !== 1) throw new IsoRecordError('numberOfFingerViews', `a biokiosk template holds exactly one view, not ${iso.views.length}`);
  const view = iso.views[0]!;
  const record = isoToFingerRecord(iso, 0);
  const areas = view.extendedData.filter((a) => a.type === DESCRIPTOR_AREA_TYPE);
  if (areas.length > 1) throw new BadTemplateError(`fingerprint template has ${areas.length} orientation descriptor areas, expected at most one`);
  if (areas[0]) {
    const codes = unpackDescriptors(areas[0].data, record.minutiae.length);
    record.minutiae.forEach((m, i) => (m.descriptor = codes.subarray(i * DESCRIPTOR_SAMPLES, (i + 1) * DESCRIPTOR_SAMPLES)));
  }
  return {
    format: FINGERPRINT_TEMPLATE_FORMAT,
    model: { name, sha256: Buffer.from(bytes.subarray(8, 40)).toString('hex') },
    quality: bytes[5]!,
    record,
    fingerPosition: view.fingerPosition,
    impressionType: view.impressionType,
  };
}
