/**
 * FingerprintExtractor: image -> minutiae + quality, in named stages (the manner of SourceAFIS):
 *
 *  resample       to 500 dpi (the working resolution) when the input is at another one
 *  crop           the flat background around the finger is cut off (large sensors image far more than a finger)
 *  orientation    ONNX fp_orientation: gradient structure tensor, doubled-angle smoothing at two scales, certainty
 *  normalisation  local mean / deviation (Hong et al.)
 *  frequency      oriented x-signature per block -> ridge period where there is a clear one, completed
 *  enhancement    ONNX fp_gabor bank + per-pixel blend of the filters matching the local orientation and period,
 *                 over the whole (cropped) image
 *  refinement     ONNX fp_orientation again, on the enhanced image (its ridges are clean where creases, dry dots
 *                 and smudges misled the raw image's gradients), and the same bank responses selected again with
 *                 that orientation
 *  segmentation   per block: ridge score (clarity of the enhanced wave + orientation certainty) against a threshold
 *                 that adapts to the image, and a contrast floor; morphological cleanup -> foreground mask, less
 *                 the flat margin beyond the print's edge (a sensor's frame); the period field is completed again
 *                 over the foreground only
 *  binarisation   sign of the Gabor output, 3x3 majority
 *  thinning       Zhang-Suen (lookup tables) + staircase cleanup
 *  minutiae       crossing number, ridge tracing for direction
 *  filtering      spurious-minutiae rules (filter.ts); each kept minutia's orientation descriptor (../descriptor.ts)
 *  quality        per-minutia and NFIQ-style image quality (quality.ts)
 *
 * Enhancement runs before segmentation because the best evidence that a block is finger is that the Gabor filters
 * turn it into a clean ridge wave: contrast and gradient coherence alone lose faint dry prints and low-contrast
 * capacitive images, and keep textured sensor backgrounds. Orientation works on the raw gray image (gradient
 * directions do not depend on normalisation).
 */
import { BadImageError, UsageError } from '../../../protocol/errors.ts';
import { describeMinutia } from '../descriptor.ts';
import { GABOR } from '../build.ts';
import { blockDeviation, blockGrid, blockValueAt, distanceToBackground, graySums } from './fields.ts';
import { binarise } from './binarise.ts';
import { selectResponses } from './enhance.ts';
import { removeSpurious } from './filter.ts';
import { blockPeriods, completeFrequency, periodAt, periodField } from './frequency.ts';
import { loadFingerprintGraphs, runGaborStrips, runOrientation, type FingerprintGraphs } from './graphs.ts';
import { detectMinutiae } from './minutiae.ts';
import { normalise } from './normalise.ts';
import { normalFromGraph, orientationFromGraph } from './orientation.ts';
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

  /**
   * `keepFields`: the per-pixel fields at the working resolution are returned too (debugging, tests). `keepResponses`
   * (tests): whether the Gabor bank's responses are kept for the refinement or the bank runs again; by default they are
   * kept when they fit PARAMS.keepResponsesFloats. Both ways give the same result.
   */
  async extract(image: GrayImage, options: ExtractOptions & { keepFields?: boolean; keepResponses?: boolean } = {}): Promise<FingerprintExtraction> {
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
    src.set(image.data);
    const full = resampleGray(src, image.width, image.height, scale);
    if (Math.min(full.width, full.height) < PARAMS.minSide || Math.max(full.width, full.height) > PARAMS.maxSide) {
      throw new BadImageError(`the image is ${full.width}x${full.height} pixels at 500 dpi; sides must be ${PARAMS.minSide}-${PARAMS.maxSide}`);
    }
    lap('resample');

    const fullStd = blockDeviation(full.data, full.width, full.height, blockGrid(full.width, full.height, PARAMS.block));
    const contrast = contrastThreshold(fullStd);
    const box = cropBox(fullStd, full.width, full.height, contrast);
    const { data: gray, width, height } = cropGray(full, box);
    lap('crop');

    const unit = new Float32Array(gray.length);
    for (let i = 0; i < gray.length; i++) unit[i] = gray[i]! / 255;
    const field = orientationFromGraph(await runOrientation(this.graphs.orientation, unit, width, height), width, height);
    lap('orientation');

    // One summed-area table of the gray plane serves the normalisation and the segmentation's flat-margin trim.
    const sums = graySums(gray, width, height);
    const norm = normalise(gray, width, height, sums);
    lap('normalisation');

    const grid = blockGrid(width, height, PARAMS.block);
    const everywhere = new Uint8Array(grid.cols * grid.rows).fill(1);
    const periods = blockPeriods(norm, field.normal, grid, width, height);
    const provisionalPeriod = periodField(completeFrequency(periods, everywhere, grid), width, height);
    lap('frequency');

    // The bank's responses do not depend on the orientation: kept (when small enough) for the refined selection.
    const enhanced = new Float32Array(gray.length);
    const selector = { normal: field.normal, period: provisionalPeriod, mask: new Uint8Array(gray.length).fill(1), width };
    const keep = options.keepResponses ?? width * height * GABOR_CHANNELS <= PARAMS.keepResponsesFloats;
    const strips: GaborStrip[] = [];
    const select = (r: Float32Array, sh: number, top: number, rows: number, haloTop: number) => selectResponses(selector, r, sh, top, rows, haloTop, enhanced);
    await runGaborStrips(this.graphs.gabor, norm, width, height, (r, sh, top, rows, haloTop) => {
      select(r, sh, top, rows, haloTop);
      if (keep) strips.push({ r, sh, top, rows, haloTop });
    });
    lap('enhancement');

    // Orientation again, on the enhanced image: creases, dots of dry ridges and smudges that misled the gradients of
    // the raw image are gone from it. The certainty stays the raw image's (it says how trustworthy the capture is).
    const refinedInput = new Float32Array(gray.length);
    for (let i = 0; i < gray.length; i++) refinedInput[i] = Math.max(0, Math.min(1, 0.5 + PARAMS.refineGain * enhanced[i]!));
    field.normal = normalFromGraph(await runOrientation(this.graphs.orientation, refinedInput, width, height), width, height);
    selector.normal = field.normal;
    if (keep) for (const st of strips) select(st.r, st.sh, st.top, st.rows, st.haloTop);
    else await runGaborStrips(this.graphs.gabor, norm, width, height, select);
    strips.length = 0; // the responses are not needed past here: free them before the later stages
    lap('refinement');

    const clarity = blockClarity(norm, enhanced, everywhere, grid, width, height);
    const seg = segment(gray, field.certainty, clarity, width, height, contrast, sums);
    for (let i = 0; i < norm.length; i++) if (!seg.mask[i]) (norm[i] = 0), (enhanced[i] = 0);
    const freq = completeFrequency(periods, seg.blocks, seg.grid);
    // Later stages look the final period up only at candidate minutiae: no per-pixel field unless it is asked for.
    const finalPeriodAt = (x: number, y: number) => periodAt(freq, x, y);
    lap('segmentation');

    const binary = binarise(enhanced, seg.mask, width, height);
    lap('binarisation');

    const skeleton = thin(binary, width, height);
    lap('thinning');

    const borderDistance = distanceToBackground(seg.mask, width, height);
    const candidates = detectMinutiae(skeleton, {
      width,
      height,
      periodAt: finalPeriodAt,
      normal: field.normal,
      tracePeriods: Math.max(PARAMS.bridgePeriods, PARAMS.shortRidgePeriods, PARAMS.spurPeriods),
      directionPeriods: PARAMS.directionPeriods,
      borderDistance,
      skipWithinPeriods: PARAMS.borderPeriods / 2,
    });
    lap('minutiae');

    for (const c of candidates) c.quality = minutiaQuality(field.certainty[c.y * width + c.x]!, blockValueAt(clarity, seg.grid, c.x, c.y));
    const kept = removeSpurious(candidates, { width, periodAt: finalPeriodAt, borderDistance });
    const minutiae: ExtractedMinutia[] = kept.map((c) => {
      const angle = imageVectorToAngle(c.dx, c.dy);
      return {
        x: round2((c.x + box.x + 0.5) / scale - 0.5),
        y: round2((c.y + box.y + 0.5) / scale - 0.5),
        angle,
        type: c.type,
        quality: c.quality,
        // The flow around it, at the working resolution (radii in 500 dpi pixels whatever the input's dpi).
        descriptor: describeMinutia(c.x, c.y, angle, field.normal, seg.mask, width, height),
      };
    });
    lap('filtering');

    let fg = 0;
    let certaintySum = 0;
    for (let i = 0; i < seg.mask.length; i++) if (seg.mask[i]) (fg++, (certaintySum += field.certainty[i]!));
    let claritySum = 0;
    let blocks = 0;
    for (let b = 0; b < seg.blocks.length; b++) if (seg.blocks[b]) (blocks++, (claritySum += clarity[b]!));
    const quality = imageQuality({
      foregroundMm2: fg / PIXELS_PER_MM2,
      certainty: fg ? certaintySum / fg : 0,
      clarity: blocks ? claritySum / blocks : 0,
      minutiae: minutiae.length,
    });
    const mask = maskAtInput(uncrop(seg.mask, box, full.width, full.height), full.width, full.height, image.width, image.height);
    lap('quality');

    return {
      minutiae,
      quality,
      timings,
      mask,
      orientation: { meanCoherence: fg ? certaintySum / fg : 0, meanPeriod: freq.meanPeriod / scale, interpolatedPeriodFraction: freq.interpolatedFraction },
      ...(options.keepFields
        ? {
            fields: {
              width: full.width,
              height: full.height,
              scale,
              normal: uncrop(field.normal, box, full.width, full.height),
              coherence: uncrop(field.certainty, box, full.width, full.height),
              period: uncrop(periodField(freq, width, height), box, full.width, full.height),
              normalised: uncrop(norm, box, full.width, full.height),
              enhanced: uncrop(enhanced, box, full.width, full.height),
              skeleton: uncrop(skeleton, box, full.width, full.height),
            },
          }
        : {}),
    };
  }
}

/** One strip of the Gabor bank's responses, as runGaborStrips hands it over. */
interface GaborStrip {
  r: Float32Array;
  sh: number;
  top: number;
  rows: number;
  haloTop: number;
}

const GABOR_CHANNELS = GABOR.orientations * GABOR.periods.length;

/** Working pixels per square millimetre (500 dpi). */
const PIXELS_PER_MM2 = (WORKING_DPI / 25.4) ** 2;

/** The block contrast a finger block needs (segmentation's floor), from the block deviations of the whole image before any crop. */
function contrastThreshold(std: Float32Array): number {
  const sorted = Float32Array.from(std).sort();
  const p90 = sorted[Math.min(sorted.length - 1, Math.floor(0.9 * sorted.length))] ?? 0;
  return Math.max(PARAMS.minStd, PARAMS.relStd * p90);
}

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * The block-aligned box around every block with enough contrast to be finger, plus a margin (so the Gabor halo and
 * the morphology see the finger's edge as they would uncropped); the whole image when nothing would be gained.
 */
function cropBox(std: Float32Array, width: number, height: number, contrast: number): Box {
  const grid = blockGrid(width, height, PARAMS.block);
  let x0 = grid.cols, y0 = grid.rows, x1 = -1, y1 = -1;
  for (let by = 0; by < grid.rows; by++) {
    for (let bx = 0; bx < grid.cols; bx++) {
      if (std[by * grid.cols + bx]! < contrast) continue;
      x0 = Math.min(x0, bx), y0 = Math.min(y0, by), x1 = Math.max(x1, bx), y1 = Math.max(y1, by);
    }
  }
  const all = { x: 0, y: 0, width, height };
  if (x1 < 0) return all;
  const m = PARAMS.cropMarginBlocks;
  const bx0 = Math.max(0, x0 - m), by0 = Math.max(0, y0 - m);
  const bx1 = Math.min(grid.cols - 1, x1 + m), by1 = Math.min(grid.rows - 1, y1 + m);
  const box = { x: bx0 * PARAMS.block, y: by0 * PARAMS.block, width: 0, height: 0 };
  box.width = Math.min(width, (bx1 + 1) * PARAMS.block) - box.x;
  box.height = Math.min(height, (by1 + 1) * PARAMS.block) - box.y;
  if (Math.min(box.width, box.height) < PARAMS.minSide || box.width * box.height > 0.9 * width * height) return all;
  return box;
}

function cropGray(img: { data: Float32Array; width: number; height: number }, b: Box): { data: Float32Array; width: number; height: number } {
  if (b.width === img.width && b.height === img.height) return img;
  const out = new Float32Array(b.width * b.height);
  for (let y = 0; y < b.height; y++) out.set(img.data.subarray((b.y + y) * img.width + b.x, (b.y + y) * img.width + b.x + b.width), y * b.width);
  return { data: out, width: b.width, height: b.height };
}

/** A cropped plane put back at its place in a width x height plane of zeros. */
function uncrop<T extends Float32Array | Uint8Array>(plane: T, b: Box, width: number, height: number): T {
  if (b.width === width && b.height === height) return plane;
  const out = new (plane.constructor as new (n: number) => T)(width * height);
  for (let y = 0; y < b.height; y++) out.set(plane.subarray(y * b.width, (y + 1) * b.width), (b.y + y) * width + b.x);
  return out;
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

