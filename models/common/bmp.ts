/**
 * A BMP decoder (sharp reads no BMP): BITMAPINFOHEADER and its V4/V5 extensions; 1/4/8-bit palettes, 16-, 24- and
 * 32-bit pixels (BI_RGB, BI_BITFIELDS and BI_ALPHABITFIELDS); bottom-up and top-down rows. Compressed (RLE) files are
 * refused. Grey palettes give one channel, anything else three (or four for 16/32-bit with an alpha mask).
 */
import { BadImageError } from '../../protocol/errors.ts';

export interface BmpImage {
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  data: Uint8Array;
}

export interface BmpOptions {
  /** Refuse images with more pixels than this before allocating them (a 1-bit BMP expands 8 to 32 times). */
  maxPixels?: number;
}

const MAX_SIDE = 50_000;
const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;

export function decodeBmp(buf: Uint8Array, options: BmpOptions = {}): BmpImage {
  const fail = (why: string) => new BadImageError(`BMP: ${why}`);
  if (buf.length < 26 || buf[0] !== 0x42 || buf[1] !== 0x4d) throw fail('not a BMP file (no "BM" signature)');
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dataOffset = v.getUint32(10, true);
  const headerSize = v.getUint32(14, true);
  if (headerSize < 40 || 14 + headerSize > buf.length) throw fail(headerSize === 12 ? 'OS/2 BITMAPCOREHEADER files are not supported' : `truncated or unknown header (${headerSize} bytes)`);
  const width = v.getInt32(18, true);
  const rawHeight = v.getInt32(22, true);
  const bpp = v.getUint16(28, true);
  const compression = v.getUint32(30, true);
  const topDown = rawHeight < 0;
  const height = Math.abs(rawHeight);
  if (width <= 0 || height === 0 || width > MAX_SIDE || height > MAX_SIDE) throw fail(`bad size ${width}x${rawHeight}`);
  const maxPixels = options.maxPixels ?? Infinity;
  if (width * height > maxPixels) throw fail(`${width}x${height} is over the limit of ${maxPixels} pixels`);
  if (compression !== BI_RGB && compression !== BI_BITFIELDS && compression !== BI_ALPHABITFIELDS) {
    throw fail(`compression ${compression} (${compression === 1 || compression === 2 ? 'RLE' : compression === 4 || compression === 5 ? 'embedded JPEG/PNG' : 'unknown'}) is not supported`);
  }
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) throw fail(`${bpp} bits per pixel is not supported`);
  const bitfields = compression !== BI_RGB;
  if (bitfields && bpp !== 16 && bpp !== 32) throw fail(`bit-field masks need 16 or 32 bits per pixel, not ${bpp}`);

  let masks: [number, number, number, number] | null = null;
  let tablesEnd = 14 + headerSize;
  if (bpp === 16 || bpp === 32) {
    if (bitfields) {
      // V2+ headers (>= 52 bytes) hold the masks; a 40-byte header is followed by 3 (or, for ALPHABITFIELDS, 4).
      const withAlpha = headerSize >= 56 || compression === BI_ALPHABITFIELDS;
      if (headerSize === 40) tablesEnd += withAlpha ? 16 : 12;
      if (tablesEnd > buf.length || 54 + (withAlpha ? 16 : 12) > buf.length) throw fail('truncated bit-field masks');
      masks = [v.getUint32(54, true), v.getUint32(58, true), v.getUint32(62, true), withAlpha ? v.getUint32(66, true) : 0];
    } else masks = bpp === 16 ? [0x7c00, 0x03e0, 0x001f, 0] : [0x00ff0000, 0x0000ff00, 0x000000ff, 0];
  }

  let palette: Uint8Array | null = null;
  let grey = false;
  if (bpp <= 8) {
    const count = v.getUint32(46, true) || 1 << bpp;
    const start = 14 + headerSize;
    // A palette longer than 2^bpp entries is odd but harmless; over 256 it is a corrupt header.
    if (count > 256) throw fail(`palette of ${count} colours (at most 256)`);
    if (start + count * 4 > buf.length) throw fail('truncated palette');
    tablesEnd = start + count * 4;
    palette = new Uint8Array(count * 3);
    grey = true;
    for (let i = 0; i < count; i++) {
      const b = buf[start + i * 4]!;
      const g = buf[start + i * 4 + 1]!;
      const r = buf[start + i * 4 + 2]!;
      palette.set([r, g, b], i * 3);
      if (r !== g || g !== b) grey = false;
    }
  }

  if (dataOffset < tablesEnd) throw fail(`pixel data offset ${dataOffset} points inside the headers (which end at ${tablesEnd})`);
  const stride = Math.ceil((width * bpp) / 32) * 4;
  if (dataOffset + stride * height > buf.length) throw fail(`truncated pixel data (${buf.length} bytes, need ${dataOffset + stride * height})`);
  const alpha = masks !== null && masks[3] !== 0;
  const channels: 1 | 3 | 4 = palette ? (grey ? 1 : 3) : alpha ? 4 : 3;
  const out = new Uint8Array(width * height * channels);
  const fields = masks?.map(maskField);
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (topDown ? y : height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * channels;
      if (palette) {
        const idx = bpp === 8 ? buf[row + x]! : bpp === 4 ? (buf[row + (x >> 1)]! >> (x & 1 ? 0 : 4)) & 0x0f : (buf[row + (x >> 3)]! >> (7 - (x & 7))) & 1;
        if (idx * 3 >= palette.length) throw fail(`pixel (${x}, ${y}) uses palette entry ${idx} of ${palette.length / 3}`);
        if (channels === 1) out[o] = palette[idx * 3]!;
        else out.set(palette.subarray(idx * 3, idx * 3 + 3), o);
      } else if (bpp === 24) {
        const p = row + x * 3;
        out[o] = buf[p + 2]!;
        out[o + 1] = buf[p + 1]!;
        out[o + 2] = buf[p]!;
      } else {
        const px = bpp === 16 ? v.getUint16(row + x * 2, true) : v.getUint32(row + x * 4, true);
        for (let c = 0; c < channels; c++) out[o + c] = extract(px, fields![c]!);
      }
    }
  }
  return { width, height, channels, data: out };
}

/** Where a channel's bits sit in a pixel. Bounded to 32 bits: `x >>> 32` is `x >>> 0` in JS, so an all-ones mask would loop forever. */
function maskField(mask: number): { shift: number; bits: number; max: number } {
  if (mask === 0) return { shift: 0, bits: 0, max: 0 };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  let bits = 0;
  while (shift + bits < 32 && ((mask >>> (shift + bits)) & 1) === 1) bits++;
  return { shift, bits, max: 2 ** bits - 1 };
}

function extract(px: number, f: { shift: number; bits: number; max: number }): number {
  if (f.bits === 0) return 255;
  // Scale any field width (1 to 32 bits) to 0-255; `>>> 0` keeps 32-bit values unsigned.
  const v = f.bits >= 32 ? px >>> 0 : (px >>> f.shift) & f.max;
  return Math.round((v * 255) / f.max);
}
