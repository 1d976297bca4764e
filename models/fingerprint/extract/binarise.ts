/**
 * Binarisation: the Gabor output is a zero-mean wave, negative on (dark) ridges, so the threshold is 0. A 3x3
 * majority vote then removes one-pixel specks and pinholes that would thin into tiny spurs and loops.
 */
export function binarise(enhanced: Float32Array, mask: Uint8Array, width: number, height: number): Uint8Array {
  const raw = new Uint8Array(enhanced.length);
  for (let i = 0; i < raw.length; i++) raw[i] = mask[i] && enhanced[i]! < 0 ? 1 : 0;
  const out = new Uint8Array(raw.length);
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const i = y * width + x;
      if (!mask[i]) continue;
      const s =
        raw[i - width - 1]! + raw[i - width]! + raw[i - width + 1]! + raw[i - 1]! + raw[i]! + raw[i + 1]! + raw[i + width - 1]! + raw[i + width]! + raw[i + width + 1]!;
      out[i] = s >= 5 ? 1 : 0;
    }
  }
  return out;
}
