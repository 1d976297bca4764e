/**
 * ISO/IEC 19794-2:2005 finger minutiae record ("FMR\0", version " 20\0"): binary encoder and strict decoder.
 *
 * All multi-byte integers are big-endian. Layout:
 *
 *   General record header (24 bytes)
 *     0   4  format identifier "FMR\0" (46 4D 52 00)
 *     4   4  version " 20\0" (20 32 30 00)
 *     8   4  length of the total record in bytes (unsigned 32-bit). NB: ANSI/INCITS 378-2004 uses a 2-byte field
 *            with a 0x0000 escape to 6 bytes here; ISO 19794-2:2005 does not, its header is always 24 bytes.
 *     12  2  capture equipment certification (top 4 bits) | capture device type ID (low 12 bits)
 *     14  2  image size X (pixels)      16  2  image size Y (pixels)
 *     18  2  resolution X (pixels/cm)   20  2  resolution Y (pixels/cm)
 *     22  1  number of finger views     23  1  reserved, 0
 *   Per finger view:
 *     finger view header (4 bytes): finger position (0-10); view number (top 4 bits) | impression type (low 4 bits);
 *       finger quality (0-100); number of minutiae (0-255)
 *     minutiae, 6 bytes each: [type (2 bits: 01 ending, 10 bifurcation, 00 other) | X (14 bits)]
 *       [reserved (2 bits, 0) | Y (14 bits)] [angle, units of 360/256 degrees, counter-clockwise from the horizontal
 *       pointing right] [quality 0-100]
 *     extended data block length (2 bytes): 0, or the summed length of the extended data areas that follow, each
 *       [type ID (2 bytes, not 0x0000)] [area length (2 bytes) INCLUDING these 4 header bytes] [data].
 *
 * Angles are kept in our radians (models/fingerprint/minutiae.ts), which follow the same counter-clockwise convention:
 * byte = round(angle / 1.40625 deg) mod 256, angle = byte * 1.40625 deg. Coordinates are rounded to whole pixels.
 * After that quantisation, decode(encode(r)) == r exactly, and encode(decode(b)) == b for every valid b.
 *
 * Every malformed input gives an `IsoRecordError` (a BadTemplateError) whose `field` names what was wrong.
 */
import { BadTemplateError } from '../../protocol/errors.ts';
import { angleToIsoUnits, dpiToPpcm, isoUnitsToAngle, ppcmToDpi, type FingerRecord, type Minutia, type MinutiaType } from './minutiae.ts';

export const ISO_FORMAT_ID = [0x46, 0x4d, 0x52, 0x00] as const; // "FMR\0"
export const ISO_VERSION = [0x20, 0x32, 0x30, 0x00] as const; // " 20\0"
export const ISO_HEADER_LENGTH = 24;
export const ISO_VIEW_HEADER_LENGTH = 4;
export const ISO_MINUTIA_LENGTH = 6;
const MAX_COORD = 0x3fff;

/** Finger positions of ISO 19794-2:2005 (0 unknown, 1 right thumb ... 10 left little finger). */
export const MAX_FINGER_POSITION = 10;
/** Impression types: 0 live-scan plain, 1 live-scan rolled, 2 non-live plain, 3 non-live rolled, 8 swipe. */
export const IMPRESSION_TYPES: readonly number[] = [0, 1, 2, 3, 8];

export interface IsoExtendedDataArea {
  /** 0x0001 ridge counts, 0x0002 core and delta, 0x0100-0xFFFF vendor defined; 0x0000 is reserved. */
  type: number;
  data: Uint8Array;
}

export interface IsoFingerView {
  fingerPosition: number;
  /** 0-15, distinguishes several views of the same finger. */
  viewNumber: number;
  impressionType: number;
  /** 0-100. */
  fingerQuality: number;
  minutiae: Minutia[];
  extendedData: IsoExtendedDataArea[];
}

export interface IsoFingerMinutiaeRecord {
  /** 4 bits. */
  captureEquipmentCertification: number;
  /** 12 bits; 0 = unreported. */
  captureDeviceTypeId: number;
  width: number;
  height: number;
  /** Pixels per centimetre. */
  resolution: { x: number; y: number };
  views: IsoFingerView[];
}

/** A malformed ISO/IEC 19794-2 record; `field` names the offending field (and `view`/`minutia` where relevant). */
export class IsoRecordError extends BadTemplateError {
  readonly field: string;
  constructor(field: string, message: string, details: Record<string, unknown> = {}) {
    super(`ISO/IEC 19794-2 record: ${field}: ${message}`, { field, ...details });
    this.field = field;
  }
}

const TYPE_BITS: Record<MinutiaType, number> = { other: 0, ending: 1, bifurcation: 2 };
const TYPE_FROM_BITS: (MinutiaType | undefined)[] = ['other', 'ending', 'bifurcation', undefined];

function checkInt(value: number, lo: number, hi: number, field: string, details: Record<string, unknown> = {}): number {
  if (!Number.isInteger(value) || value < lo || value > hi) {
    throw new IsoRecordError(field, `${value} is out of range ${lo}-${hi}`, { value, ...details });
  }
  return value;
}

export function isoRecordLength(record: IsoFingerMinutiaeRecord): number {
  let n = ISO_HEADER_LENGTH;
  for (const v of record.views) {
    n += ISO_VIEW_HEADER_LENGTH + ISO_MINUTIA_LENGTH * v.minutiae.length + 2;
    for (const a of v.extendedData) n += 4 + a.data.length;
  }
  return n;
}

export function encodeIsoRecord(record: IsoFingerMinutiaeRecord): Uint8Array {
  checkInt(record.captureEquipmentCertification, 0, 15, 'captureEquipmentCertification');
  checkInt(record.captureDeviceTypeId, 0, 0xfff, 'captureDeviceTypeId');
  checkInt(record.width, 1, 0xffff, 'imageSizeX');
  checkInt(record.height, 1, 0xffff, 'imageSizeY');
  checkInt(record.resolution.x, 1, 0xffff, 'resolutionX');
  checkInt(record.resolution.y, 1, 0xffff, 'resolutionY');
  checkInt(record.views.length, 1, 255, 'numberOfFingerViews');
  const total = isoRecordLength(record);
  if (total > 0xffffffff) throw new IsoRecordError('recordLength', `${total} bytes do not fit in 32 bits`);

  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set(ISO_FORMAT_ID, 0);
  out.set(ISO_VERSION, 4);
  dv.setUint32(8, total);
  dv.setUint16(12, (record.captureEquipmentCertification << 12) | record.captureDeviceTypeId);
  dv.setUint16(14, record.width);
  dv.setUint16(16, record.height);
  dv.setUint16(18, record.resolution.x);
  dv.setUint16(20, record.resolution.y);
  out[22] = record.views.length;
  out[23] = 0;

  let p = ISO_HEADER_LENGTH;
  record.views.forEach((v, vi) => {
    const at = { view: vi };
    checkInt(v.fingerPosition, 0, MAX_FINGER_POSITION, 'fingerPosition', at);
    checkInt(v.viewNumber, 0, 15, 'viewNumber', at);
    if (!IMPRESSION_TYPES.includes(v.impressionType)) throw new IsoRecordError('impressionType', `${v.impressionType} is not one of ${IMPRESSION_TYPES.join(', ')}`, at);
    checkInt(v.fingerQuality, 0, 100, 'fingerQuality', at);
    checkInt(v.minutiae.length, 0, 255, 'numberOfMinutiae', at);
    out[p++] = v.fingerPosition;
    out[p++] = (v.viewNumber << 4) | v.impressionType;
    out[p++] = v.fingerQuality;
    out[p++] = v.minutiae.length;
    v.minutiae.forEach((m, mi) => {
      const where = { view: vi, minutia: mi };
      const x = Math.round(m.x);
      const y = Math.round(m.y);
      checkInt(x, 0, Math.min(MAX_COORD, record.width - 1), 'minutiaX', where);
      checkInt(y, 0, Math.min(MAX_COORD, record.height - 1), 'minutiaY', where);
      if (!Number.isFinite(m.angle)) throw new IsoRecordError('minutiaAngle', `${m.angle} is not finite`, where);
      const t = TYPE_BITS[m.type];
      if (t === undefined) throw new IsoRecordError('minutiaType', `unknown type ${String(m.type)}`, where);
      checkInt(m.quality, 0, 100, 'minutiaQuality', where);
      dv.setUint16(p, (t << 14) | x);
      dv.setUint16(p + 2, y);
      out[p + 4] = angleToIsoUnits(m.angle);
      out[p + 5] = m.quality;
      p += ISO_MINUTIA_LENGTH;
    });
    let block = 0;
    for (const a of v.extendedData) block += 4 + a.data.length;
    if (block > 0xffff) throw new IsoRecordError('extendedDataBlockLength', `${block} bytes do not fit in 16 bits`, at);
    dv.setUint16(p, block);
    p += 2;
    for (const a of v.extendedData) {
      checkInt(a.type, 1, 0xffff, 'extendedDataType', at);
      dv.setUint16(p, a.type);
      dv.setUint16(p + 2, 4 + a.data.length);
      out.set(a.data, p + 4);
      p += 4 + a.data.length;
    }
  });
  return out;
}

export function decodeIsoRecord(bytes: Uint8Array): IsoFingerMinutiaeRecord {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Every read goes through `need` first, so a short input is a typed error, never a RangeError.
  const need = (at: number, n: number, field: string, details: Record<string, unknown> = {}) => {
    if (at + n > bytes.length) throw new IsoRecordError(field, `truncated: needs ${at + n} bytes, record has ${bytes.length}`, { offset: at, ...details });
  };

  need(0, 4, 'formatIdentifier');
  if (!ISO_FORMAT_ID.every((b, i) => bytes[i] === b)) throw new IsoRecordError('formatIdentifier', 'not "FMR\\0"');
  need(4, 4, 'version');
  if (!ISO_VERSION.every((b, i) => bytes[4 + i] === b)) throw new IsoRecordError('version', 'not " 20\\0" (ISO/IEC 19794-2:2005)');
  need(8, 4, 'recordLength');
  const total = dv.getUint32(8);
  if (total < ISO_HEADER_LENGTH) throw new IsoRecordError('recordLength', `${total} is shorter than the ${ISO_HEADER_LENGTH}-byte header`);
  if (total !== bytes.length) throw new IsoRecordError('recordLength', `header says ${total} bytes, record has ${bytes.length}`, { declared: total, actual: bytes.length });
  need(12, 12, 'header');
  const equipment = dv.getUint16(12);
  const width = dv.getUint16(14);
  const height = dv.getUint16(16);
  const resX = dv.getUint16(18);
  const resY = dv.getUint16(20);
  const nViews = bytes[22]!;
  if (width === 0) throw new IsoRecordError('imageSizeX', 'is 0');
  if (height === 0) throw new IsoRecordError('imageSizeY', 'is 0');
  if (resX === 0) throw new IsoRecordError('resolutionX', 'is 0');
  if (resY === 0) throw new IsoRecordError('resolutionY', 'is 0');
  if (nViews === 0) throw new IsoRecordError('numberOfFingerViews', 'is 0');
  if (bytes[23] !== 0) throw new IsoRecordError('reserved', `header reserved byte is ${bytes[23]}, must be 0`);

  let p = ISO_HEADER_LENGTH;
  const views: IsoFingerView[] = [];
  const seen = new Set<number>();
  for (let vi = 0; vi < nViews; vi++) {
    const at = { view: vi };
    need(p, ISO_VIEW_HEADER_LENGTH, 'fingerViewHeader', at);
    const fingerPosition = bytes[p]!;
    const viewNumber = bytes[p + 1]! >> 4;
    const impressionType = bytes[p + 1]! & 0x0f;
    const fingerQuality = bytes[p + 2]!;
    const count = bytes[p + 3]!;
    if (fingerPosition > MAX_FINGER_POSITION) throw new IsoRecordError('fingerPosition', `${fingerPosition} is out of range 0-${MAX_FINGER_POSITION}`, at);
    if (!IMPRESSION_TYPES.includes(impressionType)) throw new IsoRecordError('impressionType', `${impressionType} is not one of ${IMPRESSION_TYPES.join(', ')}`, at);
    if (fingerQuality > 100) throw new IsoRecordError('fingerQuality', `${fingerQuality} is out of range 0-100`, at);
    const key = (fingerPosition << 4) | viewNumber;
    if (seen.has(key)) throw new IsoRecordError('viewNumber', `finger ${fingerPosition} view ${viewNumber} appears twice`, at);
    seen.add(key);
    p += ISO_VIEW_HEADER_LENGTH;
    // Check the whole minutiae block fits before allocating for it, so a lying count is cheap to refuse.
    need(p, count * ISO_MINUTIA_LENGTH, 'numberOfMinutiae', { ...at, count });
    const minutiae: Minutia[] = [];
    for (let mi = 0; mi < count; mi++, p += ISO_MINUTIA_LENGTH) {
      const where = { view: vi, minutia: mi };
      const w0 = dv.getUint16(p);
      const w1 = dv.getUint16(p + 2);
      const type = TYPE_FROM_BITS[w0 >> 14];
      if (type === undefined) throw new IsoRecordError('minutiaType', 'type bits 11 are reserved', where);
      const x = w0 & MAX_COORD;
      if (w1 >> 14 !== 0) throw new IsoRecordError('minutiaReserved', 'the 2 reserved bits before Y must be 0', where);
      const y = w1 & MAX_COORD;
      if (x >= width) throw new IsoRecordError('minutiaX', `${x} is outside the image (width ${width})`, where);
      if (y >= height) throw new IsoRecordError('minutiaY', `${y} is outside the image (height ${height})`, where);
      const quality = bytes[p + 5]!;
      if (quality > 100) throw new IsoRecordError('minutiaQuality', `${quality} is out of range 0-100`, where);
      minutiae.push({ x, y, angle: isoUnitsToAngle(bytes[p + 4]!), type, quality });
    }
    need(p, 2, 'extendedDataBlockLength', at);
    let block = dv.getUint16(p);
    p += 2;
    need(p, block, 'extendedDataBlockLength', at);
    const extendedData: IsoExtendedDataArea[] = [];
    while (block > 0) {
      if (block < 4) throw new IsoRecordError('extendedDataAreaLength', `${block} bytes left in the block, an area needs at least 4`, at);
      const type = dv.getUint16(p);
      const len = dv.getUint16(p + 2);
      if (type === 0) throw new IsoRecordError('extendedDataType', 'type 0x0000 is reserved', at);
      if (len < 4 || len > block) throw new IsoRecordError('extendedDataAreaLength', `${len} does not fit the ${block} bytes left in the block`, at);
      extendedData.push({ type, data: bytes.slice(p + 4, p + len) });
      p += len;
      block -= len;
    }
    views.push({ fingerPosition, viewNumber, impressionType, fingerQuality, minutiae, extendedData });
  }
  if (p !== total) throw new IsoRecordError('recordLength', `header says ${total} bytes, the finger views end at ${p}`, { declared: total, consumed: p });
  return {
    captureEquipmentCertification: equipment >> 12,
    captureDeviceTypeId: equipment & 0xfff,
    width,
    height,
    resolution: { x: resX, y: resY },
    views,
  };
}

export interface IsoViewOptions {
  fingerPosition?: number;
  viewNumber?: number;
  impressionType?: number;
  captureDeviceTypeId?: number;
}

/** One finger record as a one-view ISO record (live-scan plain, finger position unknown unless given). */
export function fingerRecordToIso(r: FingerRecord, options: IsoViewOptions = {}): IsoFingerMinutiaeRecord {
  return {
    captureEquipmentCertification: 0,
    captureDeviceTypeId: options.captureDeviceTypeId ?? 0,
    width: r.width,
    height: r.height,
    resolution: { x: dpiToPpcm(r.resolution.x), y: dpiToPpcm(r.resolution.y) },
    views: [{
      fingerPosition: options.fingerPosition ?? 0,
      viewNumber: options.viewNumber ?? 0,
      impressionType: options.impressionType ?? 0,
      fingerQuality: Math.round(r.quality),
      minutiae: r.minutiae.map((m) => ({ ...m, quality: Math.round(m.quality) })),
      extendedData: [],
    }],
  };
}

/** The finger record of one view (the first by default). */
export function isoToFingerRecord(iso: IsoFingerMinutiaeRecord, viewIndex = 0): FingerRecord {
  const v = iso.views[viewIndex];
  if (!v) throw new IsoRecordError('numberOfFingerViews', `no view ${viewIndex} (record has ${iso.views.length})`);
  return {
    width: iso.width,
    height: iso.height,
    resolution: { x: ppcmToDpi(iso.resolution.x), y: ppcmToDpi(iso.resolution.y) },
    minutiae: v.minutiae.map((m) => ({ ...m })),
    quality: v.fingerQuality,
  };
}

export const encodeFingerRecordIso = (r: FingerRecord, options: IsoViewOptions = {}) => encodeIsoRecord(fingerRecordToIso(r, options));
export const decodeFingerRecordIso = (bytes: Uint8Array, viewIndex = 0) => isoToFingerRecord(decodeIsoRecord(bytes), viewIndex);
