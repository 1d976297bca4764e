/**
 * The biokiosk iris camera's HID protocol: OUR OWN vendor-defined protocol (usage page 0xFF00), not a vendor's
 * (real iris modules such as IriShield speak their own protocol over USB bulk or a UART). README.md in this folder
 * documents it with the report descriptor (REPORT_DESCRIPTOR below). Pure codecs and the image reassembler; no I/O.
 *
 * All multi-byte fields little-endian; byte 0 of every report is its id.
 */
import { crc32 } from 'node:zlib';
import { HidProtocolError } from './errors.ts';

export const REPORT = Object.freeze({
  deviceInfo: 0x01,
  illumination: 0x02,
  exposure: 0x03,
  capture: 0x04,
  imageBegin: 0x10,
  imageData: 0x11,
  imageEnd: 0x12,
});

/** Report lengths including the id byte. */
export const REPORT_LENGTH = Object.freeze({ deviceInfo: 64, illumination: 4, exposure: 6, capture: 6, imageBegin: 13, imageData: 1024, imageEnd: 7 });
export const DATA_HEADER = 7;
export const CHUNK_BYTES = REPORT_LENGTH.imageData - DATA_HEADER; // 1017
export const PROTOCOL_VERSION = 1;
export const MAX_IMAGE_BYTES = 4096 * 4096;

/** The device's HID report descriptor (see README.md for the annotated version). */
export const REPORT_DESCRIPTOR = Uint8Array.from([
  0x06, 0x00, 0xff, // Usage Page (Vendor Defined 0xFF00)
  0x09, 0x01, // Usage (0x01: iris camera)
  0xa1, 0x01, // Collection (Application)
  0x15, 0x00, // Logical Minimum (0)
  0x26, 0xff, 0x00, // Logical Maximum (255)
  0x75, 0x08, // Report Size (8)
  0x85, 0x01, 0x09, 0x02, 0x95, 0x3f, 0xb1, 0x02, // Report ID 1, Usage 2, Report Count 63, Feature (Data,Var,Abs): device info
  0x85, 0x02, 0x09, 0x03, 0x95, 0x03, 0xb1, 0x02, // Report ID 2, Usage 3, Report Count 3, Feature: NIR illumination
  0x85, 0x03, 0x09, 0x04, 0x95, 0x05, 0xb1, 0x02, // Report ID 3, Usage 4, Report Count 5, Feature: exposure
  0x85, 0x04, 0x09, 0x05, 0x95, 0x05, 0xb1, 0x02, // Report ID 4, Usage 5, Report Count 5, Feature: capture control
  0x85, 0x10, 0x09, 0x10, 0x95, 0x0c, 0x81, 0x02, // Report ID 0x10, Usage 0x10, Report Count 12, Input: image begin
  0x85, 0x11, 0x09, 0x11, 0x96, 0xff, 0x03, 0x81, 0x02, // Report ID 0x11, Usage 0x11, Report Count 1023, Input: image data
  0x85, 0x12, 0x09, 0x12, 0x95, 0x06, 0x81, 0x02, // Report ID 0x12, Usage 0x12, Report Count 6, Input: image end
  0xc0, // End Collection
]);

/** Report sizes (bytes, id included) per (type, id) read back from a report descriptor's main items. */
export function descriptorReportSizes(d: Uint8Array): Map<string, number> {
  const sizes = new Map<string, number>();
  let size = 0;
  let count = 0;
  let id = 0;
  for (let i = 0; i < d.length; ) {
    const prefix = d[i]!;
    const n = [0, 1, 2, 4][prefix & 3]!;
    let v = 0;
    for (let k = 0; k < n; k++) v |= d[i + 1 + k]! << (8 * k);
    const tag = prefix & 0xfc;
    if (tag === 0x74) size = v;
    else if (tag === 0x94) count = v;
    else if (tag === 0x84) id = v;
    else if (tag === 0x80 || tag === 0xb0 || tag === 0x90) {
      const kind = tag === 0x80 ? 'input' : tag === 0xb0 ? 'feature' : 'output';
      const key = `${kind}:${id}`;
      sizes.set(key, (sizes.get(key) ?? 1) + (size * count) / 8);
    }
    i += 1 + n;
  }
  return sizes;
}

export interface IrisDeviceInfo {
  protocol: number;
  make: string;
  model: string;
  serial: string;
  firmware: string;
  maxWidth: number;
  maxHeight: number;
}

const ascii = (b: Uint8Array) => Buffer.from(b).toString('latin1').replace(/\0+$/, '');
const putAscii = (out: Uint8Array, at: number, s: string, n: number) => out.set(Buffer.from(s.slice(0, n), 'latin1'), at);

export function encodeDeviceInfo(i: IrisDeviceInfo): Uint8Array {
  const out = new Uint8Array(REPORT_LENGTH.deviceInfo);
  const v = new DataView(out.buffer);
  out[0] = REPORT.deviceInfo;
  out[1] = i.protocol;
  putAscii(out, 2, i.make, 16);
  putAscii(out, 18, i.model, 16);
  putAscii(out, 34, i.serial, 16);
  const [maj, min, patch] = i.firmware.split('.').map((x) => Number(x) || 0);
  out[50] = maj ?? 0;
  out[51] = min ?? 0;
  v.setUint16(52, patch ?? 0, true);
  v.setUint16(54, i.maxWidth, true);
  v.setUint16(56, i.maxHeight, true);
  return out;
}

export function decodeDeviceInfo(r: Uint8Array): IrisDeviceInfo {
  expectReport(r, REPORT.deviceInfo, REPORT_LENGTH.deviceInfo, 'device info');
  const v = view(r);
  return {
    protocol: r[1]!,
    make: ascii(r.subarray(2, 18)),
    model: ascii(r.subarray(18, 34)),
    serial: ascii(r.subarray(34, 50)),
    firmware: `${r[50]}.${r[51]}.${v.getUint16(52, true)}`,
    maxWidth: v.getUint16(54, true),
    maxHeight: v.getUint16(56, true),
  };
}

export interface Illumination {
  /** Near-infrared LED drive, 0-100 %. */
  level: number;
  wavelengthNm: number;
}

export function encodeIllumination(i: Illumination): Uint8Array {
  if (!Number.isInteger(i.level) || i.level < 0 || i.level > 100) throw new RangeError(`illumination level must be 0-100, got ${i.level}`);
  const out = new Uint8Array(REPORT_LENGTH.illumination);
  out[0] = REPORT.illumination;
  out[1] = i.level;
  view(out).setUint16(2, i.wavelengthNm, true);
  return out;
}

export function decodeIllumination(r: Uint8Array): Illumination {
  expectReport(r, REPORT.illumination, REPORT_LENGTH.illumination, 'illumination');
  return { level: r[1]!, wavelengthNm: view(r).getUint16(2, true) };
}

export interface Exposure {
  microseconds: number;
  /** Analogue gain, 0-255 (device units). */
  gain: number;
}

export function encodeExposure(e: Exposure): Uint8Array {
  if (!Number.isInteger(e.microseconds) || e.microseconds < 1 || e.microseconds > 1_000_000) throw new RangeError(`exposure must be 1-1000000 us, got ${e.microseconds}`);
  if (!Number.isInteger(e.gain) || e.gain < 0 || e.gain > 255) throw new RangeError(`gain must be 0-255, got ${e.gain}`);
  const out = new Uint8Array(REPORT_LENGTH.exposure);
  out[0] = REPORT.exposure;
  view(out).setUint32(1, e.microseconds, true);
  out[5] = e.gain;
  return out;
}

export function decodeExposure(r: Uint8Array): Exposure {
  expectReport(r, REPORT.exposure, REPORT_LENGTH.exposure, 'exposure');
  return { microseconds: view(r).getUint32(1, true), gain: r[5]! };
}

export interface CaptureControl {
  /** 1 = stream images, 0 = stop. In a get: the current state. */
  streaming: boolean;
  width: number;
  height: number;
}

export function encodeCapture(c: CaptureControl): Uint8Array {
  const out = new Uint8Array(REPORT_LENGTH.capture);
  out[0] = REPORT.capture;
  out[1] = c.streaming ? 1 : 0;
  view(out).setUint16(2, c.width, true);
  view(out).setUint16(4, c.height, true);
  return out;
}

export function decodeCapture(r: Uint8Array): CaptureControl {
  expectReport(r, REPORT.capture, REPORT_LENGTH.capture, 'capture control');
  return { streaming: r[1] === 1, width: view(r).getUint16(2, true), height: view(r).getUint16(4, true) };
}

// ---- the image stream -------------------------------------------------------------------------------------------

export function imageReports(seq: number, width: number, height: number, pixels: Uint8Array): Uint8Array[] {
  const chunks = Math.ceil(pixels.length / CHUNK_BYTES);
  const begin = new Uint8Array(REPORT_LENGTH.imageBegin);
  const bv = view(begin);
  begin[0] = REPORT.imageBegin;
  bv.setUint16(1, seq & 0xffff, true);
  bv.setUint16(3, width, true);
  bv.setUint16(5, height, true);
  bv.setUint16(7, chunks, true);
  bv.setUint32(9, pixels.length, true);
  const out = [begin];
  for (let c = 0; c < chunks; c++) {
    const r = new Uint8Array(REPORT_LENGTH.imageData);
    const v = view(r);
    const part = pixels.subarray(c * CHUNK_BYTES, (c + 1) * CHUNK_BYTES);
    r[0] = REPORT.imageData;
    v.setUint16(1, seq & 0xffff, true);
    v.setUint16(3, c, true);
    v.setUint16(5, part.length, true);
    r.set(part, DATA_HEADER);
    out.push(r);
  }
  const end = new Uint8Array(REPORT_LENGTH.imageEnd);
  end[0] = REPORT.imageEnd;
  view(end).setUint16(1, seq & 0xffff, true);
  view(end).setUint32(3, crc32(pixels) >>> 0, true);
  out.push(end);
  return out;
}

export interface ReceivedImage {
  seq: number;
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * Reassembles one image from its reports. Chunks may be checked in any order into a bitmap, so every fault is named:
 * a chunk seen twice is 'repeated', one that arrives before an earlier one 'reordered', one missing at the end
 * 'lost', a bad checksum 'crc'. The first fault ends the image (HidProtocolError); the camera then waits for the next.
 * Reports outside an image (before its begin) are ignored: a stream joined mid-image starts at the next begin.
 */
export class ImageAssembler {
  private current: { seq: number; width: number; height: number; chunks: number; bytes: number; data: Uint8Array; seen: Uint8Array; got: number; last: number } | null = null;

  get inImage(): boolean {
    return this.current !== null;
  }

  reset(): void {
    this.current = null;
  }

  /** Feeds one input report; returns the finished image, or null while one is being received. */
  push(r: Uint8Array): ReceivedImage | null {
    const id = r[0];
    if (id === REPORT.imageBegin) {
      const interrupted = this.current;
      this.current = null;
      expectReport(r, REPORT.imageBegin, REPORT_LENGTH.imageBegin, 'image begin');
      const v = view(r);
      const seq = v.getUint16(1, true);
      const width = v.getUint16(3, true);
      const height = v.getUint16(5, true);
      const chunks = v.getUint16(7, true);
      const bytes = v.getUint32(9, true);
      if (width === 0 || height === 0 || bytes !== width * height || bytes > MAX_IMAGE_BYTES || chunks !== Math.ceil(bytes / CHUNK_BYTES)) {
        throw new HidProtocolError('malformed', `image begin: ${width}x${height}, ${bytes} bytes in ${chunks} chunks does not add up`, { width, height, bytes, chunks });
      }
      this.current = { seq, width, height, chunks, bytes, data: new Uint8Array(bytes), seen: new Uint8Array(chunks), got: 0, last: -1 };
      if (interrupted) throw new HidProtocolError('interrupted', `image ${interrupted.seq} ended after ${interrupted.got} of ${interrupted.chunks} chunks: image ${seq} began`, { seq: interrupted.seq });
      return null;
    }
    const cur = this.current;
    if (!cur) return null;
    if (id === REPORT.imageData) {
      if (r.length < DATA_HEADER) this.fail('length', `image data report of ${r.length} bytes`);
      const v = view(r);
      const seq = v.getUint16(1, true);
      const chunk = v.getUint16(3, true);
      const len = v.getUint16(5, true);
      if (seq !== cur.seq) this.fail('interrupted', `chunk of image ${seq} inside image ${cur.seq}`);
      if (chunk >= cur.chunks) this.fail('malformed', `chunk ${chunk} of an image of ${cur.chunks}`);
      const expectedLen = chunk === cur.chunks - 1 ? cur.bytes - chunk * CHUNK_BYTES : CHUNK_BYTES;
      if (len !== expectedLen || r.length < DATA_HEADER + len) this.fail('length', `chunk ${chunk} carries ${len} bytes in a ${r.length}-byte report, expected ${expectedLen}`);
      if (cur.seen[chunk]) this.fail('repeated', `chunk ${chunk} of image ${cur.seq} arrived twice`, { chunk });
      if (chunk < cur.last) this.fail('reordered', `chunk ${chunk} of image ${cur.seq} arrived after chunk ${cur.last}`, { chunk });
      cur.seen[chunk] = 1;
      cur.got++;
      cur.last = chunk;
      cur.data.set(r.subarray(DATA_HEADER, DATA_HEADER + len), chunk * CHUNK_BYTES);
      return null;
    }
    if (id === REPORT.imageEnd) {
      expectReport(r, REPORT.imageEnd, REPORT_LENGTH.imageEnd, 'image end');
      const v = view(r);
      if (v.getUint16(1, true) !== cur.seq) this.fail('interrupted', `end of image ${v.getUint16(1, true)} inside image ${cur.seq}`);
      if (cur.got !== cur.chunks) {
        const missing = cur.seen.findIndex((s) => !s);
        this.fail('lost', `image ${cur.seq}: ${cur.chunks - cur.got} of ${cur.chunks} chunks lost (first: ${missing})`, { missing: cur.chunks - cur.got, first: missing });
      }
      const expected = v.getUint32(3, true);
      const actual = crc32(cur.data) >>> 0;
      if (expected !== actual) this.fail('crc', `image ${cur.seq}: CRC-32 0x${actual.toString(16).padStart(8, '0')} does not match the device's 0x${expected.toString(16).padStart(8, '0')}`);
      this.current = null;
      return { seq: cur.seq, width: cur.width, height: cur.height, data: cur.data };
    }
    this.fail('malformed', `unknown input report id 0x${(id ?? 0).toString(16)}`);
  }

  private fail(fault: HidProtocolError['fault'], message: string, details?: Record<string, unknown>): never {
    this.current = null;
    throw new HidProtocolError(fault, message, details);
  }
}

function view(r: Uint8Array): DataView {
  return new DataView(r.buffer, r.byteOffset, r.byteLength);
}

function expectReport(r: Uint8Array, id: number, length: number, what: string): void {
  if (r[0] !== id) throw new HidProtocolError('malformed', `${what}: report id 0x${(r[0] ?? 0).toString(16)}, expected 0x${id.toString(16)}`);
  if (r.length < length) throw new HidProtocolError('length', `${what}: ${r.length} bytes, expected ${length}`);
}
