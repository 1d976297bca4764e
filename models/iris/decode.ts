/**
 * Encoded image bytes -> 8-bit grey for the iris extractor: the very pixels the shared decoder gives
 * (models/fingerprint/extract/decode.ts: sharp to sRGB, EXIF orientation applied, BT.601 luma), in one sharp call
 * without the header read before it. BMP and Netpbm, anything sharp refuses and anything unusual go through the
 * shared decoder, which also names what was wrong with a bad file.
 */
import sharp from 'sharp';
import { isNetpbm } from '../common/netpbm.ts';
import { decodeGray } from '../fingerprint/extract/decode.ts';
import type { GrayImage } from './extractor.ts';

/** The shared decoder's decompression-bomb guard (models/common/image.ts). */
const MAX_INPUT_PIXELS = 100_000_000;

export async function decodeIrisImage(bytes: Uint8Array, o: { maxSide: number }): Promise<GrayImage> {
  const bmp = bytes[0] === 0x42 && bytes[1] === 0x4d;
  if (bytes.length === 0 || bmp || isNetpbm(bytes)) return decodeGray(bytes, o);
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    raw = await sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error', sequentialRead: true })
      .rotate()
      .resize({ width: o.maxSide, height: o.maxSide, fit: 'inside', withoutEnlargement: true })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch {
    return decodeGray(bytes, o);
  }
  if (raw.info.channels !== 3) return decodeGray(bytes, o);
  return { width: raw.info.width, height: raw.info.height, data: lumaOf(raw.data, raw.info.width * raw.info.height) };
}

// BT.601 weights times each 8-bit value: the same products the shared decoder forms, looked up.
const weighted = (k: number) => Float64Array.from({ length: 256 }, (_, v) => k * v);
const RED = weighted(0.299);
const GREEN = weighted(0.587);
const BLUE = weighted(0.114);

/** 8-bit luma of packed RGB; grey pixels (r = g = b) are their own luma, which the rounding gives too. */
export function lumaOf(rgb: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels);
  for (let i = 0, j = 0; i < pixels; i++, j += 3) {
    const r = rgb[j]!;
    const g = rgb[j + 1]!;
    const b = rgb[j + 2]!;
    out[i] = r === g && g === b ? r : Math.round(RED[r]! + GREEN[g]! + BLUE[b]!);
  }
  return out;
}
