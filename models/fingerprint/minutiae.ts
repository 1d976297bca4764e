/**
 * Minutiae: the in-memory form shared by extraction, the ISO/IEC 19794-2 codec, the template wrapper and the matcher.
 *
 * Coordinates are pixels with the origin at the top-left corner of the image, x to the right and y downwards (the
 * image convention, and the one ISO/IEC 19794-2 uses for its coordinates).
 *
 * Angle convention (the ISO/IEC 19794-2:2005 one, kept in radians): the direction of the minutia measured
 * COUNTER-CLOCKWISE from the horizontal axis pointing right, as seen on the image. Because y grows downwards, a minutia
 * at angle `a` points along the pixel vector (cos a, -sin a): `a = 0` points right, `a = pi/2` points UP (towards
 * y = 0). Values are normalised to [0, 2*pi). The record stores the angle in units of 360/256 = 1.40625 degrees
 * (`angleToIsoUnits`), so a round trip through the record moves an angle by at most 0.703125 degrees.
 *
 * Which way along its ridge a minutia points is defined by the standard (clause on minutia direction) and is the
 * extractor's job; the matcher needs only that both templates follow the same rule.
 */

export type MinutiaType = 'ending' | 'bifurcation' | 'other';

export interface Minutia {
  /** Pixels from the left edge. */
  x: number;
  /** Pixels from the top edge. */
  y: number;
  /** Radians, counter-clockwise from the right-pointing horizontal as seen on the image, in [0, 2*pi). */
  angle: number;
  type: MinutiaType;
  /** 0-100; 0 means "not reported". */
  quality: number;
  /** The orientation descriptor (descriptor.ts: DESCRIPTOR_SAMPLES codes), when the template carries them. */
  descriptor?: Uint8Array;
}

export interface FingerRecord {
  /** Image size in pixels. */
  width: number;
  height: number;
  /** Resolution in dots per inch (ISO stores pixels per centimetre: see `dpiToPpcm`). */
  resolution: { x: number; y: number };
  minutiae: Minutia[];
  /** Finger quality 0-100. */
  quality: number;
}

export const TWO_PI = 2 * Math.PI;
/** One ISO angle unit: 360/256 degrees, in radians. */
export const ISO_ANGLE_UNIT = TWO_PI / 256;
/** Default capture resolution and the one the matcher's parameters are tuned for. */
export const DEFAULT_DPI = 500;

/** Wraps any finite angle into [0, 2*pi). */
export function normaliseAngle(a: number): number {
  const r = a % TWO_PI;
  return r < 0 ? r + TWO_PI : r;
}

/** Signed smallest difference a - b, in (-pi, pi]. */
export function angleDifference(a: number, b: number): number {
  let d = (a - b) % TWO_PI;
  if (d <= -Math.PI) d += TWO_PI;
  else if (d > Math.PI) d -= TWO_PI;
  return d;
}

/** Radians (our convention) -> ISO byte (units of 1.40625 degrees, same counter-clockwise convention), rounded. */
export function angleToIsoUnits(a: number): number {
  return Math.round(normaliseAngle(a) / ISO_ANGLE_UNIT) & 0xff;
}

/** ISO byte -> radians. */
export function isoUnitsToAngle(u: number): number {
  return (u & 0xff) * ISO_ANGLE_UNIT;
}

/**
 * Converts from the mathematical convention used by much image code, `atan2(dy, dx)` with y pointing DOWN (which
 * turns clockwise on screen), to ours: the same direction is `-atan2(dy, dx)`.
 */
export function angleFromImageVector(dx: number, dy: number): number {
  return normaliseAngle(Math.atan2(-dy, dx));
}

/** ISO resolution is in pixels per centimetre: 500 dpi -> 197 ppcm (196.85 rounded). */
export function dpiToPpcm(dpi: number): number {
  return Math.round(dpi / 2.54);
}

/** 197 ppcm -> 500 dpi (500.38 rounded), so common resolutions survive a round trip. */
export function ppcmToDpi(ppcm: number): number {
  return Math.round(ppcm * 2.54);
}
