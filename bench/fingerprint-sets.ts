/**
 * Which real fingerprint sets the engine was tuned and calibrated on (BENCHMARKS.md, issue 12). Every other set is
 * held out: nothing is chosen while looking at it. Shared by the honest evaluation (fingerprint-real.ts) and the
 * tuning harness (fingerprint-tune.ts), which reads these sets and no other.
 */
export const TUNED_SETS: readonly string[] = ['FVC2000_DB2_B', 'FVC2000_DB3_B', 'FVC2004_DB1_B', 'FVC2004_DB2_B'];
export const CALIBRATION_SETS: readonly string[] = TUNED_SETS;
