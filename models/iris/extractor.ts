/**
 * IrisExtractor: 8-bit gray image -> iris code + mask + quality, in named stages:
 *
 *  segmentation   glints, pupil, limbus (segment/segment.ts)
 *  normalisation  rubber sheet (normalise.ts) from the input image, lightly smoothed to the sheet's sampling
 *  occlusion      lids, lashes, glints (occlusion.ts)
 *  filter         ONNX iris_loggabor (build.ts)
 *  encode         2-bit phase quantisation, cell and fragile-bit mask (encode.ts)
 *  quality        ISO/IEC 29794-6 measures (quality.ts)
 */
import { BadImageError } from '../../protocol/errors.ts';
import type { LoadedNet } from '../face/models.ts';
import type { QualityReport } from '../modality.ts';
import { cellValidity, padPolar, quantise, type IrisCode } from './encode.ts';
import { NoIrisFoundError } from './errors.ts';
import { loadIrisGraph, runFilter } from './graphs.ts';
import { sampledPixels, sampleSheet, sheetPoints, type PolarImage } from './normalise.ts';
import { occlusionMask, type Occlusion } from './occlusion.ts';
import { IRIS_PARAMS } from './params.ts';
import { irisQuality } from './quality.ts';
import type { Circle } from './segment/circles.ts';
import { gaussianBlurWithin, type FloatImage } from './segment/image-ops.ts';
import { segmentIris, type Segmentation } from './segment/segment.ts';

export interface GrayImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface IrisExtraction extends IrisCode {
  pupil: Circle;
  iris: Circle;
  quality: QualityReport;
  timings: Record<string, number>;
  /** Kept when asked for (tests, debugging). */
  polar?: PolarImage;
  occlusion?: Occlusion;
  segmentation?: Segmentation;
}

export const ENCODE = Object.freeze({ minCellValid: 0.75, fragile: 0.1 });

export class IrisExtractor {
  private constructor(private readonly net: LoadedNet) {}

  static async load(o: { modelsDir?: string; threads?: number } = {}): Promise<IrisExtractor> {
    return new IrisExtractor(await loadIrisGraph(o));
  }

  get modelHash(): string {
    return this.net.sha256;
  }

  async close(): Promise<void> {
    await this.net.session.release();
  }

  async extract(image: GrayImage, o: { keep?: boolean } = {}): Promise<IrisExtraction> {
    const p = IRIS_PARAMS;
    if (image.data.length !== image.width * image.height) throw new BadImageError(`gray image of ${image.data.length} bytes for ${image.width}x${image.height}`);
    if (Math.min(image.width, image.height) < p.minSide || Math.max(image.width, image.height) > p.maxSide) {
      throw new BadImageError(`an iris image must be ${p.minSide}-${p.maxSide} pixels per side, got ${image.width}x${image.height}`, { details: { width: image.width, height: image.height } });
    }
    const timings: Record<string, number> = {};
    let t0 = performance.now();
    const lap = (name: string) => {
      const t = performance.now();
      timings[name] = Math.round((t - t0) * 100) / 100;
      t0 = t;
    };
    const input: FloatImage = { width: image.width, height: image.height, data: Float32Array.from(image.data) };
    const seg = segmentIris(input, p);
    lap('segmentation');
    const points = sheetPoints(seg.pupil, seg.iris, { rows: p.polarRows, cols: p.polarCols, rhoRange: p.rhoRange });
    // The sheet samples the outer ring at about (2 pi r / cols) px apart: smooth to that spacing (only the pixels it reads).
    const spacing = (2 * Math.PI * seg.iris.r) / p.polarCols;
    const source = spacing > 1.6 ? gaussianBlurWithin(input, 0.35 * spacing, sampledPixels(points, input.width, input.height)) : input;
    const polar = sampleSheet(source, points, { mask: seg.glints, width: seg.working.width, height: seg.working.height, scale: seg.scale });
    lap('normalisation');
    const occ = occlusionMask(polar, p);
    if (occ.usable < 0.1) throw new NoIrisFoundError(`only ${(occ.usable * 100).toFixed(0)}% of the iris is visible`, { usable: occ.usable });
    lap('occlusion');
    const { re, im } = await runFilter(this.net, padPolar(polar, occ.valid, occ.median, occ.spread));
    lap('filter');
    const cells = cellValidity(occ.valid, polar.rows, polar.cols);
    const code = quantise(re, im, cells, ENCODE);
    lap('encode');
    const quality = irisQuality({ image, seg, polar, occ, usableBits: code.usableBits });
    lap('quality');
    return {
      ...code,
      pupil: seg.pupil,
      iris: seg.iris,
      quality,
      timings,
      ...(o.keep ? { polar, occlusion: occ, segmentation: seg } : {}),
    };
  }
}
