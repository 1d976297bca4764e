/**
 * Decoding of still images (JPEG, PNG, WebP, TIFF, GIF, AVIF through sharp; BMP and Netpbm (PGM, PPM, PBM) through
 * our own decoders) into
 * RGB rasters, EXIF orientation applied. Every failure is a BadImageError naming what was wrong.
 */
import sharp from 'sharp';
import { BadImageError } from '../../protocol/errors.ts';
import { decodeNetpbm, isNetpbm } from './netpbm.ts';
import type { Raster } from './raster.ts';

export interface DecodeOptions {
  /** Refuse images with more pixels than this (a decompression-bomb guard). Default 100 megapixels. */
  maxInputPixels?: number;
  /** Downscale (never upscale) so the longer side is at most this. Default 2048. */
  maxSide?: number;
}

export interface DecodedImage extends Raster {
  channels: 3;
  /** Size of the image as stored, after EXIF rotation, before any downscaling. */
  original: { width: number; height: number; format: string };
  /** original size / decoded size (1 when not downscaled). */
  scale: number;
}

const DEFAULT_MAX_PIXELS = 100_000_000;
const DEFAULT_MAX_SIDE = 2048;

export async function decodeImage(bytes: Uint8Array, options: DecodeOptions = {}): Promise<DecodedImage> {
  const maxPixels = options.maxInputPixels ?? DEFAULT_MAX_PIXELS;
  const maxSide = options.maxSide ?? DEFAULT_MAX_SIDE;
  if (bytes.length === 0) throw new BadImageError('the image file is empty');
  let input: sharp.Sharp;
  let format: string;
  let stored: { width: number; height: number };
  if (bytes[0] === 0x42 && bytes[1] === 0x4d) {
    // 'BM': sharp has no BMP reader.
    const { decodeBmp } = await import('./bmp.ts');
    const bmp = decodeBmp(bytes, { maxPixels });
    if (bmp.width * bmp.height > maxPixels) throw tooLarge(bmp.width, bmp.height, maxPixels);
    input = sharp(bmp.data, { raw: { width: bmp.width, height: bmp.height, channels: bmp.channels } });
    format = 'bmp';
    stored = { width: bmp.width, height: bmp.height };
  } else if (isNetpbm(bytes)) {
    // 'P1'-'P6': sharp has no Netpbm reader either.
    const pnm = decodeNetpbm(bytes, { maxPixels });
    input = sharp(pnm.data, { raw: { width: pnm.width, height: pnm.height, channels: pnm.channels } });
    format = pnm.channels === 1 ? 'pgm' : 'ppm';
    stored = { width: pnm.width, height: pnm.height };
  } else {
    input = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error', sequentialRead: true });
    let meta: sharp.Metadata;
    try {
      // Header only: the pixel limit is checked below, with the image's size in the message.
      meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    } catch (e) {
      throw describeSharpError(e);
    }
    if (!meta.width || !meta.height || !meta.format) throw new BadImageError('the file is not an image in a supported format');
    if (meta.width * meta.height > maxPixels) throw tooLarge(meta.width, meta.height, maxPixels);
    format = meta.format;
    // EXIF orientations 5-8 swap width and height.
    const swap = (meta.orientation ?? 1) >= 5;
    stored = swap ? { width: meta.height, height: meta.width } : { width: meta.width, height: meta.height };
  }
  try {
    const { data, info } = await input
      .rotate() // honour EXIF orientation
      .resize({ width: maxSide, height: maxSide, fit: 'inside', withoutEnlargement: true })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new BadImageError(`decoded to ${info.channels} channels, expected 3`);
    return {
      width: info.width,
      height: info.height,
      channels: 3,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      original: { ...stored, format },
      scale: stored.width / info.width,
    };
  } catch (e) {
    if (e instanceof BadImageError) throw e;
    throw describeSharpError(e);
  }
}

function tooLarge(w: number, h: number, max: number): BadImageError {
  return new BadImageError(`the image is too large: ${w}x${h} is over the limit of ${(max / 1e6).toFixed(0)} megapixels`, {
    details: { width: w, height: h, maxInputPixels: max },
  });
}

function describeSharpError(e: unknown): BadImageError {
  const msg = e instanceof Error ? e.message : String(e);
  if (/unsupported image format/i.test(msg)) return new BadImageError('the file is not an image in a supported format', { cause: e });
  if (/premature end|truncated|unexpected end|corrupt|VipsJpeg|Invalid|bad/i.test(msg)) {
    return new BadImageError(`the image data is corrupt or truncated (${firstLine(msg)})`, { cause: e });
  }
  if (/pixel limit/i.test(msg)) return new BadImageError(`the image is too large (${firstLine(msg)})`, { cause: e });
  return new BadImageError(`the image cannot be decoded (${firstLine(msg)})`, { cause: e });
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}
