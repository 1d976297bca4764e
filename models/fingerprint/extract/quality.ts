/**
 * Quality. Per minutia: the orientation certainty and the ridge clarity around it. Per image: an NFIQ-style
 * combination of five measures, each mapped linearly to a 0-100 sub-score between a "useless" and a "good" value:
 *
 * | measure     | value                                                       | 0 at  | 100 at | weight |
 * |-------------|-------------------------------------------------------------|-------|--------|--------|
 * | foreground  | finger area, mm^2 (25.4 mm per inch at the image's dpi)     | 40    | 120    | 0.15   |
 * | orientation | mean orientation certainty in the foreground                | 0.30  | 0.65   | 0.30   |
 * | clarity     | mean correlation of normalised vs. enhanced image per block | 0.60  | 0.80   | 0.30   |
 * | minutiae    | number of minutiae found                                    | 8     | 20     | 0.10   |
 * | density     | minutiae per mm^2 of finger (spurious ones crowd)           | 0.35  | 0.22   | 0.15   |
 *
 * score = weighted mean of the sub-scores, but never more than 1.5x the worst of foreground, clarity and density (a
 * clean sliver, a smear or a crowd of false minutiae is still a retry). Captures scoring below RETRY_BELOW (35)
 * should be taken again. The ranges were set on real captures (the tuning sets of BENCHMARKS.md, issue 12), where
 * low certainty, low clarity and crowded minutiae are what the captures that fail to match have in common; the
 * count alone says little above a dozen minutiae, so there is no hard floor on it. BENCHMARKS.md gives the share of
 * captures sent back and the FNMR of the accepted ones against all.
 */
import type { QualityReport } from '../../modality.ts';
import { clamp01, type BlockGrid } from './fields.ts';

export const RETRY_BELOW = 35;

/** Pearson correlation of the normalised and the enhanced image in each foreground block (0 elsewhere). */
export function blockClarity(normalised: Float32Array, enhanced: Float32Array, blocks: Uint8Array, grid: BlockGrid, width: number, height: number): Float32Array {
  const out = new Float32Array(grid.cols * grid.rows);
  for (let by = 0; by < grid.rows; by++) {
    for (let bx = 0; bx < grid.cols; bx++) {
      const b = by * grid.cols + bx;
      if (!blocks[b]) continue;
      let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, n = 0;
      const y1 = Math.min(height, (by + 1) * grid.block);
      const x0 = bx * grid.block;
      const x1 = Math.min(width, (bx + 1) * grid.block);
      for (let y = by * grid.block; y < y1; y++) {
        for (let i = y * width + x0, end = y * width + x1; i < end; i++) {
          const a = normalised[i]!;
          const e = enhanced[i]!;
          sa += a; sb += e; saa += a * a; sbb += e * e; sab += a * e; n++;
        }
      }
      const cov = sab / n - (sa / n) * (sb / n);
      const va = saa / n - (sa / n) ** 2;
      const vb = sbb / n - (sb / n) ** 2;
      out[b] = va > 1e-9 && vb > 1e-9 ? Math.max(0, cov / Math.sqrt(va * vb)) : 0;
    }
  }
  return out;
}

/** 0-100 from the certainty and the clarity at a minutia. */
export function minutiaQuality(certainty: number, clarity: number): number {
  const c = clamp01((certainty - 0.15) / 0.6);
  const k = clamp01((clarity - 0.15) / 0.6);
  return Math.round(100 * Math.sqrt(c * k));
}

const ramp = (v: number, lo: number, hi: number) => Math.round(100 * clamp01((v - lo) / (hi - lo)));

export function imageQuality(m: { foregroundMm2: number; certainty: number; clarity: number; minutiae: number }): QualityReport {
  const density = m.foregroundMm2 > 0 ? m.minutiae / m.foregroundMm2 : 0;
  const measures: QualityReport['measures'] = {
    foreground: { value: Math.round(m.foregroundMm2), score: ramp(m.foregroundMm2, 40, 120), unit: 'mm^2', note: 'finger area' },
    orientation: { value: round3(m.certainty), score: ramp(m.certainty, 0.3, 0.65), note: 'mean orientation certainty in the foreground' },
    clarity: { value: round3(m.clarity), score: ramp(m.clarity, 0.6, 0.8), note: 'mean correlation of the image with its Gabor-enhanced version' },
    minutiae: { value: m.minutiae, score: ramp(m.minutiae, 8, 20), unit: 'count' },
    density: { value: round3(density), score: 100 - ramp(density, 0.22, 0.35), unit: 'per mm^2', note: 'minutiae per mm^2 of finger' },
  };
  const s = (k: string) => measures[k]!.score;
  const weighted = 0.15 * s('foreground') + 0.3 * s('orientation') + 0.3 * s('clarity') + 0.1 * s('minutiae') + 0.15 * s('density');
  const score = Math.round(Math.min(weighted, 1.5 * Math.min(s('foreground'), s('clarity'), s('density'))));
  return { score, retryBelow: RETRY_BELOW, measures };
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;
