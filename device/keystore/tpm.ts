/**
 * The TPM key store: the kiosk's attestation key is an ECC P-256 key created inside the TPM (fixedTPM |
 * fixedParent | sensitiveDataOrigin | userWithAuth | sign; ECDSA with SHA-256), so its private half never exists
 * outside it and a copied disk image carries no key.
 *
 * - The key is made under the owner hierarchy's storage primary (the TCG ECC P-256 "SRK" template, re-derived on
 *   demand, never persisted) and persisted with EvictControl at a configurable handle (default 0x81010002).
 *   `open` reuses the persistent key when it is there (checking that it is the kind of key described above),
 *   creates it otherwise.
 * - Certify evidence: the attestation key is certified by a *restricted* ECDSA P-256 signing key, a primary of
 *   the endorsement hierarchy derived from a fixed template (so it is the same key on every call for as long as
 *   the TPM's endorsement seed lives). A restricted key signs a TPMS_ATTEST only when the TPM itself produced it,
 *   so the evidence means "this TPM holds an object with this name and these attributes". (Self-certification
 *   would prove nothing: an unrestricted signing key signs any digest, including a forged TPMS_ATTEST.) Binding
 *   the certifying key to the TPM's EK certificate (TPM2_MakeCredential/ActivateCredential) is for provisioning;
 *   `ekCertificate()` reads the EK certificate for that.
 */
import { randomBytes } from 'node:crypto';
import { BiokioskError } from '../../protocol/errors.ts';
import { jwkThumbprint, p256PublicJwk, type P256PublicJwk, type Signer } from '../../protocol/signer.ts';
import {
  ALG,
  ECC_CURVE,
  RC,
  RH,
  TPMA_OBJECT,
  TpmClient,
  TpmError,
  eccPublicJwk,
  eccRestrictedSigningTemplate,
  eccSigningKeyTemplate,
  eccSrkTemplate,
  ecdsaP1363,
  parseAttest,
  type Attest,
  type ParsedPublic,
} from '../../drivers/tpm/index.ts';

export const DEFAULT_KEY_HANDLE = 0x81010002;

export interface TpmKeyStoreOptions {
  /** A TPM setting (`device:/dev/tpmrm0`, `swtpm:host=...`) or an open client (then not closed by `close`). */
  tpm: string | TpmClient;
  /** Persistent handle of the attestation key (0x81000000-0x81FFFFFF). */
  handle?: number;
  /** Create the key when absent (default true). */
  create?: boolean;
}

export interface CertifyEvidence {
  /** TPMS_ATTEST bytes exactly as signed. */
  attest: Uint8Array;
  /** ECDSA P-256 / SHA-256 signature over `attest`, r||s. */
  signature: Uint8Array;
  /** The certifying (restricted, endorsement-hierarchy) key. */
  signerPublicJwk: P256PublicJwk;
  signerName: Uint8Array;
  /** The attestation key's TPM name (nameAlg || SHA-256(TPMT_PUBLIC)); `parsed.certify.name` equals it. */
  keyName: Uint8Array;
  /** The attestation key's TPMT_PUBLIC bytes, so a verifier can recompute the name and check the attributes. */
  keyPublicArea: Uint8Array;
  parsed: Attest;
}

const REQUIRED_ATTRS = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.sign;
const FORBIDDEN_ATTRS = TPMA_OBJECT.decrypt | TPMA_OBJECT.restricted;

function mismatch(handle: number, why: string): BiokioskError {
  return new BiokioskError('TpmKeyMismatch', `the object at persistent handle 0x${handle.toString(16)} is not a biokiosk attestation key: ${why}`, { kind: 'internal' });
}

/** Checks a public area is the attestation key this store makes. */
function checkAttestationKey(handle: number, p: ParsedPublic): void {
  if (p.type !== ALG.ECC || p.curve !== ECC_CURVE.NIST_P256) throw mismatch(handle, 'not an ECC P-256 key');
  if ((p.attributes & REQUIRED_ATTRS) !== REQUIRED_ATTRS) throw mismatch(handle, `attributes 0x${p.attributes.toString(16)} lack fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|sign`);
  if (p.attributes & FORBIDDEN_ATTRS) throw mismatch(handle, 'it is a decrypt or restricted key');
  if (p.scheme.scheme !== ALG.ECDSA || p.scheme.hashAlg !== ALG.SHA256) throw mismatch(handle, 'its scheme is not ECDSA with SHA-256');
  if (p.nameAlg !== ALG.SHA256) throw mismatch(handle, 'its name algorithm is not SHA-256');
}

export class TpmKeyStore implements Signer {
  readonly developmentOnly = false;
  readonly kid: string;
  readonly publicJwk: P256PublicJwk;

  private constructor(
    readonly client: TpmClient,
    private readonly ownsClient: boolean,
    readonly handle: number,
    readonly publicArea: ParsedPublic,
    /** The key's TPM name. */
    readonly name: Uint8Array,
    /** True when `open` created and persisted the key just now. */
    readonly created: boolean,
  ) {
    this.publicJwk = p256PublicJwk(eccPublicJwk(publicArea));
    this.kid = jwkThumbprint(this.publicJwk);
  }

  static async open(opts: TpmKeyStoreOptions): Promise<TpmKeyStore> {
    const owns = typeof opts.tpm === 'string';
    const client = typeof opts.tpm === 'string' ? TpmClient.open(opts.tpm) : opts.tpm;
    const handle = opts.handle ?? DEFAULT_KEY_HANDLE;
    if (handle >>> 24 !== 0x81) throw new BiokioskError('BadUsage', `TPM key handle 0x${handle.toString(16)} is not a persistent handle (0x81xxxxxx)`);
    try {
      let created = false;
      let existing = await readIfPresent(client, handle);
      if (!existing) {
        if (opts.create === false) throw new BiokioskError('TpmKeyMissing', `no attestation key at TPM handle 0x${handle.toString(16)}`, { kind: 'internal' });
        created = await createAndPersist(client, handle);
        existing = await readIfPresent(client, handle);
        if (!existing) throw new BiokioskError('TpmKeyMissing', `the key persisted at 0x${handle.toString(16)} is not readable`, { kind: 'internal' });
      }
      checkAttestationKey(handle, existing.public);
      return new TpmKeyStore(client, owns, handle, existing.public, existing.name, created);
    } catch (e) {
      if (owns) await client.close();
      throw e;
    }
  }

  /** ECDSA P-256 over a SHA-256 digest, by the TPM; r||s. */
  async sign(digest: Uint8Array): Promise<Uint8Array> {
    if (digest.length !== 32) throw new BiokioskError('BadInput', `expected a 32-byte SHA-256 digest, got ${digest.length} bytes`);
    return this.client.signP256(this.handle, digest);
  }

  /**
   * The TPM's Certify evidence for the attestation key, signed by the restricted endorsement-hierarchy key.
   * `qualifyingData` (e.g. a verifier's nonce, up to 64 bytes) ends up in `parsed.extraData`.
   */
  async certify(qualifyingData: Uint8Array = randomBytes(32)): Promise<CertifyEvidence> {
    const c = this.client;
    const signer = await c.createPrimary(RH.ENDORSEMENT, eccRestrictedSigningTemplate());
    return c.withTransient(signer.handle, async (signerHandle) => {
      const res = await c.certify(this.handle, signerHandle, qualifyingData, { scheme: ALG.ECDSA, hashAlg: ALG.SHA256 });
      return {
        attest: res.attest,
        signature: ecdsaP1363(res.signature),
        signerPublicJwk: p256PublicJwk(eccPublicJwk(signer.public)),
        signerName: signer.name,
        keyName: this.name,
        keyPublicArea: this.publicArea.raw,
        parsed: parseAttest(res.attest),
      };
    });
  }

  /** The TPM's EK certificate (DER), when it has one. */
  ekCertificate(kind: 'ecc' | 'rsa' | 'any' = 'any'): Promise<{ index: number; der: Uint8Array } | null> {
    return this.client.readEkCertificate(kind);
  }

  /** Removes the persistent key from the TPM (decommissioning; tests). */
  async destroy(): Promise<void> {
    await this.client.evictControl(this.handle, this.handle);
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }
}

async function readIfPresent(client: TpmClient, handle: number): Promise<{ public: ParsedPublic; name: Uint8Array } | null> {
  try {
    const r = await client.readPublic(handle);
    return { public: r.public, name: r.name };
  } catch (e) {
    if (e instanceof TpmError && e.baseCode === RC.HANDLE) return null;
    throw e;
  }
}

/** Creates the key under a transient SRK, loads it, persists it; every transient handle is flushed. */
async function createAndPersist(client: TpmClient, handle: number): Promise<boolean> {
  const srk = await client.createPrimary(RH.OWNER, eccSrkTemplate());
  return client.withTransient(srk.handle, async (srkHandle) => {
    const key = await client.create(srkHandle, eccSigningKeyTemplate());
    const loaded = await client.load(srkHandle, key.private, key.public);
    return client.withTransient(loaded.handle, async (keyHandle) => {
      try {
        await client.evictControl(keyHandle, handle);
        return true;
      } catch (e) {
        // Another opener persisted one between our check and now: use theirs.
        if (e instanceof TpmError && e.baseCode === RC.NV_DEFINED) return false;
        throw e;
      }
    });
  });
}
