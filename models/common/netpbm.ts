/**
 * A Netpbm decoder (sharp reads none of these): PBM, PGM and PPM, plain (ASCII: P1, P2, P3) and raw (binary: P4, P5,
 * P6), any maxval from 1 to 65535 (two bytes per sample, most significant first, above 255), `#` comments in the
 * header. Samples are scaled to 0-255. A file holding several images gives the first one. PBM's 1 is black.
 * PAM (P7) is refused: it is rare and carries tuple types we would have to interpret.
 */
import { BadImageError } from '../../protocol/errors.ts';

export interface NetpbmImage {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

export interface NetpbmOptions {
  /** Refuse images with more pixels than this before allocating them. */
  maxPixels?: number;
}

const MAX_SIDE = 50_000;

/** Whether the bytes start like a Netpbm file ("P1" to "P6" then white space). */
export function isNetpbm(buf: Uint8Array): boolean {
  return buf.length >= 3 && buf[0] === 0x50 && buf[1]! >= 0x31 && buf[1]! <= 0x36 && isSpace(buf[2]!);
}

export function decodeNetpbm(buf: Uint8Array, options: NetpbmOptions = {}): NetpbmImage {
  const fail = (why: string) => new BadImageError(`Netpbm: ${why}`);
  if (buf.length >= 2 && buf[0] === 0x50 && buf[1] === 0x37) throw fail('PAM (P7) files are not supported');
  if (!isNetpbm(buf)) throw fail('not a Netpbm file (no P1-P6 signature)');
  const kind = buf[1]! - 0x30; // 1..6
  const plain = kind <= 3;
  const bitmap = kind === 1 || kind === 4;
  const channels: 1 | 3 = kind === 3 || kind === 6 ? 3 : 1;
  const r = new HeaderReader(buf, 2, fail);
  const width = r.integer('width');
  const height = r.integer('height');
  if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) throw fail(`bad size ${width}x${height}`);
  const maxPixels = options.maxPixels ?? Infinity;
  if (width * height > maxPixels) throw fail(`${width}x${height} is over the limit of ${maxPixels} pixels`);
  const maxval = bitmap ? 1 : r.integer('maxval');
  if (maxval < 1 || maxval > 65535) throw fail(`maxval ${maxval} is outside 1-65535`);
  const samples = width * height * channels;
  const out = new Uint8Array(samples);
  // Exact rounding of v * 255 / maxval; a lookup keeps 16-bit files cheap.
  const scale = maxval === 255 ? null : Uint8Array.from({ length: maxval + 1 }, (_, v) => Math.round((v * 255) / maxval));
  const put = (k: number, v: number) => {
    if (v > maxval) throw fail(`sample ${v} at ${describe(k, width, channels)} is above maxval ${maxval}`);
    out[k] = bitmap ? (v ? 0 : 255) : scale ? scale[v]! : v;
  };
  if (plain) {
    for (let k = 0; k < samples; k++) put(k, bitmap ? r.bit() : r.integer('sample'));
    return { width, height, channels, data: out };
  }
  // Raw formats: exactly one white-space byte separates the header from the pixels.
  const start = r.endOfHeader();
  if (bitmap) {
    const stride = Math.ceil(width / 8);
    if (start + stride * height > buf.length) throw fail(`truncated pixel data (${buf.length} bytes, need ${start + stride * height})`);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) put(y * width + x, (buf[start + y * stride + (x >> 3)]! >> (7 - (x & 7))) & 1);
    }
    return { width, height, channels, data: out };
  }
  const bytes = maxval > 255 ? 2 : 1;
  if (start + samples * bytes > buf.length) throw fail(`truncated pixel data (${buf.length} bytes, need ${start + samples * bytes})`);
  if (bytes === 1) for (let k = 0; k < samples; k++) put(k, buf[start + k]!);
  else for (let k = 0; k < samples; k++) put(k, (buf[start + 2 * k]! << 8) | buf[start + 2 * k + 1]!);
  return { width, height, channels, data: out };
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0b || c === 0x0c || c === 0x0d;
}

function describe(k: number, width: number, channels: number): string {
  const p = Math.floor(k / channels);
  return `pixel (${p % width}, ${Math.floor(p / width)})`;
}

/** Reads the white-space separated tokens of a Netpbm header (and of plain-format pixel data), skipping comments. */
class HeaderReader {
  constructor(
    private readonly buf: Uint8Array,
    private pos: number,
    private readonly fail: (why: string) => BadImageError,
  ) {}

  private skip(): void {
    const b = this.buf;
    while (this.pos < b.length) {
      const c = b[this.pos]!;
      if (c === 0x23) {
        // A comment runs to the end of its line.
        while (this.pos < b.length && b[this.pos] !== 0x0a && b[this.pos] !== 0x0d) this.pos++;
      } else if (isSpace(c)) this.pos++;
      else return;
    }
  }

  integer(what: string): number {
    this.skip();
    const b = this.buf;
    let v = 0;
    let digits = 0;
    while (this.pos < b.length && b[this.pos]! >= 0x30 && b[this.pos]! <= 0x39) {
      v = v * 10 + (b[this.pos]! - 0x30);
      if (v > 0x7fffffff) throw this.fail(`${what} is too large`);
      this.pos++;
      digits++;
    }
    if (digits === 0) throw this.fail(this.pos >= b.length ? `truncated file (no ${what})` : `expected a number for ${what}, found byte 0x${b[this.pos]!.toString(16)}`);
    return v;
  }

  /** Plain PBM: each pixel is one "0" or "1", white space optional between them. */
  bit(): number {
    this.skip();
    const c = this.buf[this.pos];
    if (c !== 0x30 && c !== 0x31) throw this.fail(c === undefined ? 'truncated file (missing pixels)' : `expected 0 or 1 in the bitmap, found byte 0x${c.toString(16)}`);
    this.pos++;
    return c - 0x30;
  }

  endOfHeader(): number {
    if (this.pos >= this.buf.length || !isSpace(this.buf[this.pos]!)) throw this.fail('no white space after the header');
    return this.pos + 1;
  }
}
