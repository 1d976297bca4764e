/**
 * FingerprintExtractor: image -> minutiae + quality, in named stages (the manner of SourceAFIS):
 *
 *  resample       to 500 dpi (the working resolution) when the input is at another one
 *  orientation    ONNX fp_orientation: gradient structure tensor, doubled-angle smoothing, certainty
 *  normalisation  local mean / deviation (Hong et al.)
 *  frequency      oriented x-signature per block -> ridge period where there is a clear one
 *  segmentation   block contrast + certainty + having a period, morphological cleanup -> foreground mask; the
 *                 background of the normalised image is zeroed and the period field completed (interpolated,
 *                 smoothed) over the foreground
 *  enhancement    ONNX fp_gabor bank + per-pixel blend of the filters matching the local orientation and period
 *  binarisation   sign of the Gabor output, 3x3 majority
 *  thinning       Zhang-Suen (lookup tables) + staircase cleanup
 *  minutiae       crossing number, ridge tracing for direction
 *  filtering      spurious-minutiae rules (filter.ts)
 *  quality        per-minutia and NFIQ-style image quality (quality.ts)
 *
 * Orientation and frequency run before segmentation because the mask uses the orientation certainty and the
 * presence of a ridge period; orientation works on the raw gray image (gradient directions do not depend on
 * normalisation).
 */
import { BadImageError, UsageError } from '../../../protocol/errors.ts';
import { blockGrid, blockValueAt, distanceToBackground } from './fields.ts';
import { binarise } from './binarise.ts';
import { selectResponses } from './enhance.ts';
import { removeSpurious } from './filter.ts';
import { blockPeriods, completeFrequency } from './frequency.ts';
import { loadFingerprintGraphs, runGaborStrips, runOrientation, type FingerprintGraphs } from './graphs.ts';
import { detectMinutiae } from './minutiae.ts';
import { normalise } from './normalise.ts';
import { orientationFromGraph } from './orientation.ts';
import { PARAMS, WORKING_DPI } from './params.ts';
import { blockClarity, imageQuality, minutiaQuality } from './quality.ts';
import { resampleGray } from './resample.ts';
import { segment } from './segmentation.ts';
import { thin } from './thinning.ts';
import type { ExtractedMinutia, ExtractOptions, FingerprintExtraction, GrayImage } from './types.ts';

export interface LoadOptions {
  /** Folder holding manifest.json and the .onnx files (default: this repository's models/). */
  modelsDir?: string;
  /** ONNX intra-op threads (default: onnxruntime's choice, all cores). */
  threads?: number;
}

export class FingerprintExtractor {
  private constructor(private readonly graphs: FingerprintGraphs) {}

  /** Loads (and verifies against the manifest) the two ONNX graphs once; reuse the extractor for many images. */
  static async load(opts: LoadOptions = {}): Promise<FingerprintExtractor> {
    return new FingerprintExtractor(await loadFingerprintGraphs(opts));
  }

  /** The manifest sha256 of each graph, for templates that name the model that made them. */
  get modelHashes(): Record<string, string> {
    return { fp_orientation: this.graphs.orientation.sha256, fp_gabor: this.graphs.gabor.sha256 };
  }

  async close(): Promise<void> {
    await this.graphs.orientation.session.release();
    await this.graphs.gabor.session.release();
  }

  async extract(image: GrayImage, options: ExtractOptions & { keepFields?: boolean } = {}): Promise<FingerprintExtraction> {
    const dpi = options.dpi ?? WORKING_DPI;
    if (!Number.isFinite(dpi) || dpi < PARAMS.minDpi || dpi > PARAMS.maxDpi) throw new UsageError(`dpi must be between ${PARAMS.minDpi} and ${PARAMS.maxDpi}, got ${dpi}`);
    checkImage(image);
    const scale = WORKING_DPI / dpi;
    const timings: Record<string, number> = {};
    let t0 = performance.now();
    const lap = (name: string) => {
      const t = performance.now();
      timings[name] = Math.round((t - t0) * 100) / 100;
      t0 = t;
    };

    const src = new Float32Array(image.data.length);
    for (let i = 0; i < src.length; i++) src[i] = image.data[i]!;
    const { data: gray, width, height } = resampleGray(src, image.width, image.height, scale);
    if (Math.min(width, height) < PARAMS.minSide || Math.max(width, height) > PARAMS.maxSide) {
      throw new BadImageError(`the image is ${width}x${height} pixels at 500 dpi; sides must be ${PARAMS.minSide}-${PARAMS.maxSide}`);
    }
    lap('resample');

    const unit = new Float32Array(gray.length);
    for (let i = 0; i < gray.length; i++) unit[i] = gray[i]! / 255;
    const field = orientationFromGraph(await runOrientation(this.graphs.orientation, unit, width, height), width, height);
    lap('orientation');

    const norm = normalise(gray, width, height);
    lap('normalisation');

    const grid = blockGrid(width, height, PARAMS.block);
    const periods = blockPeriods(norm, field.normal, grid, width, height);
    lap('frequency');

    const seg = segment(gray, field.certainty, periods.valid, width, height);
    for (let i = 0; i < norm.length; i++) if (!seg.mask[i]) norm[i] = 0;
    const freq = completeFrequency(periods, seg.blocks, seg.grid, width, height);
    lap('segmentation');

    const enhanced = new Float32Array(gray.length);
    const selector = { normal: field.normal, period: freq.period, mask: seg.mask, width };
    await runGaborStrips(this.graphs.gabor, norm, width, height, (r, sh, top, rows, haloTop) => selectResponses(selector, r, sh, top, rows, haloTop, enhanced));
    lap('enhancement');

    const binary = binarise(enhanced, seg.mask, width, height);
    lap('binarisation');

    const skeleton = thin(binary, width, height);
    lap('thinning');

    const candidates = detectMinutiae(skeleton, {
      width,
      height,
      period: freq.period,
      normal: field.normal,
      tracePeriods: Math.max(PARAMS.bridgePeriods, PARAMS.shortRidgePeriods, PARAMS.spurPeriods),
      directionPeriods: PARAMS.directionPeriods,
    });
    lap('minutiae');

    const clarity = blockClarity(norm, enhanced, seg.blocks, seg.grid, width, height);
    for (const c of candidates) c.quality = minutiaQuality(field.certainty[c.y * width + c.x]!, blockValueAt(clarity, seg.grid, c.x, c.y));
    const kept = removeSpurious(candidates, { width, period: freq.period, borderDistance: distanceToBackground(seg.mask, width, height) });
    const minutiae: ExtractedMinutia[] = kept.map((c) => ({
      x: round2((c.x + 0.5) / scale - 0.5),
      y: round2((c.y + 0.5) / scale - 0.5),
      angle: imageVectorToAngle(c.dx, c.dy),
      type: c.type,
      quality: c.quality,
    }));
    lap('filtering');

    let fg = 0;
    let certaintySum = 0;
    for (let i = 0; i < seg.mask.length; i++) if (seg.mask[i]) (fg++, (certaintySum += field.certainty[i]!));
    let claritySum = 0;
    let blocks = 0;
    for (let b = 0; b < seg.blocks.length; b++) if (seg.blocks[b]) (blocks++, (claritySum += clarity[b]!));
    const quality = imageQuality({
      foreground: fg / seg.mask.length,
      certainty: fg ? certaintySum / fg : 0,
      clarity: blocks ? claritySum / blocks : 0,
      minutiae: minutiae.length,
    });
    const mask = maskAtInput(seg.mask, width, height, image.width, image.height);
    lap('quality');

    return {
      minutiae,
      quality,
      timings,
      mask,
      orientation: { meanCoherence: fg ? certaintySum / fg : 0, meanPeriod: freq.meanPeriod / scale, interpolatedPeriodFraction: freq.interpolatedFraction },
      ...(options.keepFields
        ? { fields: { width, height, scale, normal: field.normal, coherence: field.certainty, period: freq.period, normalised: norm, enhanced, skeleton } }
        : {}),
    };
  }
}

function checkImage(image: GrayImage): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw new BadImageError(`bad image size ${width}x${height}`);
  if (!(data instanceof Uint8Array) || data.length !== width * height) throw new BadImageError(`expected ${width * height} gray bytes, got ${data?.length}`);
}

/** Image-coordinate vector (y down) -> radians counter-clockwise as seen on the image, in [0, 2*pi). */
export function imageVectorToAngle(dx: number, dy: number): number {
  const a = Math.atan2(-dy, dx);
  return a < 0 ? a + 2 * Math.PI : a;
}

function maskAtInput(mask: Uint8Array, w: number, h: number, W: number, H: number): { width: number; height: number; data: Uint8Array } {
  if (w === W && h === H) return { width: W, height: H, data: mask };
  const out = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) {
    const yy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / H));
    for (let x = 0; x < W; x++) out[y * W + x] = mask[yy * w + Math.min(w - 1, Math.floor(((x + 0.5) * w) / W))]!;
  }
  return { width: W, height: H, data: out };
}

const round2 = (v: number) => Math.round(v * 100) / 100;
