/**
 * The extractor code's version, which the extractor's identity (engine.ts fingerprintExtractorIdentity) covers beside
 * its graphs and parameters: templates from changed code must never carry an old identity. Any change to the files
 * listed in EXTRACTOR_SOURCES changes their digest, and test/fingerprint-identity.test.ts then fails until the version
 * below is bumped and the digest updated (the test prints the new digest). Comment-only edits count too: the rule is
 * simple and errs on the safe side.
 */
export const EXTRACTOR_CODE_VERSION = 8;

/** sha256 over EXTRACTOR_SOURCES (each as `path\n` + its bytes), at EXTRACTOR_CODE_VERSION. */
export const EXTRACTOR_SOURCE_DIGEST = '82ef1e3c23c69bc014fa9a2bd264459c692c15a318874300a89fd61209e62caa';

/** Repository paths of the code that turns an image into a template. */
export const EXTRACTOR_SOURCES: readonly string[] = [
  'models/common/image.ts',
  'models/common/bmp.ts',
  'models/common/netpbm.ts',
  'models/fingerprint/build.ts',
  'models/fingerprint/descriptor.ts',
  'models/fingerprint/engine.ts',
  'models/fingerprint/iso19794-2.ts',
  'models/fingerprint/minutiae.ts',
  'models/fingerprint/template.ts',
  'models/fingerprint/extract/atan2.ts',
  'models/fingerprint/extract/binarise.ts',
  'models/fingerprint/extract/decode.ts',
  'models/fingerprint/extract/enhance.ts',
  'models/fingerprint/extract/extractor.ts',
  'models/fingerprint/extract/fields.ts',
  'models/fingerprint/extract/index.ts',
  'models/fingerprint/extract/filter.ts',
  'models/fingerprint/extract/frequency.ts',
  'models/fingerprint/extract/graphs.ts',
  'models/fingerprint/extract/minutiae.ts',
  'models/fingerprint/extract/normalise.ts',
  'models/fingerprint/extract/orientation.ts',
  'models/fingerprint/extract/params.ts',
  'models/fingerprint/extract/quality.ts',
  'models/fingerprint/extract/resample.ts',
  'models/fingerprint/extract/segmentation.ts',
  'models/fingerprint/extract/thinning.ts',
  'models/fingerprint/extract/types.ts',
];
