/**
 * The verifier's template-decryption path, built from node:crypto primitives and fully synchronous: a compact
 * JWE with alg ECDH-ES+A256KW, enc A256GCM, to a P-256 fleet key (RFC 7516, RFC 7518 §4.6, §4.8, §5.3).
 *
 * jose's compactDecrypt does the same through WebCrypto, about eight hops through libuv's thread pool per message,
 * and that was the verifier's bottleneck. Here each step is one native call on the calling thread:
 *
 *   1. split into 5 parts; strict base64url (canonical, no padding) for every part
 *   2. protected header: UTF-8 JSON object; alg and enc pinned; zip and crit refused; kid, apu, apv typed;
 *      epk an EC P-256 public JWK with 32-byte x and y and no private members
 *   3. the fleet key, by kid when the caller holds several (imported once per key object, cached)
 *   4. ECDH: Z = d·epk with OpenSSL, which refuses a point not on P-256 (the invalid-curve attack) and
 *      coordinates not below p; P-256 has cofactor 1, so there is no small-subgroup case to check
 *   5. Concat KDF (RFC 7518 §4.6.2, NIST SP 800-56A): one SHA-256 of
 *      00000001 ‖ Z ‖ len‖"ECDH-ES+A256KW" ‖ len‖apu ‖ len‖apv ‖ 00000100
 *   6. AES Key Unwrap (RFC 3394, default IV A6A6…) of the 40-byte encrypted key to the 32-byte CEK
 *   7. AES-256-GCM with a 96-bit IV, 128-bit tag, AAD = the ASCII of the protected header part as received
 *
 * Any failure is a `template_undecryptable` Rejection naming the step. Naming it leaks nothing an attacker lacks:
 * the sender chooses the ephemeral key, so it can compute the KEK and every step before the content itself.
 * Size bounds (the JWE's length, the plaintext's) are the caller's (jwe.ts), the same for both decrypt paths.
 */
import { createCipheriv, createDecipheriv, createECDH, hash, KeyObject, randomBytes, type ECDH, type JsonWebKey } from 'node:crypto';
import { decodeBase64url } from './base64url.ts';
import { Rejection } from './rejections.ts';
import type { DecryptionKey } from './jwe.ts';

const ALG = 'ECDH-ES+A256KW';
const ENC = 'A256GCM';
/** keydatalen for the KDF: A256KW takes a 256-bit key-encryption key. */
const KEK_BITS = 256;
const COORD_BYTES = 32;
const WRAPPED_CEK_BYTES = 40; // RFC 3394: a 256-bit key plus the 64-bit integrity block
const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
/** JWK members that make a key private (the same list jose refuses in an epk). */
const PRIVATE_JWK_MEMBERS = ['d', 'k', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'priv'] as const;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The parts of a compact JWE after parsing and header validation; nothing secret has been touched yet. */
export interface ParsedTemplateJwe {
  /** The protected header part exactly as received (the GCM AAD). */
  protectedPart: string;
  kid: string | undefined;
  /** 0x04 ‖ x ‖ y, the ephemeral public key as OpenSSL takes it. */
  epk: Buffer;
  apu: Buffer | undefined;
  apv: Buffer | undefined;
  encryptedKey: Buffer;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

function fail(step: string, detail: string, cause?: unknown): never {
  throw new Rejection('template_undecryptable', `${step}: ${detail}`, cause === undefined ? {} : { cause });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function part(s: string, name: string): Buffer {
  const b = decodeBase64url(s);
  if (b === undefined) fail('JWE', `the ${name} is not strict base64url`);
  return b;
}

function exactPart(s: string, name: string, bytes: number): Buffer {
  const b = part(s, name);
  if (b.byteLength !== bytes) fail('JWE', `the ${name} is ${b.byteLength} bytes, not ${bytes}`);
  return b;
}

/** Steps 1 and 2: structure, strict base64url, and the protected header. Throws `template_undecryptable`. */
export function parseTemplateJwe(jwe: string): ParsedTemplateJwe {
  if (typeof jwe !== 'string') fail('JWE', 'not a string');
  const parts = jwe.split('.');
  if (parts.length !== 5) fail('JWE', `a compact JWE has 5 parts, this has ${parts.length}`);
  const [protectedPart, ekPart, ivPart, ctPart, tagPart] = parts as [string, string, string, string, string];

  let header: unknown;
  try {
    header = JSON.parse(utf8.decode(part(protectedPart, 'protected header')));
  } catch (e) {
    if (e instanceof Rejection) throw e;
    fail('header', 'the protected header is not UTF-8 JSON', e);
  }
  if (!isPlainObject(header)) fail('header', 'the protected header is not a JSON object');
  // Pinned: the header is the sender's choice and must not pick another algorithm.
  if (header.alg !== ALG) fail('header', `alg must be ${ALG}`);
  if (header.enc !== ENC) fail('header', `enc must be ${ENC}`);
  if (header.zip !== undefined) fail('header', 'compression (zip) is not accepted');
  if (header.crit !== undefined) fail('header', 'no extension (crit) is understood');
  const { kid, apu: apuField, apv: apvField, epk: epkField } = header;
  if (kid !== undefined && typeof kid !== 'string') fail('header', 'kid must be a string');
  const apu = partyInfo(apuField, 'apu');
  const apv = partyInfo(apvField, 'apv');
  // jose refuses identical apu and apv (both present, same bytes); so does this path, to stay interchangeable.
  if (apu !== undefined && apv !== undefined && apu.equals(apv)) fail('header', 'apu and apv must differ');
  const epk = ephemeralKey(epkField);

  return {
    protectedPart,
    kid,
    epk,
    apu,
    apv,
    encryptedKey: exactPart(ekPart, 'encrypted key', WRAPPED_CEK_BYTES),
    iv: exactPart(ivPart, 'IV', GCM_IV_BYTES),
    ciphertext: part(ctPart, 'ciphertext'),
    tag: exactPart(tagPart, 'authentication tag', GCM_TAG_BYTES),
  };
}

function partyInfo(v: unknown, name: string): Buffer | undefined {
  if (v === undefined) return undefined;
  const b = typeof v === 'string' ? decodeBase64url(v) : undefined;
  if (b === undefined) fail('header', `${name} must be a base64url string`);
  return b;
}

/** The epk as an uncompressed SEC1 point; whether it is on the curve is OpenSSL's check, in the ECDH step. */
function ephemeralKey(epk: unknown): Buffer {
  if (!isPlainObject(epk)) fail('header', 'epk missing or not an object');
  if (epk.kty !== 'EC' || epk.crv !== 'P-256') fail('header', 'epk must be an EC P-256 key');
  if (PRIVATE_JWK_MEMBERS.some((m) => Object.hasOwn(epk, m))) fail('header', 'epk must be a public key');
  const x = typeof epk.x === 'string' ? decodeBase64url(epk.x) : undefined;
  const y = typeof epk.y === 'string' ? decodeBase64url(epk.y) : undefined;
  if (x?.byteLength !== COORD_BYTES || y?.byteLength !== COORD_BYTES) fail('header', 'epk x and y must be 32-byte base64url');
  const point = Buffer.allocUnsafe(1 + 2 * COORD_BYTES);
  point[0] = 0x04;
  x.copy(point, 1);
  y.copy(point, 1 + COORD_BYTES);
  return point;
}

/** A fleet private key ready for ECDH; one per key object, kept for the object's lifetime. */
const ecdhByKey = new WeakMap<object, ECDH>();

/** Imports (once) a fleet private key: a P-256 private KeyObject, or an EC P-256 JWK with `d`. */
export function fleetEcdh(key: KeyObject | JsonWebKey): ECDH {
  let ecdh = ecdhByKey.get(key);
  if (ecdh) return ecdh;
  let jwk: JsonWebKey;
  if (key instanceof KeyObject) {
    if (key.type !== 'private' || key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new TypeError('the fleet key must be a P-256 private key');
    }
    jwk = key.export({ format: 'jwk' });
  } else {
    jwk = key;
  }
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.d !== 'string') throw new TypeError('the fleet key must be an EC P-256 private JWK');
  const d = decodeBase64url(jwk.d);
  if (d?.byteLength !== COORD_BYTES) throw new TypeError('the fleet key has no 32-byte d');
  ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(d); // throws unless 0 < d < n
  // A JWK's x and y must be d's public point: a key file with mismatched halves is caught here, not per message.
  if (typeof jwk.x === 'string' || typeof jwk.y === 'string') {
    const pub = ecdh.getPublicKey();
    if (jwk.x !== pub.subarray(1, 33).toString('base64url') || jwk.y !== pub.subarray(33).toString('base64url')) {
      throw new TypeError("the fleet key's x and y are not the public half of its d");
    }
  }
  ecdhByKey.set(key, ecdh);
  return ecdh;
}

function lengthPrefixed(b: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + b.byteLength);
  out.writeUInt32BE(b.byteLength, 0);
  out.set(b, 4);
  return out;
}

/** Concat KDF OtherInfo: AlgorithmID ‖ PartyUInfo ‖ PartyVInfo ‖ SuppPubInfo (keydatalen, 32-bit big-endian). */
function otherInfo(algorithmId: string, keyDataBits: number, apu: Uint8Array | undefined, apv: Uint8Array | undefined): Buffer {
  const supp = Buffer.alloc(4);
  supp.writeUInt32BE(keyDataBits, 0);
  const empty = new Uint8Array(0);
  return Buffer.concat([lengthPrefixed(Buffer.from(algorithmId, 'ascii')), lengthPrefixed(apu ?? empty), lengthPrefixed(apv ?? empty), supp]);
}

/** The usual case's OtherInfo (ECDH-ES+A256KW, 256 bits, no apu, no apv), built once. */
const DEFAULT_OTHER_INFO = otherInfo(ALG, KEK_BITS, undefined, undefined);

/**
 * Concat KDF of RFC 7518 §4.6.2 (NIST SP 800-56A §5.8.1, SHA-256): the first keydatalen bits of
 * H(00000001 ‖ Z ‖ OtherInfo) ‖ H(00000002 ‖ Z ‖ OtherInfo) ‖ …  For this protocol, AlgorithmID is the `alg`
 * (key agreement with key wrapping) and keydatalen 256: a single round.
 */
export function concatKdf(z: Uint8Array, apu?: Uint8Array, apv?: Uint8Array, algorithmId: string = ALG, keyDataBits: number = KEK_BITS): Buffer {
  const info = apu === undefined && apv === undefined && algorithmId === ALG && keyDataBits === KEK_BITS ? DEFAULT_OTHER_INFO : otherInfo(algorithmId, keyDataBits, apu, apv);
  const rounds = Math.ceil(keyDataBits / 256);
  const out = Buffer.allocUnsafe(rounds * 32);
  const input = Buffer.concat([Buffer.alloc(4), z, info]);
  for (let i = 1; i <= rounds; i++) {
    input.writeUInt32BE(i, 0);
    hash('sha256', input, 'buffer').copy(out, (i - 1) * 32);
  }
  return out.subarray(0, keyDataBits >>> 3);
}

/**
 * Steps 3 to 7 on a parsed JWE. `key` is the fleet key or a lookup by kid. Returns the plaintext in a Uint8Array
 * of its own (offset 0, not a pooled Buffer slice). Throws `template_undecryptable`.
 */
export function decryptParsedTemplateJwe(p: ParsedTemplateJwe, key: DecryptionKey): Uint8Array {
  let ecdh: ECDH;
  try {
    const k = typeof key === 'function' ? key(p.kid) : key;
    if (k === undefined) fail('fleet key', `no fleet key with kid ${String(p.kid)}`);
    ecdh = fleetEcdh(k);
  } catch (e) {
    if (e instanceof Rejection) throw e;
    fail('fleet key', e instanceof Error ? e.message : String(e), e);
  }

  let z: Buffer;
  try {
    z = ecdh.computeSecret(p.epk);
  } catch (e) {
    // ERR_CRYPTO_ECDH_INVALID_PUBLIC_KEY: not a point of P-256 (or coordinates not reduced mod p).
    fail('ECDH', 'epk is not a valid P-256 point', e);
  }
  const kek = concatKdf(z, p.apu, p.apv);

  let cek: Buffer;
  try {
    const unwrap = createDecipheriv('id-aes256-wrap', kek, KW_IV);
    cek = Buffer.concat([unwrap.update(p.encryptedKey), unwrap.final()]);
  } catch (e) {
    fail('A256KW unwrap', 'the encrypted key fails its integrity check', e);
  }
  if (cek.byteLength !== 32) fail('A256KW unwrap', `the content key is ${cek.byteLength} bytes, not 32`);

  try {
    const gcm = createDecipheriv('aes-256-gcm', cek, p.iv, { authTagLength: GCM_TAG_BYTES });
    gcm.setAAD(Buffer.from(p.protectedPart, 'latin1'));
    gcm.setAuthTag(p.tag);
    const head = gcm.update(p.ciphertext);
    const tail = gcm.final(); // throws when the tag does not verify
    const out = new Uint8Array(head.byteLength + tail.byteLength);
    out.set(head, 0);
    out.set(tail, head.byteLength);
    return out;
  } catch (e) {
    fail('A256GCM decrypt', 'the authentication tag does not verify', e);
  } finally {
    cek.fill(0);
    kek.fill(0);
    z.fill(0);
  }
}

/** Parse, validate and decrypt a template JWE synchronously. Throws `template_undecryptable` on any failure. */
export function decryptTemplateJweSync(jwe: string, key: DecryptionKey): Uint8Array {
  return decryptParsedTemplateJwe(parseTemplateJwe(jwe), key);
}

/**
 * The kiosk's side, the same steps the other way, synchronously: a fresh ephemeral P-256 key per message, ECDH
 * with the fleet's public key, Concat KDF, a random CEK wrapped with A256KW, A256GCM over the plaintext. What jose's
 * CompactEncrypt makes for these algorithms (jose decrypts it: a test checks), without its thread-pool hops.
 * `recipient` is the fleet public key (JWK with x and y); `kid` goes into the header.
 */
export function encryptTemplateJweSync(plaintext: Uint8Array, recipient: { x: string; y: string }, kid: string): string {
  const x = decodeBase64url(recipient.x);
  const y = decodeBase64url(recipient.y);
  if (x?.byteLength !== COORD_BYTES || y?.byteLength !== COORD_BYTES) throw new TypeError('the fleet key has no 32-byte x and y');
  const eph = createECDH('prime256v1');
  const epk = eph.generateKeys();
  const z = eph.computeSecret(Buffer.concat([Buffer.from([4]), x, y])); // throws for a point not on P-256
  const kek = concatKdf(z);
  const cek = randomBytes(32);
  try {
    const wrap = createCipheriv('id-aes256-wrap', kek, KW_IV);
    const encryptedKey = Buffer.concat([wrap.update(cek), wrap.final()]);
    const header = { alg: ALG, enc: ENC, kid, epk: { kty: 'EC', crv: 'P-256', x: epk.subarray(1, 33).toString('base64url'), y: epk.subarray(33).toString('base64url') } };
    const protectedPart = Buffer.from(JSON.stringify(header), 'utf8').toString('base64url');
    const iv = randomBytes(GCM_IV_BYTES);
    const gcm = createCipheriv('aes-256-gcm', cek, iv, { authTagLength: GCM_TAG_BYTES });
    gcm.setAAD(Buffer.from(protectedPart, 'latin1'));
    const ciphertext = Buffer.concat([gcm.update(plaintext), gcm.final()]);
    return `${protectedPart}.${encryptedKey.toString('base64url')}.${iv.toString('base64url')}.${ciphertext.toString('base64url')}.${gcm.getAuthTag().toString('base64url')}`;
  } finally {
    cek.fill(0);
    kek.fill(0);
    z.fill(0);
  }
}
