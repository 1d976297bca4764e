/**
 * Synthetic fingerprints in the SFinGe tradition (Cappelli, Maio, Maltoni): a master finger per seed (area, class,
 * singular points, orientation and period fields, ridges grown by iterative Gabor filtering), then impressions of
 * it with placement, elastic distortion, skin condition, noise and partial contact.
 */
export { synthesizeFinger, MASTER_WIDTH, MASTER_HEIGHT } from './master.ts';
export { renderImpression, placementOf, SENSOR_WIDTH, SENSOR_HEIGHT } from './impression.ts';
export { masterToImpression, impressionToMaster, type RigidPlacement } from './distortion.ts';
export { poincareIndex, orientationAt } from './orientation.ts';
export { CLASS_FREQUENCIES } from './pattern.ts';
export { fingerSeed, impressionSeed } from './finger-job.ts';
export { synthesizeFingerprintDataset, fingerId, GENERATOR, type FingerprintDatasetOptions, type FingerprintDatasetResult } from './dataset.ts';
export type * from './types.ts';
