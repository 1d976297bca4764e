/**
 * Contextual Gabor enhancement, selection half: the `fp_gabor` graph filters the normalised image with every filter
 * of the bank; here each pixel takes the bilinear blend of the four filters nearest to its own ridge-normal angle and
 * ridge frequency (two orientations x two periods), which acts like a filter tuned to that pixel.
 */
import { GABOR } from '../build.ts';

export interface Selector {
  normal: Float32Array;
  period: Float32Array;
  mask: Uint8Array;
  width: number;
}

/** Writes the enhanced values for rows [top, top+rows) of `out` from one strip of bank responses. */
export function selectResponses(
  sel: Selector,
  responses: Float32Array,
  stripHeight: number,
  top: number,
  rows: number,
  haloTop: number,
  out: Float32Array,
): void {
  const K = GABOR.orientations;
  const freqs = GABOR.periods.map((p) => 1 / p);
  const F = freqs.length;
  const w = sel.width;
  const plane = stripHeight * w;
  const step = Math.PI / K;
  for (let y = top; y < top + rows; y++) {
    const srow = (y - top + haloTop) * w;
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!sel.mask[i]) continue;
      // The normal lies in (-pi/2, pi/2], so a lies in (-K/2, K/2]: one wrap instead of a float modulo.
      let a = sel.normal[i]! / step;
      if (a < 0) a += K;
      const fa = Math.floor(a);
      const k0 = fa >= K ? fa - K : fa;
      const k1 = k0 + 1 === K ? 0 : k0 + 1;
      const wk = a - fa;
      const f = 1 / sel.period[i]!;
      // Periods ascend, so frequencies descend with the channel group index.
      let p0 = 0;
      let wp = 0;
      if (f >= freqs[0]!) (p0 = 0), (wp = 0);
      else if (f <= freqs[F - 1]!) (p0 = F - 2), (wp = 1);
      else {
        while (p0 < F - 2 && f < freqs[p0 + 1]!) p0++;
        wp = (freqs[p0]! - f) / (freqs[p0]! - freqs[p0 + 1]!);
      }
      const p1 = p0 + 1;
      const s = srow + x;
      const r00 = responses[(p0 * K + k0) * plane + s]!;
      const r01 = responses[(p0 * K + k1) * plane + s]!;
      const r10 = responses[(p1 * K + k0) * plane + s]!;
      const r11 = responses[(p1 * K + k1) * plane + s]!;
      out[i] = (1 - wp) * ((1 - wk) * r00 + wk * r01) + wp * ((1 - wk) * r10 + wk * r11);
    }
  }
}
