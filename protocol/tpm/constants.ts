/** TPM 2.0 constants used by this driver (TCG TPM 2.0 Library, Part 2: Structures). */

/** TPM_ST: structure tags. */
export const ST = {
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
  CREATION: 0x8021,
  VERIFIED: 0x8022,
  AUTH_SECRET: 0x8023,
  HASHCHECK: 0x8024,
  AUTH_SIGNED: 0x8025,
} as const;

/** TPM_CC: command codes. */
export const CC = {
  NV_UndefineSpace: 0x122,
  EvictControl: 0x120,
  NV_DefineSpace: 0x12a,
  CreatePrimary: 0x131,
  NV_Increment: 0x134,
  SelfTest: 0x143,
  Startup: 0x144,
  Shutdown: 0x145,
  Certify: 0x148,
  NV_Read: 0x14e,
  Create: 0x153,
  Load: 0x157,
  Sign: 0x15d,
  FlushContext: 0x165,
  NV_ReadPublic: 0x169,
  ReadPublic: 0x173,
  ActivateCredential: 0x147,
  PolicySecret: 0x151,
  StartAuthSession: 0x176,
  GetCapability: 0x17a,
  GetRandom: 0x17b,
  PolicyGetDigest: 0x189,
} as const;

/** TPM_SE: session types. */
export const SE = { HMAC: 0x00, POLICY: 0x01, TRIAL: 0x03 } as const;

/** TPM_RH / TPM_RS: permanent handles. */
export const RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  /** The password "session": authorises with the entity's authValue in the clear. */
  RS_PW: 0x40000009,
  LOCKOUT: 0x4000000a,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;

/** TPM_HT: the top byte of a handle says what it is. */
export const HT = {
  PCR: 0x00,
  NV_INDEX: 0x01,
  HMAC_SESSION: 0x02,
  POLICY_SESSION: 0x03,
  PERMANENT: 0x40,
  TRANSIENT: 0x80,
  PERSISTENT: 0x81,
} as const;

/** TPM_ALG_ID. */
export const ALG = {
  ERROR: 0x0000,
  RSA: 0x0001,
  TDES: 0x0003,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  SM4: 0x0013,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  SHA3_256: 0x0027,
  SHA3_384: 0x0028,
  SHA3_512: 0x0029,
  CMAC: 0x003f,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;

/** Readable names for GetCapability(ALGS) results and error messages. */
export const ALG_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(ALG).map(([k, v]) => [v, k.toLowerCase()]));

/** Digest sizes of the hash algorithms a TPMT_HA may carry. */
export const DIGEST_SIZE: ReadonlyMap<number, number> = new Map([
  [ALG.SHA1, 20],
  [ALG.SHA256, 32],
  [ALG.SHA384, 48],
  [ALG.SHA512, 64],
  [ALG.SM3_256, 32],
  [ALG.SHA3_256, 32],
  [ALG.SHA3_384, 48],
  [ALG.SHA3_512, 64],
]);

/** TPM_ECC_CURVE. */
export const ECC_CURVE = { NIST_P192: 0x0001, NIST_P224: 0x0002, NIST_P256: 0x0003, NIST_P384: 0x0004, NIST_P521: 0x0005 } as const;

/** TPM_CAP. */
export const CAP = {
  ALGS: 0,
  HANDLES: 1,
  COMMANDS: 2,
  PP_COMMANDS: 3,
  AUDIT_COMMANDS: 4,
  PCRS: 5,
  TPM_PROPERTIES: 6,
  PCR_PROPERTIES: 7,
  ECC_CURVES: 8,
} as const;

/** TPM_PT: properties for GetCapability(TPM_PROPERTIES). PT_FIXED = 0x100, PT_VAR = 0x200. */
export const PT = {
  FAMILY_INDICATOR: 0x100,
  LEVEL: 0x101,
  REVISION: 0x102,
  DAY_OF_YEAR: 0x103,
  YEAR: 0x104,
  MANUFACTURER: 0x105,
  VENDOR_STRING_1: 0x106,
  VENDOR_STRING_2: 0x107,
  VENDOR_STRING_3: 0x108,
  VENDOR_STRING_4: 0x109,
  VENDOR_TPM_TYPE: 0x10a,
  FIRMWARE_VERSION_1: 0x10b,
  FIRMWARE_VERSION_2: 0x10c,
  INPUT_BUFFER: 0x10d,
  HR_TRANSIENT_MIN: 0x10e,
  HR_PERSISTENT_MIN: 0x10f,
  HR_LOADED_MIN: 0x110,
  MAX_COMMAND_SIZE: 0x11e,
  MAX_RESPONSE_SIZE: 0x11f,
  NV_BUFFER_MAX: 0x12c,
  PERMANENT: 0x200,
  STARTUP_CLEAR: 0x201,
  HR_NV_INDEX: 0x202,
  HR_LOADED: 0x203,
  HR_LOADED_AVAIL: 0x204,
  HR_ACTIVE: 0x205,
  HR_ACTIVE_AVAIL: 0x206,
  HR_TRANSIENT_AVAIL: 0x207,
  HR_PERSISTENT: 0x208,
  HR_PERSISTENT_AVAIL: 0x209,
  NV_COUNTERS: 0x20a,
  NV_COUNTERS_AVAIL: 0x20b,
} as const;

/** TPM_SU: Startup / Shutdown types. */
export const SU = { CLEAR: 0x0000, STATE: 0x0001 } as const;

/** TPMA_OBJECT bits. */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

/** TPMA_NV bits; the index type (TPM_NT) sits in bits 4..7. */
export const TPMA_NV = {
  PPWRITE: 1 << 0,
  OWNERWRITE: 1 << 1,
  AUTHWRITE: 1 << 2,
  POLICYWRITE: 1 << 3,
  POLICY_DELETE: 1 << 10,
  WRITELOCKED: 1 << 11,
  WRITEALL: 1 << 12,
  WRITEDEFINE: 1 << 13,
  WRITE_STCLEAR: 1 << 14,
  GLOBALLOCK: 1 << 15,
  PPREAD: 1 << 16,
  OWNERREAD: 1 << 17,
  AUTHREAD: 1 << 18,
  POLICYREAD: 1 << 19,
  NO_DA: 1 << 25,
  ORDERLY: 1 << 26,
  CLEAR_STCLEAR: 1 << 27,
  READLOCKED: 1 << 28,
  WRITTEN: 1 << 29,
  PLATFORMCREATE: 1 << 30,
  READ_STCLEAR: 2 ** 31,
} as const;

/** TPM_NT: NV index types, shifted into TPMA_NV bits 4..7 by `nvType`. */
export const NT = { ORDINARY: 0x0, COUNTER: 0x1, BITS: 0x2, EXTEND: 0x4, PIN_FAIL: 0x8, PIN_PASS: 0x9 } as const;
export const nvType = (nt: number): number => (nt & 0xf) << 4;

/** Every TPMS_ATTEST starts with this: "\xffTCG". A restricted key refuses to sign digests of data that starts so. */
export const TPM_GENERATED_VALUE = 0xff544347;

/** TCG EK Credential Profile: NV indices of the EK certificates. */
export const EK_CERT_INDEX = {
  RSA_2048: 0x01c00002,
  ECC_P256: 0x01c0000a,
  /** High range (EK profile 2.3+): RSA 2048 0x01c00012, ECC P-256 0x01c00014, ECC P-384 0x01c00016. */
  RSA_2048_H: 0x01c00012,
  ECC_P256_H: 0x01c00014,
  ECC_P384_H: 0x01c00016,
} as const;

/** TPM_RC values the client reacts to. */
export const RC = {
  SUCCESS: 0x000,
  INITIALIZE: 0x100,
  NV_UNINITIALIZED: 0x14a,
  NV_DEFINED: 0x14c,
  HANDLE: 0x08b,
  YIELDED: 0x908,
  TESTING: 0x90a,
  RETRY: 0x922,
  OBJECT_MEMORY: 0x902,
} as const;

/** Bound on a response frame. TPMs advertise TPM_PT_MAX_RESPONSE_SIZE of 4096 or less; twice that is already wrong. */
export const MAX_FRAME = 8192;
export const HEADER_SIZE = 10;
