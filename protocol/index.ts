/** The wire protocol, for kiosks and verifiers alike. Imports nothing from device/, verifier/, drivers/ or models/. */
export * from './errors.ts';
export * from './rejections.ts';
export * from './base64url.ts';
export * from './claims.ts';
export * from './signer.ts';
export * from './jws.ts';
export * from './jwe.ts';
export * from './trust.ts';
export * from './attestation.ts';
export * from './verdict.ts';
export * from './topics.ts';
export * from './envelope.ts';
export * from './sealed.ts';
export * from './reply.ts';
