/**
 * The module's image format and the driver's output type. The module sends 4 bits per pixel, two pixels per byte,
 * high nibble first, rows top to bottom; the driver widens each nibble v to v * 17 (0..15 -> 0..255, so 15 is white).
 */
import { IMAGE_HEIGHT, IMAGE_PACKED_BYTES, IMAGE_WIDTH } from './constants.ts';

/** An 8-bit grayscale raster, row-major, one byte per pixel. */
export interface GrayImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** 4-bit packed (high nibble first) -> 8-bit gray. */
export function unpackImage(packed: Uint8Array, width = IMAGE_WIDTH, height = IMAGE_HEIGHT): GrayImage {
  const n = width * height;
  if (packed.length * 2 !== n) throw new RangeError(`a ${width}x${height} image packs into ${n / 2} bytes, got ${packed.length}`);
  const data = new Uint8Array(n);
  for (let i = 0; i < packed.length; i++) {
    const b = packed[i]!;
    data[2 * i] = (b >> 4) * 17;
    data[2 * i + 1] = (b & 0x0f) * 17;
  }
  return { width, height, data };
}

/** 8-bit gray -> 4-bit packed, keeping the top nibble (what the module's ADC path delivers). */
export function packImage(gray: Uint8Array): Uint8Array {
  if (gray.length % 2 !== 0) throw new RangeError('an odd number of pixels cannot be packed two per byte');
  const out = new Uint8Array(gray.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = (gray[2 * i]! & 0xf0) | (gray[2 * i + 1]! >> 4);
  return out;
}

/** What an 8-bit image looks like after the trip through the module: each pixel quantised to 4 bits and widened. */
export function quantise4(gray: Uint8Array): Uint8Array {
  const out = new Uint8Array(gray.length);
  for (let i = 0; i < gray.length; i++) out[i] = (gray[i]! >> 4) * 17;
  return out;
}

export const SENSOR_IMAGE = { width: IMAGE_WIDTH, height: IMAGE_HEIGHT, packedBytes: IMAGE_PACKED_BYTES } as const;
