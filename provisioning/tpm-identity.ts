/**
 * The kiosk's side of proving its identity with its TPM: the evidence for the registry (EK certificate, the
 * identity key's and the attestation key's public areas), the answer to its challenge (ActivateCredential with
 * the EK's policy, then TPM2_Certify of the attestation key by the identity key over the registry's nonce), and
 * the same certification for a rotated key.
 *
 * The identity key is a primary of the endorsement hierarchy from a fixed template (a restricted ECDSA P-256
 * signing key, device/keystore/tpm.ts): the same key every time it is derived, for as long as the TPM's
 * endorsement seed lives, so nothing of it needs to be kept.
 */
import { createHmac } from 'node:crypto';
import { activationInput, EnrollmentError, type EnrollChallenge, type TpmEvidence } from '../protocol/enrollment.ts';
import { RH, TpmError, eccRestrictedSigningTemplate, type TpmClient } from '../drivers/tpm/index.ts';
import type { TpmKeyStore } from '../device/keystore/tpm.ts';

export async function tpmEvidence(ks: TpmKeyStore): Promise<TpmEvidence> {
  const c = ks.client;
  const ek = await c.readEkCertificate('rsa');
  if (!ek) {
    throw new EnrollmentError('NoEkCertificate', "this TPM has no RSA 2048 EK certificate in NV (index 0x01c00002): registration needs the manufacturer's EK certificate (some firmware TPMs keep none: ask the vendor for it, or register the kiosk as a development device)");
  }
  const identity = await c.createPrimary(RH.ENDORSEMENT, eccRestrictedSigningTemplate());
  await c.flushQuietly(identity.handle);
  const info = await c.info();
  return {
    ekCertificate: Buffer.from(ek.der).toString('base64url'),
    identityKeyPublic: Buffer.from(identity.public.raw).toString('base64url'),
    attestationKeyPublic: Buffer.from(ks.publicArea.raw).toString('base64url'),
    manufacturer: `${info.manufacturer} ${info.vendor}`.trim().slice(0, 64) || 'unknown',
    firmwareVersion: info.firmwareVersion.slice(0, 64) || 'unknown',
  };
}

export interface ChallengeAnswer {
  /** The credential the TPM recovered (seals the broker password in the answer). */
  credential: Buffer;
  activation: string;
  certify: { attest: string; signature: string };
}

/** Recovers the registry's credential and certifies the attestation key over its nonce. */
export async function answerChallenge(ks: TpmKeyStore, ch: EnrollChallenge): Promise<ChallengeAnswer> {
  if (!ch.credentialBlob || !ch.secret) throw new EnrollmentError('BadChallenge', "the registry's challenge for a TPM device carries no credential");
  const c = ks.client;
  const credential = Buffer.from(await activate(c, Buffer.from(ch.credentialBlob, 'base64url'), Buffer.from(ch.secret, 'base64url')));
  const nonce = Buffer.from(ch.nonce, 'base64url');
  const activation = createHmac('sha256', credential).update(activationInput(ch.enrollmentId, nonce)).digest('base64url');
  const evidence = await ks.certify(nonce);
  return { credential, activation, certify: { attest: Buffer.from(evidence.attest).toString('base64url'), signature: Buffer.from(evidence.signature).toString('base64url') } };
}

/** ActivateCredential with the EK and the identity key, both transient and flushed. */
export async function activate(c: TpmClient, blob: Uint8Array, secret: Uint8Array): Promise<Uint8Array> {
  const ek = await c.createEk();
  return c.withTransient(ek.handle, async (ekHandle) => {
    const identity = await c.createPrimary(RH.ENDORSEMENT, eccRestrictedSigningTemplate());
    return c.withTransient(identity.handle, async (idHandle) => {
      try {
        return await c.activateCredential(idHandle, ekHandle, blob, secret);
      } catch (e) {
        if (e instanceof TpmError) {
          throw new EnrollmentError('ActivationFailed', `this TPM cannot recover the registry's credential (${e.message}): the challenge was made for another TPM's EK or identity key`, false, 403);
        }
        throw e;
      }
    });
  });
}
