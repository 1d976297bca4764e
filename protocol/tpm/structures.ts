/**
 * TPM 2.0 structures (Part 2) this driver reads and writes: TPMT_PUBLIC (ECC, RSA, keyed-hash, symmetric),
 * TPMS_NV_PUBLIC, TPMT_SIGNATURE, TPMS_ATTEST, plus the templates the key store uses. Each has a `write*` and a
 * `read*` built from the one Writer/Reader pair in marshal.ts.
 */
import { createHash } from 'node:crypto';
import { ALG, DIGEST_SIZE, ECC_CURVE, NT, ST, TPMA_NV, TPMA_OBJECT, TPM_GENERATED_VALUE, nvType } from './constants.ts';
import { TpmFormatError } from './errors.ts';
import { Reader, Writer } from './marshal.ts';

// ---- TPMT_SYM_DEF_OBJECT, schemes, KDF --------------------------------------------------------------------

export interface SymDef {
  algorithm: number;
  keyBits?: number;
  mode?: number;
}

export const SYM_NULL: SymDef = { algorithm: ALG.NULL };
export const SYM_AES128_CFB: SymDef = { algorithm: ALG.AES, keyBits: 128, mode: ALG.CFB };

function writeSymDef(w: Writer, s: SymDef): void {
  w.u16(s.algorithm);
  if (s.algorithm === ALG.NULL) return;
  if (s.algorithm === ALG.XOR) {
    w.u16(s.keyBits ?? ALG.SHA256);
    return;
  }
  w.u16(s.keyBits ?? 128).u16(s.mode ?? ALG.CFB);
}

function readSymDef(r: Reader): SymDef {
  const algorithm = r.u16('symmetric.algorithm');
  if (algorithm === ALG.NULL) return { algorithm };
  if (algorithm === ALG.XOR) return { algorithm, keyBits: r.u16('symmetric.hashAlg') };
  return { algorithm, keyBits: r.u16('symmetric.keyBits'), mode: r.u16('symmetric.mode') };
}

/** TPMT_*_SCHEME / TPMT_SIG_SCHEME / TPMT_KDF_SCHEME: an algorithm, then a hash unless NULL (ECDAA adds a count). */
export interface Scheme {
  scheme: number;
  hashAlg?: number;
  count?: number;
}
export const SCHEME_NULL: Scheme = { scheme: ALG.NULL };

function writeScheme(w: Writer, s: Scheme): void {
  w.u16(s.scheme);
  if (s.scheme === ALG.NULL) return;
  w.u16(s.hashAlg ?? ALG.SHA256);
  if (s.scheme === ALG.ECDAA) w.u16(s.count ?? 0);
}

function readScheme(r: Reader, field: string): Scheme {
  const scheme = r.u16(`${field}.scheme`);
  if (scheme === ALG.NULL) return { scheme };
  const hashAlg = r.u16(`${field}.hashAlg`);
  if (scheme === ALG.ECDAA) return { scheme, hashAlg, count: r.u16(`${field}.count`) };
  return { scheme, hashAlg };
}

function readKeyedHashScheme(r: Reader): Scheme {
  const scheme = r.u16('keyedHash.scheme');
  if (scheme === ALG.NULL) return { scheme };
  const hashAlg = r.u16('keyedHash.hashAlg');
  if (scheme === ALG.XOR) r.u16('keyedHash.kdf');
  return { scheme, hashAlg };
}

// ---- TPMT_PUBLIC ------------------------------------------------------------------------------------------

interface PublicCommon {
  nameAlg: number;
  attributes: number;
  authPolicy: Uint8Array;
}

export interface EccPublic extends PublicCommon {
  type: typeof ALG.ECC;
  symmetric: SymDef;
  scheme: Scheme;
  curve: number;
  kdf: Scheme;
  x: Uint8Array;
  y: Uint8Array;
}

export interface RsaPublic extends PublicCommon {
  type: typeof ALG.RSA;
  symmetric: SymDef;
  scheme: Scheme;
  keyBits: number;
  exponent: number;
  modulus: Uint8Array;
}

export interface KeyedHashPublic extends PublicCommon {
  type: typeof ALG.KEYEDHASH;
  scheme: Scheme;
  unique: Uint8Array;
}

export interface SymCipherPublic extends PublicCommon {
  type: typeof ALG.SYMCIPHER;
  symmetric: SymDef;
  unique: Uint8Array;
}

export type TpmtPublic = EccPublic | RsaPublic | KeyedHashPublic | SymCipherPublic;

/** A parsed TPMT_PUBLIC together with its exact wire bytes (the object's name is a hash of them). */
export type ParsedPublic = TpmtPublic & { raw: Uint8Array };

export function writePublic(w: Writer, p: TpmtPublic): void {
  w.u16(p.type).u16(p.nameAlg).u32(p.attributes).tpm2b(p.authPolicy);
  switch (p.type) {
    case ALG.ECC:
      writeSymDef(w, p.symmetric);
      writeScheme(w, p.scheme);
      w.u16(p.curve);
      writeScheme(w, p.kdf);
      w.tpm2b(p.x).tpm2b(p.y);
      return;
    case ALG.RSA:
      writeSymDef(w, p.symmetric);
      writeScheme(w, p.scheme);
      w.u16(p.keyBits).u32(p.exponent).tpm2b(p.modulus);
      return;
    case ALG.KEYEDHASH:
      writeScheme(w, p.scheme);
      w.tpm2b(p.unique);
      return;
    case ALG.SYMCIPHER:
      writeSymDef(w, p.symmetric);
      w.tpm2b(p.unique);
      return;
  }
}

export function publicBytes(p: TpmtPublic): Uint8Array {
  const w = new Writer();
  writePublic(w, p);
  return w.finish();
}

export function readPublic(r: Reader): TpmtPublic {
  const type = r.u16('public.type');
  const nameAlg = r.u16('public.nameAlg');
  const attributes = r.u32('public.objectAttributes');
  const authPolicy = r.tpm2b('public.authPolicy', 64);
  const common = { nameAlg, attributes, authPolicy };
  let p: TpmtPublic;
  switch (type) {
    case ALG.ECC: {
      const symmetric = readSymDef(r);
      const scheme = readScheme(r, 'ecc.scheme');
      const curve = r.u16('ecc.curveID');
      const kdf = readScheme(r, 'ecc.kdf');
      const x = r.tpm2b('ecc.unique.x', 128);
      const y = r.tpm2b('ecc.unique.y', 128);
      p = { type, ...common, symmetric, scheme, curve, kdf, x, y };
      break;
    }
    case ALG.RSA: {
      const symmetric = readSymDef(r);
      const scheme = readScheme(r, 'rsa.scheme');
      const keyBits = r.u16('rsa.keyBits');
      const exponent = r.u32('rsa.exponent');
      const modulus = r.tpm2b('rsa.unique', 512);
      p = { type, ...common, symmetric, scheme, keyBits, exponent, modulus };
      break;
    }
    case ALG.KEYEDHASH: {
      const scheme = readKeyedHashScheme(r);
      p = { type, ...common, scheme, unique: r.tpm2b('keyedHash.unique', 64) };
      break;
    }
    case ALG.SYMCIPHER: {
      const symmetric = readSymDef(r);
      p = { type, ...common, symmetric, unique: r.tpm2b('symCipher.unique', 64) };
      break;
    }
    default:
      throw new TpmFormatError(`${r.what}: unknown public area type 0x${type.toString(16)}`);
  }
  return p;
}

/** TPM2B_PUBLIC: a sized TPMT_PUBLIC; keeps the exact inner bytes. */
export function readPublic2b(r: Reader, field: string): ParsedPublic {
  const body = r.tpm2b(field);
  if (body.length === 0) throw new TpmFormatError(`${r.what}: ${field} is empty`);
  const inner = new Reader(body, `${r.what}: ${field}`);
  const p = readPublic(inner);
  inner.end();
  return { ...p, raw: body };
}

/** An object's name: nameAlg || H_nameAlg(TPMT_PUBLIC). */
export function objectName(p: TpmtPublic | ParsedPublic): Uint8Array {
  const raw = 'raw' in p ? p.raw : publicBytes(p);
  const hash = hashName(p.nameAlg);
  const w = new Writer().u16(p.nameAlg).bytes(createHash(hash).update(raw).digest());
  return w.finish();
}

export function hashName(alg: number): string {
  switch (alg) {
    case ALG.SHA1:
      return 'sha1';
    case ALG.SHA256:
      return 'sha256';
    case ALG.SHA384:
      return 'sha384';
    case ALG.SHA512:
      return 'sha512';
    default:
      throw new TpmFormatError(`unsupported name algorithm 0x${alg.toString(16)}`);
  }
}

// ---- templates --------------------------------------------------------------------------------------------

const EMPTY = new Uint8Array(0);

/** The TCG "SRK" template: ECC P-256 storage key (restricted decrypt, AES-128-CFB), as tpm2_createprimary -G ecc makes. */
export function eccSrkTemplate(): EccPublic {
  return {
    type: ALG.ECC,
    nameAlg: ALG.SHA256,
    attributes:
      TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA | TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt,
    authPolicy: EMPTY,
    symmetric: SYM_AES128_CFB,
    scheme: SCHEME_NULL,
    curve: ECC_CURVE.NIST_P256,
    kdf: SCHEME_NULL,
    x: EMPTY,
    y: EMPTY,
  };
}

/** The attestation key: ECDSA P-256 / SHA-256, unrestricted (signs any digest), non-exportable. */
export function eccSigningKeyTemplate(): EccPublic {
  return {
    type: ALG.ECC,
    nameAlg: ALG.SHA256,
    attributes: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.sign,
    authPolicy: EMPTY,
    symmetric: SYM_NULL,
    scheme: { scheme: ALG.ECDSA, hashAlg: ALG.SHA256 },
    curve: ECC_CURVE.NIST_P256,
    kdf: SCHEME_NULL,
    x: EMPTY,
    y: EMPTY,
  };
}

/**
 * A restricted ECDSA P-256 signing key: it only signs digests the TPM computed itself (or data not starting with
 * TPM_GENERATED_VALUE), so its signature over a TPMS_ATTEST means the TPM produced that attestation.
 */
export function eccRestrictedSigningTemplate(): EccPublic {
  return { ...eccSigningKeyTemplate(), attributes: eccSigningKeyTemplate().attributes | TPMA_OBJECT.restricted };
}

/** The TCG EK policy: PolicySecret(TPM_RH_ENDORSEMENT) (EK Credential Profile, template L-1). */
export const EK_AUTH_POLICY = Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex');
const EK_ATTRIBUTES = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.adminWithPolicy | TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt;

/** TCG EK Credential Profile template L-1: RSA 2048, AES-128-CFB, the key the manufacturer's EK certificate names. */
export function rsaEkTemplate(): RsaPublic {
  return { type: ALG.RSA, nameAlg: ALG.SHA256, attributes: EK_ATTRIBUTES, authPolicy: EK_AUTH_POLICY, symmetric: SYM_AES128_CFB, scheme: SCHEME_NULL, keyBits: 2048, exponent: 0, modulus: new Uint8Array(256) };
}

// ---- ECC public key helpers -------------------------------------------------------------------------------

/** Left-pads a big-endian integer to `len` bytes; refuses one that does not fit. */
export function leftPad(b: Uint8Array, len: number, what: string): Uint8Array {
  let v = b;
  while (v.length > len && v[0] === 0) v = v.subarray(1);
  if (v.length > len) throw new TpmFormatError(`${what} is ${v.length} bytes, over ${len}`);
  const out = new Uint8Array(len);
  out.set(v, len - v.length);
  return out;
}

/** The P-256 public key of an ECC TPMT_PUBLIC as a JWK (x and y left-padded to 32 bytes). */
export function eccPublicJwk(p: TpmtPublic): { kty: 'EC'; crv: 'P-256'; x: string; y: string } {
  if (p.type !== ALG.ECC || p.curve !== ECC_CURVE.NIST_P256) throw new TpmFormatError('the public area is not an ECC P-256 key');
  return {
    kty: 'EC',
    crv: 'P-256',
    x: Buffer.from(leftPad(p.x, 32, 'ecc x')).toString('base64url'),
    y: Buffer.from(leftPad(p.y, 32, 'ecc y')).toString('base64url'),
  };
}

// ---- TPMT_SIGNATURE ---------------------------------------------------------------------------------------

export type TpmtSignature =
  | { sigAlg: typeof ALG.ECDSA | typeof ALG.ECDAA | typeof ALG.SM2 | typeof ALG.ECSCHNORR; hashAlg: number; r: Uint8Array; s: Uint8Array }
  | { sigAlg: typeof ALG.RSASSA | typeof ALG.RSAPSS; hashAlg: number; sig: Uint8Array }
  | { sigAlg: typeof ALG.HMAC; hashAlg: number; digest: Uint8Array }
  | { sigAlg: typeof ALG.NULL };

export function readSignature(r: Reader): TpmtSignature {
  const sigAlg = r.u16('signature.sigAlg');
  switch (sigAlg) {
    case ALG.ECDSA:
    case ALG.ECDAA:
    case ALG.SM2:
    case ALG.ECSCHNORR:
      return { sigAlg, hashAlg: r.u16('signature.hash'), r: r.tpm2b('signature.r', 128), s: r.tpm2b('signature.s', 128) };
    case ALG.RSASSA:
    case ALG.RSAPSS:
      return { sigAlg, hashAlg: r.u16('signature.hash'), sig: r.tpm2b('signature.sig', 512) };
    case ALG.HMAC: {
      const hashAlg = r.u16('signature.hash');
      const n = DIGEST_SIZE.get(hashAlg);
      if (n === undefined) throw new TpmFormatError(`${r.what}: unknown HMAC hash 0x${hashAlg.toString(16)}`);
      return { sigAlg, hashAlg, digest: r.bytes(n, 'signature.digest') };
    }
    case ALG.NULL:
      return { sigAlg };
    default:
      throw new TpmFormatError(`${r.what}: unknown signature algorithm 0x${sigAlg.toString(16)}`);
  }
}

export function writeSignature(w: Writer, s: TpmtSignature): void {
  w.u16(s.sigAlg);
  if (s.sigAlg === ALG.NULL) return;
  w.u16(s.hashAlg);
  if ('r' in s) w.tpm2b(s.r).tpm2b(s.s);
  else if ('sig' in s) w.tpm2b(s.sig);
  else w.bytes(s.digest);
}

/** An ECDSA P-256 TPMT_SIGNATURE as the 64-byte r||s (IEEE P1363), each half left-padded to 32 bytes. */
export function ecdsaP1363(sig: TpmtSignature): Uint8Array {
  if (sig.sigAlg !== ALG.ECDSA) throw new TpmFormatError(`expected an ECDSA signature, got algorithm 0x${sig.sigAlg.toString(16)}`);
  const out = new Uint8Array(64);
  out.set(leftPad(sig.r, 32, 'signature r'), 0);
  out.set(leftPad(sig.s, 32, 'signature s'), 32);
  return out;
}

// ---- TPMS_NV_PUBLIC ---------------------------------------------------------------------------------------

export interface NvPublic {
  nvIndex: number;
  nameAlg: number;
  attributes: number;
  authPolicy: Uint8Array;
  dataSize: number;
}

export function writeNvPublic(w: Writer, p: NvPublic): void {
  w.u32(p.nvIndex).u16(p.nameAlg).u32(p.attributes).tpm2b(p.authPolicy).u16(p.dataSize);
}

export function readNvPublic(r: Reader): NvPublic {
  return {
    nvIndex: r.u32('nvPublic.nvIndex'),
    nameAlg: r.u16('nvPublic.nameAlg'),
    attributes: r.u32('nvPublic.attributes'),
    authPolicy: r.tpm2b('nvPublic.authPolicy', 64),
    dataSize: r.u16('nvPublic.dataSize'),
  };
}

/** A monotonic counter index: owner defines it, the index's own (empty) auth increments and reads it. */
export function counterNvPublic(nvIndex: number): NvPublic {
  return {
    nvIndex,
    nameAlg: ALG.SHA256,
    attributes: nvType(NT.COUNTER) | TPMA_NV.AUTHWRITE | TPMA_NV.OWNERWRITE | TPMA_NV.AUTHREAD | TPMA_NV.OWNERREAD | TPMA_NV.NO_DA,
    authPolicy: EMPTY,
    dataSize: 8,
  };
}

// ---- TPMS_ATTEST ------------------------------------------------------------------------------------------

export interface Attest {
  magic: number;
  type: number;
  qualifiedSigner: Uint8Array;
  extraData: Uint8Array;
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
  firmwareVersion: bigint;
  /** For ATTEST_CERTIFY: the certified object's name and qualified name. */
  certify?: { name: Uint8Array; qualifiedName: Uint8Array };
  /** Other attestation types are kept as raw bytes. */
  attestedRaw?: Uint8Array;
}

/** Parses TPMS_ATTEST bytes (what TPM2_Certify/Quote sign). Refuses data without TPM_GENERATED_VALUE. */
export function parseAttest(bytes: Uint8Array): Attest {
  const r = new Reader(bytes, 'TPMS_ATTEST');
  const magic = r.u32('magic');
  if (magic !== TPM_GENERATED_VALUE) throw new TpmFormatError(`TPMS_ATTEST: magic is 0x${magic.toString(16)}, not TPM_GENERATED_VALUE 0xff544347`);
  const type = r.u16('type');
  const qualifiedSigner = r.tpm2b('qualifiedSigner', 68);
  const extraData = r.tpm2b('extraData', 64);
  const clock = r.u64('clockInfo.clock');
  const resetCount = r.u32('clockInfo.resetCount');
  const restartCount = r.u32('clockInfo.restartCount');
  const safeByte = r.u8('clockInfo.safe');
  if (safeByte > 1) throw new TpmFormatError(`TPMS_ATTEST: clockInfo.safe is ${safeByte}, not a TPMI_YES_NO`);
  const firmwareVersion = r.u64('firmwareVersion');
  const base = { magic, type, qualifiedSigner, extraData, clock, resetCount, restartCount, safe: safeByte === 1, firmwareVersion };
  if (type === ST.ATTEST_CERTIFY) {
    const name = r.tpm2b('attested.certify.name', 68);
    const qualifiedName = r.tpm2b('attested.certify.qualifiedName', 68);
    r.end();
    return { ...base, certify: { name, qualifiedName } };
  }
  return { ...base, attestedRaw: r.bytes(r.remaining, 'attested') };
}
