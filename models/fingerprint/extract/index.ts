/** Fingerprint minutiae extraction: see extractor.ts for the stages. */
export { FingerprintExtractor, imageVectorToAngle, type LoadOptions } from './extractor.ts';
export { decodeGray } from './decode.ts';
export { RETRY_BELOW } from './quality.ts';
export { PARAMS, WORKING_DPI } from './params.ts';
export type * from './types.ts';
