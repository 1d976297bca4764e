/**
 * Which samples of the polar image show iris: not outside the image, not a glint, not eyelid or eyelash.
 *
 * The reference is the iris texture where it is almost never covered: the lateral sectors (within 30 degrees of
 * the horizontal), rings 15-75%. Its median and robust spread (1.4826 x median absolute deviation) set two bounds:
 * brighter than median + brightSpread x spread is lid skin, sclera or a glint's halo; darker than median -
 * darkSpread x spread is a lash or lid shadow. An eyelid is a boundary, not speckle: along each angle, from the
 * innermost ring beyond which most samples are bright (the lid's edge) outwards everything is masked, and that cut-off is smoothed
 * over neighbouring angles so one textured column does not leave a hole in a lid.
 */
import type { PolarImage } from './normalise.ts';

export interface Occlusion {
  /** rows x cols, 1 = usable iris. */
  valid: Uint8Array;
  median: number;
  spread: number;
  /** Share of usable samples. */
  usable: number;
}

export function occlusionMask(p: PolarImage, o: { brightSpread: number; darkSpread: number }): Occlusion {
  const { rows, cols, data } = p;
  const sector = Math.round(cols / 12); // 30 degrees
  const firstRing = Math.floor(rows * 0.15);
  const lastRing = Math.ceil(rows * 0.75);
  const refAll = new Float64Array(Math.max(0, lastRing - firstRing) * (2 * sector + 1) * 2);
  let nRef = 0;
  for (let i = firstRing; i < lastRing; i++) {
    for (let d = -sector; d <= sector; d++) {
      for (let side = 0; side < 2; side++) {
        const j = ((side ? cols / 2 : 0) + d + cols) % cols;
        const v = data[i * cols + j]!;
        if (v === v && !p.glint[i * cols + j]) refAll[nRef++] = v;
      }
    }
  }
  // Typed arrays sort numerically, as the comparator did.
  const ref = refAll.subarray(0, nRef).sort();
  const median = ref.length ? ref[ref.length >> 1]! : 128;
  const dev = ref.map((v) => Math.abs(v - median)).sort();
  const spread = Math.max(4, 1.4826 * (dev.length ? dev[dev.length >> 1]! : 16));
  const bright = median + o.brightSpread * spread;
  const dark = median - o.darkSpread * spread;
  const valid = new Uint8Array(rows * cols);
  const cut = new Int32Array(cols);
  // NaN (outside the image) counts as bright.
  const brightAt = new Uint8Array(rows * cols);
  for (let k = 0; k < rows * cols; k++) brightAt[k] = !(data[k]! <= bright) ? 1 : 0;
  for (let j = 0; j < cols; j++) {
    // From the outside in: the innermost ring from which at least 60% of the samples outwards are bright (lid).
    let c = rows;
    let brightOut = 0;
    for (let i = rows - 1; i >= 0; i--) {
      if (!brightAt[i * cols + j]) continue;
      brightOut++;
      if (brightOut >= 0.6 * (rows - i) && (i + 1 >= rows || brightAt[(i + 1) * cols + j])) c = i;
    }
    cut[j] = c;
  }
  // Smooth the cut-off: the minimum of the median over +-4 columns and the column's own value (never unmask more).
  const smoothCut = new Int32Array(cols);
  const win = new Int32Array(9);
  for (let j = 0; j < cols; j++) {
    for (let d = -4; d <= 4; d++) win[d + 4] = cut[(j + d + cols) % cols]!;
    win.sort();
    smoothCut[j] = Math.min(cut[j]!, win[4]!);
  }
  let usable = 0;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const k = i * cols + j;
      const v = data[k]!;
      const ok = i < smoothCut[j]! && v === v && !p.glint[k] && v <= bright && v >= dark;
      valid[k] = ok ? 1 : 0;
      if (ok) usable++;
    }
  }
  return { valid, median, spread, usable: usable / (rows * cols) };
}
