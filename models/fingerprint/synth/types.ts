/** Shared types of the synthetic fingerprint generator (all coordinates in pixels at 500 dpi, y pointing down). */

export type PatternClass = 'arch' | 'tented_arch' | 'left_loop' | 'right_loop' | 'whorl';

export interface Point {
  x: number;
  y: number;
}

/** A finger's global pattern: its class and singular points (master coordinates). */
export interface Pattern {
  cls: PatternClass;
  cores: Point[];
  deltas: Point[];
}

/** The fingerprint area: a rounded (super-)ellipse around a centre. */
export interface Silhouette {
  cx: number;
  cy: number;
  /** Half-width and half-height in pixels. */
  rx: number;
  ry: number;
  /** Super-ellipse exponent: 2 is an ellipse, larger is squarer. */
  exponent: number;
}

/** A master fingerprint: the whole ridge pattern of one finger, from which impressions are taken. */
export interface MasterFingerprint {
  seed: number;
  width: number;
  height: number;
  /** Ridge signal in [-1, 1], row-major: positive on ridges, negative in valleys. */
  ridges: Float32Array;
  /** Foreground weight in [0, 1] (1 inside the fingerprint area, soft edge). */
  mask: Float32Array;
  /** Normalised silhouette radius (< 1 inside, 1 on the border): contact areas of impressions are cut from it. */
  radius: Float32Array;
  /** Local ridge orientation in radians, [0, pi), direction along the ridge. */
  orientation: Float32Array;
  /** Local ridge period in pixels. */
  period: Float32Array;
  pattern: Pattern;
  silhouette: Silhouette;
  /** Gabor iterations the growth needed, for diagnostics. */
  iterations: number;
}

export interface SynthesizeOptions {
  /** Force a pattern class instead of drawing one with natural frequencies. */
  cls?: PatternClass;
  /** Canvas size of the master (default 320 x 384, about 16 x 19.5 mm at 500 dpi). */
  width?: number;
  height?: number;
  /** Mean ridge period in pixels (default drawn from 8.6-10.2). */
  meanPeriod?: number;
  /** Number of random seed dots the ridges grow from (default drawn from 14-26). */
  seeds?: number;
}

/** Maps a master point to the impression: rotation about the master centre, then translation, then distortion. */
export interface ImpressionTransform {
  /** Rotation in radians (positive turns clockwise on screen, as y points down). */
  rotation: number;
  /** Position of the master centre (silhouette centre) in the impression. */
  tx: number;
  ty: number;
  /** Largest elastic displacement applied anywhere (pixels), for diagnostics. */
  maxDistortion: number;
}

export interface ImpressionOptions {
  /** Output size (default 256 x 288, the R307 / ZFM image). */
  width?: number;
  height?: number;
  /** Largest rotation in degrees (default 20). */
  maxRotationDeg?: number;
  /** Largest translation of the finger centre from the image centre, pixels (default 10% of each side). */
  maxTranslation?: number;
  /** Elastic distortion strength in pixels at the border of the contact region (default drawn up to 6). */
  distortion?: number;
  /** -1 very dry ... 0 normal ... +1 very wet (default drawn). */
  moisture?: number;
  /** 0 clean ... 1 very noisy (default drawn up to 0.5). */
  noise?: number;
  /** Probability that part of the finger is off the sensor (default 0.3). */
  partialContactProbability?: number;
}

export interface Impression {
  width: number;
  height: number;
  /** 8-bit grayscale, row-major, dark ridges on a light background. */
  data: Uint8Array;
  truth: ImpressionTruth;
}

export interface ImpressionTruth {
  seed: number;
  cls: PatternClass;
  transform: ImpressionTransform;
  /** Singular points mapped into the impression (rigid part of the transform), possibly outside the image. */
  cores: Point[];
  deltas: Point[];
  moisture: number;
  noise: number;
  /** Fraction of the image covered by the finger's contact area. */
  foreground: number;
  /** True when part of the finger was lifted off the sensor (a cut through the contact area). */
  partialContact: boolean;
}
