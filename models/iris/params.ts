/**
 * Every number the iris extractor uses, in one frozen object: the model identity in templates hashes it (with the
 * graph and the code version), so a change here is a new model that a verifier must allow.
 *
 * Geometry is in pixels of the WORKING image: the input scaled so that its longer side is at most `workingSide`
 * (640x480 -> 320x240; CASIA's 320x280 and the kiosk cameras' 320x240 are used as they are).
 */
export const IRIS_PARAMS = Object.freeze({
  workingSide: 320,
  minSide: 96,
  maxSide: 4096,
  /** Specular reflections: brighter than `specularMin` and than the local mean by `specularLift`. */
  specularMin: 180,
  specularLift: 45,
  specularDilate: 2,
  /** Pupil radius range as a fraction of the working image's shorter side. */
  pupilRadius: Object.freeze([0.035, 0.24]) as readonly [number, number],
  /** Iris radius relative to the pupil radius (ISO/IEC 29794-6 pupil/iris ratio 0.2-0.7 and a little margin). */
  irisToPupil: Object.freeze([1.45, 5]) as readonly [number, number],
  /** Iris radius range as a fraction of the shorter side. */
  irisRadius: Object.freeze([0.12, 0.62]) as readonly [number, number],
  /** Limbus arcs (degrees from the horizontal, y down = positive): the lateral parts, clear of the eyelids. */
  limbusArc: Object.freeze([-20, 30]) as readonly [number, number],
  /** How far the iris centre may be from the pupil centre, as a fraction of the pupil radius. */
  centreOffset: 0.25,
  /** Least pupil/iris boundary contrast (grey levels per pixel of radius, after smoothing) to call it found. */
  minPupilEdge: 2.0,
  minLimbusEdge: 0.6,
  /** Rubber sheet: rings from the pupil (0) to the limbus (1). */
  polarRows: 32,
  polarCols: 256,
  rhoRange: Object.freeze([0.04, 0.86]) as readonly [number, number],
  /** Occlusion thresholds, in units of the iris texture's robust spread around its median. */
  brightSpread: 3.2,
  darkSpread: 2.5,
  /** The code grid: rings x angular columns, 2 bits each; the filter's stride in the polar image. */
  codeRings: 8,
  codeCols: 128,
  /** Quality: captures below this should be taken again. */
  retryBelow: 30,
});

export type IrisParams = typeof IRIS_PARAMS;
