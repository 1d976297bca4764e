/**
 * Quality 0-100 from the ISO/IEC 29794-6 measures (as MITRE's biqt-iris computes them, in our own code), each
 * reported with its value and a 0-100 sub-score between a "useless" and a "good" value:
 *
 * | measure                | value                                                              | 0 at | 100 at |
 * |------------------------|--------------------------------------------------------------------|------|--------|
 * | usable_iris_area       | % of the iris annulus not covered by lids, lashes, glints          | 30   | 70     |
 * | iris_sclera_contrast   | limbus step, % of the mean of both sides (29794-6: > 5)            | 3    | 10     |
 * | iris_pupil_contrast    | pupil boundary step, % of the mean of both sides (29794-6: >= 30)  | 15   | 40     |
 * | pupil_iris_ratio       | pupil radius / iris radius x 100 (29794-6: 20-70)                  | outside 15-75: 0, inside 20-70: 100 |
 * | pupil_iris_concentricity | 100 - centre offset / iris radius x 100 (29794-6: >= 90)         | 80   | 95     |
 * | margin_adequacy        | worst margin around the iris, % of its radius (29794-6: > 80)      | 10   | 60     |
 * | grey_scale_utilisation | entropy of the iris pixels' histogram, bits (29794-6: >= 6)        | 4    | 6.5    |
 * | sharpness              | mean absolute Laplacian in the iris, per grey level of spread      | 0.05 | 0.2    |
 *
 * score = the geometric mean of the sub-scores (each floored at 1), so one bad measure pulls it down; retry
 * below IRIS_PARAMS.retryBelow. The margin is relative to the image the camera gave: an iris cut by the frame
 * edge scores low there.
 */
import type { QualityReport } from '../modality.ts';
import type { GrayImage } from './extractor.ts';
import type { PolarImage } from './normalise.ts';
import type { Occlusion } from './occlusion.ts';
import { IRIS_PARAMS } from './params.ts';
import { sample } from './segment/image-ops.ts';
import type { Segmentation } from './segment/segment.ts';

const ramp = (v: number, lo: number, hi: number) => Math.round(100 * Math.max(0, Math.min(1, (v - lo) / (hi - lo))));
const r2 = (v: number) => Math.round(v * 100) / 100;

/** Mean of the image on a ring between radii a and b around c (every 4 degrees, every pixel of radius). */
function ringMean(img: GrayImage, c: { x: number; y: number }, a: number, b: number, arcs: Array<[number, number]>): number {
  const f = { width: img.width, height: img.height, data: img.data as unknown as Float32Array };
  let s = 0;
  let n = 0;
  for (const [d0, d1] of arcs) {
    for (let d = d0; d <= d1; d += 4) {
      const t = (d * Math.PI) / 180;
      for (let r = a; r <= b; r += 1) {
        const x = Math.round(c.x + r * Math.cos(t));
        const y = Math.round(c.y + r * Math.sin(t));
        if (x < 0 || y < 0 || x >= img.width || y >= img.height) continue;
        s += f.data[y * img.width + x]!;
        n++;
      }
    }
  }
  void sample;
  return n ? s / n : NaN;
}

export function irisQuality(m: { image: GrayImage; seg: Segmentation; polar: PolarImage; occ: Occlusion; usableBits: number }): QualityReport {
  const { image, seg, polar, occ } = m;
  const { pupil, iris } = seg;
  const lateral: Array<[number, number]> = [[-20, 30], [150, 200]];
  const band = Math.max(2, 0.08 * iris.r);
  const irisIn = ringMean(image, iris, iris.r - 2 * band, iris.r - 0.5 * band, lateral);
  const sclera = ringMean(image, iris, iris.r + 0.5 * band, iris.r + 2 * band, lateral);
  const pb = Math.max(2, 0.15 * pupil.r);
  const pupilIn = ringMean(image, pupil, Math.max(0, pupil.r - 2 * pb), pupil.r - 0.5 * pb, [[-50, 230]]);
  const irisNear = ringMean(image, pupil, pupil.r + 0.5 * pb, pupil.r + 2 * pb, [[-50, 230]]);
  const isc = (100 * Math.abs(sclera - irisIn)) / Math.max(1, (sclera + irisIn) / 2);
  const ipc = (100 * Math.abs(irisNear - pupilIn)) / Math.max(1, (irisNear + pupilIn) / 2);
  const ratio = (100 * pupil.r) / iris.r;
  const concentricity = 100 - (100 * Math.hypot(pupil.x - iris.x, pupil.y - iris.y)) / iris.r;
  const margins = [iris.x, image.width - 1 - iris.x, iris.y, image.height - 1 - iris.y].map((d) => (100 * (d - iris.r)) / iris.r);
  const margin = Math.min(...margins.slice(0, 2), ...margins.slice(2).map((v) => v + 40)); // lids cover top and bottom anyway
  // Grey-scale utilisation and sharpness over the usable iris samples of the rubber sheet.
  const hist = new Float64Array(256);
  let n = 0;
  let lap = 0;
  let lapN = 0;
  const { rows, cols, data } = polar;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const k = i * cols + j;
      if (!occ.valid[k]) continue;
      hist[Math.max(0, Math.min(255, Math.round(data[k]!)))]!++;
      n++;
      if (i > 0 && i < rows - 1 && occ.valid[k - cols] && occ.valid[k + cols]) {
        const l = data[(j + 1) % cols + i * cols]! + data[(j - 1 + cols) % cols + i * cols]! + data[k - cols]! + data[k + cols]! - 4 * data[k]!;
        lap += Math.abs(l);
        lapN++;
      }
    }
  }
  let entropy = 0;
  for (const h of hist) if (h > 0) entropy -= (h / n) * Math.log2(h / n);
  const sharp = lapN ? lap / lapN / Math.max(1, occ.spread) : 0;
  const ratioScore = ratio < 15 || ratio > 75 ? 0 : ratio >= 20 && ratio <= 70 ? 100 : ratio < 20 ? ramp(ratio, 15, 20) : ramp(75 - ratio, 0, 5);
  const measures: QualityReport['measures'] = {
    usable_iris_area: { value: r2(100 * occ.usable), score: ramp(100 * occ.usable, 30, 70), unit: '%' },
    iris_sclera_contrast: { value: r2(isc), score: ramp(isc, 3, 10), unit: '%' },
    iris_pupil_contrast: { value: r2(ipc), score: ramp(ipc, 15, 40), unit: '%' },
    pupil_iris_ratio: { value: r2(ratio), score: ratioScore, unit: '%' },
    pupil_iris_concentricity: { value: r2(concentricity), score: ramp(concentricity, 80, 95), unit: '%' },
    margin_adequacy: { value: r2(margin), score: ramp(margin, 10, 60), unit: '%', note: 'worst of left/right margin and top/bottom margin + 40' },
    grey_scale_utilisation: { value: r2(entropy), score: ramp(entropy, 4, 6.5), unit: 'bits' },
    sharpness: { value: Math.round(sharp * 1000) / 1000, score: ramp(sharp, 0.05, 0.2), note: 'mean |Laplacian| of the iris texture per grey level of its spread' },
  };
  const subs = Object.values(measures).map((x) => Math.max(1, x.score));
  const score = Math.round(Math.exp(subs.reduce((s, v) => s + Math.log(v), 0) / subs.length));
  return { score, retryBelow: IRIS_PARAMS.retryBelow, measures };
}
