/**
 * TPM_RC decoding (Part 2, 6.6). A response code is either format-one (bit 7 set: an error about a numbered
 * handle, parameter or session, with the number folded into bits 6 and 8..11) or format-zero (bit 8 set for a
 * TPM 2.0 code, bit 11 also set for a warning, 0x900 range), or a TPM 1.2 code (neither bit).
 */

export interface RcInfo {
  /** The code with the handle/parameter/session number removed; what to compare against. */
  base: number;
  name: string;
  description: string;
  /** e.g. "handle 1", "parameter 2", "session 1" for format-one codes. */
  where?: string;
  warning: boolean;
}

const FMT1: Record<number, [string, string]> = {
  0x01: ['TPM_RC_ASYMMETRIC', 'asymmetric algorithm not supported or not correct'],
  0x02: ['TPM_RC_ATTRIBUTES', 'inconsistent attributes'],
  0x03: ['TPM_RC_HASH', 'hash algorithm not supported or not appropriate'],
  0x04: ['TPM_RC_VALUE', 'value is out of range or is not correct for the context'],
  0x05: ['TPM_RC_HIERARCHY', 'hierarchy is not enabled or is not correct for the use'],
  0x07: ['TPM_RC_KEY_SIZE', 'key size is not supported'],
  0x08: ['TPM_RC_MGF', 'mask generation function not supported'],
  0x09: ['TPM_RC_MODE', 'mode of operation not supported'],
  0x0a: ['TPM_RC_TYPE', 'the type of the value is not appropriate for the use'],
  0x0b: ['TPM_RC_HANDLE', 'the handle is not correct for the use (no such object, or the wrong kind)'],
  0x0c: ['TPM_RC_KDF', 'unsupported key derivation function or function not appropriate for use'],
  0x0d: ['TPM_RC_RANGE', 'value was out of allowed range'],
  0x0e: ['TPM_RC_AUTH_FAIL', 'the authorization HMAC check failed and the dictionary-attack counter was incremented'],
  0x0f: ['TPM_RC_NONCE', 'invalid nonce size or nonce value mismatch'],
  0x10: ['TPM_RC_PP', 'authorization requires assertion of physical presence'],
  0x12: ['TPM_RC_SCHEME', 'unsupported or incompatible scheme'],
  0x15: ['TPM_RC_SIZE', 'structure is the wrong size'],
  0x16: ['TPM_RC_SYMMETRIC', 'unsupported symmetric algorithm or key size, or not appropriate for instance'],
  0x17: ['TPM_RC_TAG', 'incorrect structure tag'],
  0x18: ['TPM_RC_SELECTOR', 'union selector is incorrect'],
  0x1a: ['TPM_RC_INSUFFICIENT', 'the TPM was unable to unmarshal a value because there were not enough octets in the input buffer'],
  0x1b: ['TPM_RC_SIGNATURE', 'the signature is not valid'],
  0x1c: ['TPM_RC_KEY', 'key fields are not compatible with the selected use'],
  0x1d: ['TPM_RC_POLICY_FAIL', 'a policy check failed'],
  0x1f: ['TPM_RC_INTEGRITY', 'integrity check failed'],
  0x20: ['TPM_RC_TICKET', 'invalid ticket'],
  0x21: ['TPM_RC_RESERVED_BITS', 'reserved bits not set to zero as required'],
  0x22: ['TPM_RC_BAD_AUTH', 'authorization failure without dictionary-attack implications'],
  0x23: ['TPM_RC_EXPIRED', 'the policy has expired'],
  0x24: ['TPM_RC_POLICY_CC', 'the commandCode in the policy is not the commandCode of the command'],
  0x25: ['TPM_RC_BINDING', 'public and sensitive portions of an object are not cryptographically bound'],
  0x26: ['TPM_RC_CURVE', 'curve not supported'],
  0x27: ['TPM_RC_ECC_POINT', 'point is not on the required curve'],
};

const VER1: Record<number, [string, string]> = {
  0x000: ['TPM_RC_INITIALIZE', 'the TPM is not initialized (it was reset): send TPM2_Startup'],
  0x001: ['TPM_RC_FAILURE', 'the TPM is in failure mode'],
  0x003: ['TPM_RC_SEQUENCE', 'improper use of a sequence handle'],
  0x00b: ['TPM_RC_PRIVATE', 'not currently used'],
  0x019: ['TPM_RC_HMAC', 'not currently used'],
  0x020: ['TPM_RC_DISABLED', 'the command is disabled'],
  0x021: ['TPM_RC_EXCLUSIVE', 'the command failed because the audit sequence required exclusivity'],
  0x024: ['TPM_RC_AUTH_TYPE', 'authorization handle is not correct for the command'],
  0x025: ['TPM_RC_AUTH_MISSING', 'the command requires an authorization session for a handle and it is not present'],
  0x026: ['TPM_RC_POLICY', 'policy failure in math operation or an invalid authPolicy value'],
  0x027: ['TPM_RC_PCR', 'PCR check fail'],
  0x028: ['TPM_RC_PCR_CHANGED', 'PCR have changed since checked'],
  0x02d: ['TPM_RC_UPGRADE', 'the TPM is in field upgrade mode'],
  0x02e: ['TPM_RC_TOO_MANY_CONTEXTS', 'context ID counter is at maximum'],
  0x02f: ['TPM_RC_AUTH_UNAVAILABLE', 'authValue or authPolicy is not available for the selected entity'],
  0x030: ['TPM_RC_REBOOT', 'a _TPM_Init and Startup(CLEAR) is required before the TPM can resume operation'],
  0x031: ['TPM_RC_UNBALANCED', 'the protection algorithms (hash and symmetric) are not reasonably balanced'],
  0x042: ['TPM_RC_COMMAND_SIZE', 'command size value is inconsistent with the contents of the command buffer'],
  0x043: ['TPM_RC_COMMAND_CODE', 'command code not supported'],
  0x044: ['TPM_RC_AUTHSIZE', 'the value of authorizationSize is out of range or the number of sessions is wrong'],
  0x045: ['TPM_RC_AUTH_CONTEXT', 'use of an authorization session with a context command or another command that cannot have one'],
  0x046: ['TPM_RC_NV_RANGE', 'NV offset plus size is out of range'],
  0x047: ['TPM_RC_NV_SIZE', 'requested allocation size is larger than allowed'],
  0x048: ['TPM_RC_NV_LOCKED', 'NV access locked'],
  0x049: ['TPM_RC_NV_AUTHORIZATION', 'NV access authorization fails in command actions'],
  0x04a: ['TPM_RC_NV_UNINITIALIZED', 'an NV index is used before being initialized (written or incremented)'],
  0x04b: ['TPM_RC_NV_SPACE', 'insufficient space for NV allocation'],
  0x04c: ['TPM_RC_NV_DEFINED', 'the NV index is already defined'],
  0x050: ['TPM_RC_BAD_CONTEXT', 'context in TPM2_ContextLoad is not valid'],
  0x051: ['TPM_RC_CPHASH', 'cpHash value already set or not correct for use'],
  0x052: ['TPM_RC_PARENT', 'handle for parent is not a valid parent'],
  0x053: ['TPM_RC_NEEDS_TEST', 'some function needs testing'],
  0x054: ['TPM_RC_NO_RESULT', 'the TPM cannot perform a required function'],
  0x055: ['TPM_RC_SENSITIVE', 'the sensitive area did not unmarshal correctly after decryption'],
};

const WARN: Record<number, [string, string]> = {
  0x001: ['TPM_RC_CONTEXT_GAP', 'gap for context ID is too large'],
  0x002: ['TPM_RC_OBJECT_MEMORY', 'out of object slots; flush transient handles'],
  0x003: ['TPM_RC_SESSION_MEMORY', 'out of session slots; flush sessions'],
  0x004: ['TPM_RC_MEMORY', 'out of shared object/session memory or need space for internal operations'],
  0x005: ['TPM_RC_SESSION_HANDLES', 'out of session handles; a session must be flushed'],
  0x006: ['TPM_RC_OBJECT_HANDLES', 'out of object handles; the handle space for objects is depleted'],
  0x007: ['TPM_RC_LOCALITY', 'bad locality'],
  0x008: ['TPM_RC_YIELDED', 'the TPM has suspended operation on the command; retry it'],
  0x009: ['TPM_RC_CANCELED', 'the command was canceled'],
  0x00a: ['TPM_RC_TESTING', 'the TPM is running self tests; retry later'],
  0x020: ['TPM_RC_NV_RATE', 'the TPM is rate-limiting accesses to prevent wearout of NV'],
  0x021: ['TPM_RC_LOCKOUT', 'authorizations for objects subject to dictionary-attack protection are not allowed (lockout mode)'],
  0x022: ['TPM_RC_RETRY', 'the TPM was not able to start the command; retry it'],
  0x023: ['TPM_RC_NV_UNAVAILABLE', 'the command may require writing of NV and NV is not currently accessible'],
  0x07f: ['TPM_RC_NOT_USED', 'this value is reserved and shall not be returned by the TPM'],
};
for (let i = 0; i < 7; i++) {
  WARN[0x010 + i] = [`TPM_RC_REFERENCE_H${i}`, `the handle in handle area ${i + 1} references a transient object or session that is not loaded`];
  WARN[0x018 + i] = [`TPM_RC_REFERENCE_S${i}`, `the handle in session area ${i + 1} references a session that is not loaded`];
}

export function describeRc(rc: number): RcInfo {
  if (rc === 0) return { base: 0, name: 'TPM_RC_SUCCESS', description: 'success', warning: false };
  // Bits above 11 are a TSS layer number; a TPM never sets them.
  if (rc > 0xfff) {
    return { base: rc, name: `TSS_RC_LAYER_${(rc >>> 16) & 0xff}`, description: `response code 0x${rc.toString(16)} from a software layer, not the TPM`, warning: false };
  }
  if (rc & 0x080) {
    const n = rc & 0x3f;
    const base = 0x080 | n;
    const [name, description] = FMT1[n] ?? [`TPM_RC_FMT1_0x${n.toString(16)}`, 'unknown format-one error'];
    const num = (rc >>> 8) & 0xf;
    let where: string | undefined;
    if (rc & 0x040) where = `parameter ${num}`;
    else if (num & 0x8) where = `session ${num & 0x7}`;
    else if (num !== 0) where = `handle ${num}`;
    return { base, name, description, warning: false, ...(where ? { where } : {}) };
  }
  if (rc & 0x100) {
    const vendor = (rc & 0x400) !== 0;
    const warning = (rc & 0x800) !== 0;
    const n = rc & 0x7f;
    if (vendor) return { base: rc, name: `TPM_RC_VENDOR_0x${rc.toString(16)}`, description: 'vendor-specific response code', warning };
    const table = warning ? WARN : VER1;
    const [name, description] = table[n] ?? [`TPM_RC_${warning ? 'WARN' : 'VER1'}_0x${n.toString(16)}`, `unknown ${warning ? 'warning' : 'error'} code`];
    return { base: rc & 0x97f, name, description, warning };
  }
  return { base: rc, name: `TPM12_RC_0x${rc.toString(16)}`, description: 'a TPM 1.2 response code (is this a TPM 2.0?)', warning: false };
}
