/**
 * Extractor parameters. Everything runs at 500 dpi (the working resolution): images at another resolution are
 * resampled first (see resample.ts), so these pixel sizes hold for every input and the ONNX Gabor bank (tuned for
 * 500 dpi ridge periods) stays fixed.
 */
export const WORKING_DPI = 500;

export const PARAMS = Object.freeze({
  /** Accepted input resolutions. */
  minDpi: 250,
  maxDpi: 1500,
  /** Smallest and largest working image sides; outside these the image is refused with BadImageError. */
  minSide: 32,
  maxSide: 4096,
  /** Segmentation block size and thresholds (segmentation.ts). */
  block: 16,
  /** A block is foreground when its gray deviation reaches max(minStd, relStd * the 90th percentile deviation) ... */
  minStd: 3,
  relStd: 0.3,
  /**
   * ... and its ridge score (clarity + orientation certainty) reaches the image's Otsu threshold, when the image's
   * blocks split into two populations whose means are at least minSeparation apart, and never less than
   * minRidgeScore (sensor noise and flat areas score about 0.5-0.6; ridges 0.9-1.6).
   */
  minRidgeScore: 0.75,
  minSeparation: 0.2,
  /**
   * Pixel-level trim of the block mask: a mask pixel whose neighbourhood (radius flatRadius) has a gray deviation below
   * flatContrast x the block contrast floor is flat, with no ridge texture. Flat pixels reached from the background (a
   * sensor's frame, a saturated margin within a border block) leave the mask, with flatGrowBack pixels more towards
   * the print (the flat windows start up to flatRadius beyond a sharp edge; growing back by the whole radius also cut
   * the faded edges of pressed prints), so ridges cut by the edge end at the mask's border and the border rule drops
   * them. Flat spots inside the finger (wet blobs, dry gaps) stay.
   */
  flatRadius: 6,
  flatContrast: 0.5,
  flatGrowBack: 3,
  /** Background cut off before the heavy stages: blocks this far (in blocks) beyond the last contrasted one are kept. */
  cropMarginBlocks: 2,
  /** Local normalisation window radius and the smallest deviation divided by (flat areas are not amplified). */
  normRadius: 12,
  normMinStd: 4,
  /** Frequency: oriented window across x along the ridges, and the plausible ridge periods. */
  freqWindowAcross: 32,
  freqWindowAlong: 16,
  minPeriod: 4,
  maxPeriod: 16,
  defaultPeriod: 9,
  /** Minimum peak-to-valley swing of the x-signature (normalised units) for a block's period to count. */
  freqMinSwing: 0.6,
  /** Gabor rows per ONNX run (strips bound the K*F-channel response tensor on large images). */
  gaborStripPixels: 600_000,
  /**
   * Refinement (orientation again on the enhanced image, then the bank's responses selected again): the responses are
   * kept between the two selections up to this many floats (32 MB: a whole 640x480 frame), beyond it the bank runs
   * twice (same result, less memory). The enhanced image (about +-2) enters the orientation graph as 0.5 + gain x value.
   */
  keepResponsesFloats: 8_000_000,
  refineGain: 0.25,
  /**
   * Minutiae: margin to the mask border and image edge, in ridge periods. The Gabor responses fade within a filter
   * radius of the zeroed background, so ridges seem to end there; 1.2 periods keeps most true minutiae of partial
   * impressions and drops those artefacts (synthetic sets, seeds 1-4: EER 0.79-0.93% at 1.2 vs 0.86-1.04% at 1.6,
   * 1.00-1.39% at 0.6).
   */
  borderPeriods: 1.2,
  /** Ridge length traced for a minutia's direction, and the limits of the spurious-structure rules, in periods. */
  directionPeriods: 1,
  spurPeriods: 1,
  bridgePeriods: 1.5,
  shortRidgePeriods: 1.5,
  brokenRidgePeriods: 1.6,
  clusterPeriods: 1.2,
  clusterMax: 2,
  /** Same-type detections closer than this (pixels) are one minutia. */
  duplicatePixels: 3,
  /** Minutiae with a quality below this are dropped. */
  minMinutiaQuality: 10,
});
