/**
 * Types of the fingerprint extractor (`models/fingerprint/extract/`).
 *
 * Coordinates: pixels of the INPUT image (whatever its dpi), origin at the top-left corner, x to the right, y down.
 *
 * Angle convention (the one of models/fingerprint/minutiae.ts and ISO/IEC 19794-2, in radians): counter-clockwise
 * from the right-pointing horizontal AS SEEN ON THE IMAGE, in [0, 2*pi). Because y grows downwards, a minutia at
 * angle `a` points along the pixel vector (cos a, -sin a): a = 0 points right, a = pi/2 points up (towards y = 0).
 *
 * Which way a minutia points (ANSI/NIST-ITL and ISO 19794-2 rule: bisect the smallest angle of the three rays of the
 * ridge or valley fork):
 * - ending: along its ridge, from the tip INTO the ridge body (the valley fork's two branches hug the ridge);
 * - bifurcation: from the fork point into the gap between the two branches, i.e. away from the stem ridge.
 *
 * Where a ridge ending sits: the last pixel of the ridge skeleton. ISO/IEC 19794-2 puts it at the fork of the valley
 * skeleton beyond the tip, up to about one ridge period further along the ridge line. Decision: keep the skeleton tip
 * (our matcher compares our own templates, and its tolerances, mu1 = 7 px, absorb a shift shared by both sides);
 * finding the valley fork needs a second thinning of the inverted image, ~3 ms per image. Templates from other
 * vendors' extractors will therefore disagree on ending positions by a few pixels, as extractors commonly do.
 */
import type { QualityReport } from '../../modality.ts';

export interface GrayImage {
  width: number;
  height: number;
  /** 8-bit gray, row-major, dark ridges on a light background (the usual optical sensor image). */
  data: Uint8Array;
}

export type ExtractedMinutiaType = 'ending' | 'bifurcation';

export interface ExtractedMinutia {
  /** Pixels from the left edge of the input image. */
  x: number;
  /** Pixels from the top edge of the input image. */
  y: number;
  /** Radians in [0, 2*pi), counter-clockwise as seen on the image (see the header of this file). */
  angle: number;
  type: ExtractedMinutiaType;
  /** 0-100 from the local orientation certainty and ridge clarity around the minutia. */
  quality: number;
  /** The ridge flow around it: DESCRIPTOR_SAMPLES codes (models/fingerprint/descriptor.ts). */
  descriptor: Uint8Array;
}

export interface ExtractOptions {
  /** Resolution of the input in dots per inch (default 500). Images at other resolutions are resampled to 500. */
  dpi?: number;
}

/** Field statistics over the foreground, for reports and tests. */
export interface OrientationStats {
  /** Mean orientation certainty (coherence of the smoothed doubled-angle field, 0-1) in the foreground. */
  meanCoherence: number;
  /** Mean ridge period (pixels of the input image) in the foreground. */
  meanPeriod: number;
  /** Fraction of frequency blocks whose period had to be interpolated from neighbours. */
  interpolatedPeriodFraction: number;
}

/** Per-pixel fields at the working (500 dpi) resolution; kept for debugging, tests and quality. */
export interface ExtractionFields {
  width: number;
  height: number;
  /** Working pixels per input pixel (500 / dpi). */
  scale: number;
  /** Ridge-normal angle in radians (image coordinates, y down, atan2 convention), modulo pi. */
  normal: Float32Array;
  /** Orientation certainty 0-1. */
  coherence: Float32Array;
  /** Ridge period in working pixels. */
  period: Float32Array;
  /** Normalised image (zero local mean, unit local deviation). */
  normalised: Float32Array;
  /** Gabor-enhanced image (negative on ridges). */
  enhanced: Float32Array;
  /** 1 for ridge skeleton pixels. */
  skeleton: Uint8Array;
}

export interface FingerprintExtraction {
  minutiae: ExtractedMinutia[];
  quality: QualityReport;
  /** Milliseconds per named stage, in pipeline order. */
  timings: Record<string, number>;
  /** Foreground mask at the INPUT resolution: 1 = finger, 0 = background. */
  mask: { width: number; height: number; data: Uint8Array };
  orientation: OrientationStats;
  /** Working-resolution fields (present when `keepFields` was asked for). */
  fields?: ExtractionFields;
}
