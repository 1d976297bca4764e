/**
 * TPM2_MakeCredential in software, as a registry does it (TPM 2.0 Part 1, 24 "Credential Protection", and
 * Annex B.10 / C.6 for the seed): a secret that only the TPM holding a given EK can recover, and only for an
 * object of a given name loaded in that same TPM (TPM2_ActivateCredential). That is how a registry learns that
 * an attestation identity key lives in the TPM whose EK certificate it was shown.
 *
 * - seed: 32 random bytes, RSA-OAEP (SHA-256, label "IDENTITY\0") to the EK (RSA 2048, the TCG template L-1:
 *   what EK certificates name first; swtpm's and most TPMs'. ECC EKs of the high-range templates have other
 *   policies and are refused with a clear message rather than half supported).
 * - symKey = KDFa(SHA-256, seed, "STORAGE", name, "", 128); encIdentity = AES-128-CFB(symKey, IV 0, TPM2B(credential))
 * - hmacKey = KDFa(SHA-256, seed, "INTEGRITY", "", "", 256); outerHMAC = HMAC(hmacKey, encIdentity || name)
 * - credentialBlob (TPM2B_ID_OBJECT's body) = TPM2B(outerHMAC) || encIdentity; secret = the encrypted seed.
 *
 * Pure node:crypto; the EK public key comes from its certificate (X.509 SubjectPublicKeyInfo).
 */
import { createCipheriv, createHmac, publicEncrypt, randomBytes, constants, type KeyObject } from 'node:crypto';
import { TpmFormatError } from './errors.ts';
import { Writer } from './marshal.ts';

/** KDFa (SP 800-108 counter mode with HMAC), as TPM 2.0 Part 1 11.4.10.2 defines it. */
export function kdfa(key: Uint8Array, label: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Buffer {
  const out: Buffer[] = [];
  const labelBytes = Buffer.from(`${label}\0`, 'latin1');
  const lenBytes = Buffer.alloc(4);
  lenBytes.writeUInt32BE(bits);
  for (let i = 1, have = 0; have < bits / 8; i++) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(i);
    const block = createHmac('sha256', key).update(counter).update(labelBytes).update(contextU).update(contextV).update(lenBytes).digest();
    out.push(block);
    have += block.length;
  }
  return Buffer.concat(out).subarray(0, bits / 8);
}

export interface MadeCredential {
  /** TPM2_ActivateCredential's credentialBlob (the body of a TPM2B_ID_OBJECT). */
  credentialBlob: Buffer;
  /** Its secret (the body of a TPM2B_ENCRYPTED_SECRET). */
  secret: Buffer;
}

/**
 * Protects `credential` (at most 32 bytes) for the object named `objectName` in the TPM whose EK is `ek` (RSA
 * 2048, as the TCG EK template L-1 makes it: SHA-256 name, AES-128-CFB).
 */
export function makeCredential(ek: KeyObject, objectName: Uint8Array, credential: Uint8Array): MadeCredential {
  if (credential.length === 0 || credential.length > 32) throw new TpmFormatError(`a credential is 1-32 bytes, got ${credential.length}`);
  if (ek.asymmetricKeyType !== 'rsa' || ek.asymmetricKeyDetails?.modulusLength !== 2048) {
    const what = ek.asymmetricKeyType === 'ec' ? `ECC ${ek.asymmetricKeyDetails?.namedCurve}` : `${ek.asymmetricKeyType} ${ek.asymmetricKeyDetails?.modulusLength ?? ''}`;
    throw new TpmFormatError(`the EK certificate is for an ${what} key; registration needs the TPM's RSA 2048 EK (TCG template L-1)`);
  }
  const seed = randomBytes(32);
  const secret = publicEncrypt({ key: ek, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0', 'latin1') }, seed);
  const symKey = kdfa(seed, 'STORAGE', objectName, new Uint8Array(0), 128);
  const plain = Buffer.from(new Writer().tpm2b(credential).finish());
  const c = createCipheriv('aes-128-cfb', symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([c.update(plain), c.final()]);
  const hmacKey = kdfa(seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), 256);
  const outerHmac = createHmac('sha256', hmacKey).update(encIdentity).update(objectName).digest();
  const credentialBlob = Buffer.concat([Buffer.from(new Writer().tpm2b(outerHmac).finish()), encIdentity]);
  return { credentialBlob, secret };
}
