/** Encoded image bytes (PNG, BMP, TIFF, JPEG ... via models/common/image.ts) -> 8-bit gray for the extractor. */
import { decodeImage } from '../../common/image.ts';
import type { GrayImage } from './types.ts';

export async function decodeGray(bytes: Uint8Array, options: { maxSide?: number } = {}): Promise<GrayImage> {
  // Fingerprint detail must not be downscaled away: allow the extractor's largest side.
  const img = await decodeImage(bytes, { maxSide: options.maxSide ?? 4096 });
  const data = new Uint8Array(img.width * img.height);
  for (let i = 0, j = 0; i < data.length; i++, j += 3) {
    // ITU-R BT.601 luma.
    data[i] = Math.round(0.299 * img.data[j]! + 0.587 * img.data[j + 1]! + 0.114 * img.data[j + 2]!);
  }
  return { width: img.width, height: img.height, data };
}
