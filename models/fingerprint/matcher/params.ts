/**
 * Parameters of the MCC matcher (Cappelli, Ferrara, Maltoni, "Minutia Cylinder-Code", IEEE TPAMI 2010). Lengths are
 * pixels at 500 dpi; templates at other resolutions are rescaled to 500 dpi when prepared.
 *
 * Defaults follow the paper's bit-based MCC / LSS-R settings except, for speed (the 20,000 comparisons/s budget):
 *  - ns = 8 (the paper's MCC8b: 52 in-circle cells x 6 sections = 10 words per cylinder) instead of 16 (208 cells,
 *    39 words, ~2.5x slower, EER on the synthetic sets ~0.5% instead of ~0.8%: pass { ...MCC_DEFAULTS, ns: 16 });
 *  - maxRotation = 60 degrees instead of 90: a finger on a kiosk sensor is placed within about +-30 degrees, and the
 *    limit cuts the pairs to compare by a third;
 *  - at most 20 pairs enter the relaxation (the paper: min(nA, nB)); images of the synthetic sets give ~26 minutiae
 *    with a cylinder, so this rarely bites there (same EER / FNMR as 24) and saves ~15% on 40-minutia templates;
 *  - omega = 70 px instead of 50: with 8 cells across, every cell centre lies within 66.6 px of its minutia, so every
 *    cell of every cylinder is then valid and comparisons take the mask-free path (+25% speed). The masks are still
 *    built and honoured (omega = 50 restores the paper's behaviour, tested too); on the synthetic sets, whose
 *    impressions are cropped, the EER is the same either way (0.81% vs 0.83%). Re-check on real partial captures.
 * and, for accuracy: mu1 = 7 px / tau1 = -1 (the paper: 5 / -1.6), to tolerate distortion and extraction jitter
 * in the relaxation; uniquePairs (each minutia in at most one relaxed pair): without it a few minutiae with many
 * similar cylinders fill the relaxation with pairs sharing a minutia, which cannot support each other, and genuine
 * partial impressions lose. Image-based set (100 fingers x 8, seed 1, all cross-finger impostors): EER 1.46% ->
 * 0.93%, FNMR at FMR 1e-4 3.6% -> 2.75% (10 px / -0.8 and no uniqueness before); muPsi = 0.005 (the paper:
 * 0.01), because with 8 cells across the cell centres are 17.5 px apart and a neighbour lying between two centres
 * contributes just under 0.01 and was lost (EER on held-out synthetic sets 0.83% instead of 1.0%).
 *
 * For real captures (issue 12; tuned on FVC2000 DB2/DB3 and FVC2004 DB1/DB2 B, see BENCHMARKS.md): nP between 8 and
 * 16 instead of 4 and 12, so a template with a handful of minutiae cannot reach a high score from four lucky pairs
 * (those were the highest impostor scores of every set); and a second stage, global pairing (pairing.ts), whose
 * score is fused with LSS-R's: score = f / (1 + f), f = lssr / lssrScale + pairing / pairingScale. The scales put
 * the two on the same footing (their impostor scores reach about 0.05 and 0.1 respectively). Orientation
 * descriptors (descriptor.ts; issue 12, same tuning sets), when both templates have them: the local similarities
 * that decide (LSS-R's candidates, 6 instead of 3 times its relaxation pairs, ranked again after weighting, and the
 * pairs the pairing stage counts) times the agreement of the two minutiae's descriptors (clipped at 0; 0.5 when they
 * share fewer than 4 points on the finger, and below a local similarity of 0.3). Weighing every similarity instead
 * did a little better, within the noise of 40 fingers, at 0.6x the comparisons per second (BENCHMARKS.md). f is
 * then multiplied by 1.045, which keeps the default threshold's FMR.
 */
export interface MccParams {
  /** Cylinder radius (px). */
  radius: number;
  /** Spatial cells along each side of the cylinder's base. */
  ns: number;
  /** Directional cells (sections of the cylinder). */
  nd: number;
  /** Gaussian sigma of the spatial contribution (px). */
  sigmaS: number;
  /** Gaussian sigma of the directional contribution (rad). */
  sigmaD: number;
  /** A cell's bit is set when its summed contribution reaches this. */
  muPsi: number;
  /** Offset (px) by which the convex hull of the minutiae is enlarged to decide which cells are valid. */
  omega: number;
  /** A cylinder is kept only if at least this fraction of its cells is valid ... */
  minValidCells: number;
  /** ... and at least this many other minutiae lie within radius + 3 sigmaS. */
  minMinutiae: number;
  /** Two cylinders are comparable only if this fraction of cells is valid in both. */
  minMatchableCells: number;
  /** Two minutiae can match only if their directions differ by at most this (rad): the largest expected rotation. */
  maxRotation: number;
  /** LSS-R: how many top pairs enter the relaxation: min(nA, nB, maxRelaxPairs) (the paper: min(nA, nB)). */
  maxRelaxPairs: number;
  /** Whether those pairs must use each minutia at most once (greedy by similarity; not in the paper). */
  uniquePairs: boolean;
  /** LSS-R: pairs averaged for the score, nP = minNP + round(Z(min(nA, nB); muP, tauP) * (maxNP - minNP)). */
  minNP: number;
  maxNP: number;
  muP: number;
  tauP: number;
  /** LSS-R relaxation: iterations and the weight of a pair's own previous value. */
  relaxIterations: number;
  relaxWeight: number;
  /** Compatibility sigmoids: distance difference (px), direction difference (rad), radial-angle difference (rad). */
  mu1: number; tau1: number;
  mu2: number; tau2: number;
  mu3: number; tau3: number;
  /** Pairing (pairing.ts): anchors tried (the pairs LSS-R's relaxation supported most), distance tolerance (px, + growth x px from the anchor), direction (rad). */
  anchors: number;
  pairDistance: number;
  pairDistanceGrowth: number;
  pairAngle: number;
  /** Convex hulls are enlarged by this (px) to count the minutiae that could have paired, never fewer than the floor. */
  overlapMargin: number;
  overlapFloor: number;
  /**
   * Fusion: f = lssr / lssrScale + gate x pairing / pairingScale; score = f / (1 + f). The gate ramps from 0 to 1 as
   * LSS-R goes from pairingGate[0] to pairingGate[1].
   */
  lssrScale: number;
  pairingScale: number;
  pairingGate: readonly [number, number];
  /**
   * Orientation descriptors (when both templates carry them; similarity.ts weighByDescriptors): the fewest points on
   * the finger in both for an agreement, the weight when there are fewer, and the factor on f that keeps the score
   * scale (and the default threshold) of templates without descriptors.
   */
  descriptorMinSamples: number;
  descriptorUnknown: number;
  /** Local similarities below this take the neutral weight descriptorUnknown without comparing descriptors (speed). */
  descriptorFrom: number;
  /** With descriptors, how many candidates (x the relaxation pairs) LSS-R weighs and ranks again (3 without). */
  descriptorCandidates: number;
  descriptorScale: number;
}

export const MCC_DEFAULTS: Readonly<MccParams> = Object.freeze({
  radius: 70,
  ns: 8,
  nd: 6,
  sigmaS: 28 / 3,
  sigmaD: (2 * Math.PI) / 9,
  muPsi: 0.005,
  omega: 70,
  minValidCells: 0.75,
  minMinutiae: 2,
  minMatchableCells: 0.6,
  maxRotation: Math.PI / 3,
  maxRelaxPairs: 16,
  uniquePairs: true,
  minNP: 8,
  maxNP: 16,
  muP: 20,
  tauP: 0.4,
  relaxIterations: 5,
  relaxWeight: 0.5,
  mu1: 7, tau1: -1,
  mu2: Math.PI / 12, tau2: -30,
  mu3: Math.PI / 12, tau3: -30,
  anchors: 2,
  pairDistance: 7,
  pairDistanceGrowth: 0.05,
  pairAngle: 0.35,
  overlapMargin: 10,
  overlapFloor: 12,
  lssrScale: 0.05,
  pairingScale: 0.1,
  pairingGate: [0.014, 0.02] as const,
  descriptorMinSamples: 4,
  descriptorUnknown: 0.5,
  descriptorFrom: 0.3,
  descriptorCandidates: 6,
  descriptorScale: 1.045,
});

/** The sigmoid Z(v; mu, tau) of the paper. */
export function sigmoid(v: number, mu: number, tau: number): number {
  return 1 / (1 + Math.exp(-tau * (v - mu)));
}
