/**
 * TPM 2.0 commands (Part 3), one typed request/response each, in the manner of go-tpm: a command is a
 * `CommandSpec<R>` (its code, its handles with their authorisations, how to marshal its parameters, how to parse
 * its response into R). `encodeCommand` and `decodeResponse` are the only places that know the command/response
 * framing and the session area; sessions are password sessions (TPM_RS_PW), which is all the key store needs.
 */
import { ALG, CAP, CC, RH, SU, ST } from '../../protocol/tpm/constants.ts';
import { TpmError, TpmFormatError } from '../../protocol/tpm/errors.ts';
import { Reader, Writer } from '../../protocol/tpm/marshal.ts';
import {
  readNvPublic,
  readPublic2b,
  readSignature,
  writeNvPublic,
  writePublic,
  type NvPublic,
  type ParsedPublic,
  type Scheme,
  type TpmtPublic,
  type TpmtSignature,
} from '../../protocol/tpm/structures.ts';

/** A handle in the command's handle area; `auth` present means it needs a (password) authorisation. */
export interface HandleArg {
  handle: number;
  auth?: Uint8Array;
}

export interface CommandSpec<R> {
  readonly name: string;
  readonly cc: number;
  readonly handles: readonly HandleArg[];
  /** How many handles the response carries before its parameters (0 or 1). */
  readonly responseHandles: number;
  params(w: Writer): void;
  /** Parses the response parameters; `handles` are the response handles. Must consume exactly its bytes. */
  parse(r: Reader, handles: readonly number[]): R;
}

const EMPTY = new Uint8Array(0);
const pw = (handle: number, auth: Uint8Array = EMPTY): HandleArg => ({ handle, auth });

// ---- framing ----------------------------------------------------------------------------------------------

export function encodeCommand(spec: CommandSpec<unknown>): Uint8Array {
  const authed = spec.handles.filter((h) => h.auth !== undefined);
  const w = new Writer();
  w.u16(authed.length > 0 ? ST.SESSIONS : ST.NO_SESSIONS).u32(0).u32(spec.cc);
  for (const h of spec.handles) w.u32(h.handle);
  if (authed.length > 0) {
    const sessions = new Writer();
    for (const h of authed) {
      // TPMS_AUTH_COMMAND: handle, nonceCaller (empty), attributes (continueSession), hmac = the password.
      sessions.u32(RH.RS_PW).tpm2b(EMPTY).u8(0x01).tpm2b(h.auth!);
    }
    const s = sessions.finish();
    w.u32(s.length).bytes(s);
  }
  spec.params(w);
  return w.patchU32(2, w.length).finish();
}

/**
 * Checks the header, turns a non-zero response code into a TpmError, then reads handles, parameters and the
 * session area; anything inconsistent is a TpmFormatError naming the field.
 */
export function decodeResponse<R>(spec: CommandSpec<R>, bytes: Uint8Array): R {
  const what = `${spec.name} response`;
  const r = new Reader(bytes, what);
  const tag = r.u16('tag');
  const size = r.u32('responseSize');
  const rc = r.u32('responseCode');
  if (size !== bytes.length) throw new TpmFormatError(`${what}: header says ${size} bytes, got ${bytes.length}`);
  if (tag !== ST.NO_SESSIONS && tag !== ST.SESSIONS) throw new TpmFormatError(`${what}: unknown tag 0x${tag.toString(16)}`);
  if (rc !== 0) {
    if (bytes.length !== 10) throw new TpmFormatError(`${what}: error response 0x${rc.toString(16)} carries ${bytes.length - 10} extra bytes`);
    throw new TpmError(rc, spec.name);
  }
  const authed = spec.handles.filter((h) => h.auth !== undefined).length;
  const expectTag = authed > 0 ? ST.SESSIONS : ST.NO_SESSIONS;
  if (tag !== expectTag) throw new TpmFormatError(`${what}: tag 0x${tag.toString(16)}, expected 0x${expectTag.toString(16)}`);
  const handles: number[] = [];
  for (let i = 0; i < spec.responseHandles; i++) handles.push(r.u32(`handle ${i + 1}`));
  let result: R;
  if (tag === ST.SESSIONS) {
    const paramSize = r.u32('parameterSize');
    if (paramSize > r.remaining) throw new TpmFormatError(`${what}: parameterSize ${paramSize} is over the ${r.remaining} bytes left`);
    const params = new Reader(r.bytes(paramSize, 'parameters'), what);
    result = spec.parse(params, handles);
    params.end();
    for (let i = 0; i < authed; i++) {
      r.tpm2b(`session ${i + 1}.nonceTPM`, 64);
      r.u8(`session ${i + 1}.sessionAttributes`);
      r.tpm2b(`session ${i + 1}.hmac`, 64);
    }
    r.end();
  } else {
    result = spec.parse(r, handles);
    r.end();
  }
  return result;
}

// ---- small helpers ----------------------------------------------------------------------------------------

function writeSensitiveCreate(w: Writer, userAuth: Uint8Array): void {
  // TPM2B_SENSITIVE_CREATE { userAuth, data (empty: the TPM generates the key) }
  w.sized((s) => s.tpm2b(userAuth).tpm2b(EMPTY));
}

function writeCreateTail(w: Writer, template: TpmtPublic): void {
  w.sized((p) => writePublic(p, template)); // inPublic
  w.tpm2b(EMPTY); // outsideInfo
  w.u32(0); // creationPCR: TPML_PCR_SELECTION with no banks
}

function writeSigScheme(w: Writer, s: Scheme): void {
  w.u16(s.scheme);
  if (s.scheme !== ALG.NULL) w.u16(s.hashAlg ?? ALG.SHA256);
}

/** TPMT_TK_CREATION: read past it; the driver does not use creation tickets. */
function skipCreationTail(r: Reader): void {
  r.tpm2b('creationData');
  r.tpm2b('creationHash', 64);
  r.u16('creationTicket.tag');
  r.u32('creationTicket.hierarchy');
  r.tpm2b('creationTicket.digest', 64);
}

function need<T>(x: T | undefined, what: string): T {
  if (x === undefined) throw new TpmFormatError(`${what} is missing`);
  return x;
}

function countBound(r: Reader, count: number, itemSize: number, field: string): void {
  if (count * itemSize > r.remaining) throw new TpmFormatError(`${r.what}: ${field} count ${count} does not fit in ${r.remaining} bytes`);
}

// ---- the commands -----------------------------------------------------------------------------------------

export function startup(type: number = SU.CLEAR): CommandSpec<void> {
  return { name: 'TPM2_Startup', cc: CC.Startup, handles: [], responseHandles: 0, params: (w) => void w.u16(type), parse: () => undefined };
}

export function selfTest(fullTest = true): CommandSpec<void> {
  return { name: 'TPM2_SelfTest', cc: CC.SelfTest, handles: [], responseHandles: 0, params: (w) => void w.u8(fullTest ? 1 : 0), parse: () => undefined };
}

export type CapabilityData =
  | { capability: typeof CAP.ALGS; algorithms: { alg: number; attributes: number }[] }
  | { capability: typeof CAP.HANDLES; handles: number[] }
  | { capability: typeof CAP.COMMANDS; commands: number[] }
  | { capability: typeof CAP.TPM_PROPERTIES; properties: { property: number; value: number }[] }
  | { capability: typeof CAP.ECC_CURVES; curves: number[] }
  | { capability: typeof CAP.PCRS; banks: { hash: number; select: Uint8Array }[] };

export interface GetCapabilityResult {
  moreData: boolean;
  data: CapabilityData;
}

export function getCapability(capability: number, property: number, count: number): CommandSpec<GetCapabilityResult> {
  return {
    name: 'TPM2_GetCapability',
    cc: CC.GetCapability,
    handles: [],
    responseHandles: 0,
    params: (w) => void w.u32(capability).u32(property).u32(count),
    parse: (r) => {
      const more = r.u8('moreData');
      if (more > 1) throw new TpmFormatError(`${r.what}: moreData is ${more}, not a TPMI_YES_NO`);
      const cap = r.u32('capabilityData.capability');
      if (cap !== capability) throw new TpmFormatError(`${r.what}: asked for capability ${capability}, got ${cap}`);
      const n = r.u32('count');
      let data: CapabilityData;
      switch (cap) {
        case CAP.ALGS: {
          countBound(r, n, 6, 'algorithm');
          const algorithms = [];
          for (let i = 0; i < n; i++) algorithms.push({ alg: r.u16('alg'), attributes: r.u32('algProperties') });
          data = { capability: cap, algorithms };
          break;
        }
        case CAP.HANDLES:
        case CAP.COMMANDS: {
          countBound(r, n, 4, 'handle');
          const list = [];
          for (let i = 0; i < n; i++) list.push(r.u32('handle'));
          data = cap === CAP.HANDLES ? { capability: cap, handles: list } : { capability: cap, commands: list };
          break;
        }
        case CAP.TPM_PROPERTIES: {
          countBound(r, n, 8, 'property');
          const properties = [];
          for (let i = 0; i < n; i++) properties.push({ property: r.u32('property'), value: r.u32('value') });
          data = { capability: cap, properties };
          break;
        }
        case CAP.ECC_CURVES: {
          countBound(r, n, 2, 'curve');
          const curves = [];
          for (let i = 0; i < n; i++) curves.push(r.u16('curve'));
          data = { capability: cap, curves };
          break;
        }
        case CAP.PCRS: {
          countBound(r, n, 3, 'pcr bank');
          const banks = [];
          for (let i = 0; i < n; i++) {
            const hash = r.u16('pcrSelection.hash');
            banks.push({ hash, select: r.bytes(r.u8('pcrSelection.sizeofSelect'), 'pcrSelection.pcrSelect') });
          }
          data = { capability: cap, banks };
          break;
        }
        default:
          throw new TpmFormatError(`${r.what}: capability ${cap} is not supported by this driver`);
      }
      return { moreData: more === 1, data };
    },
  };
}

export function getRandom(bytes: number): CommandSpec<Uint8Array> {
  return {
    name: 'TPM2_GetRandom',
    cc: CC.GetRandom,
    handles: [],
    responseHandles: 0,
    params: (w) => void w.u16(bytes),
    parse: (r) => {
      const out = r.tpm2b('randomBytes', 64);
      if (out.length > bytes) throw new TpmFormatError(`${r.what}: asked for ${bytes} bytes, got ${out.length}`);
      return out;
    },
  };
}

export interface CreatePrimaryResult {
  handle: number;
  public: ParsedPublic;
  name: Uint8Array;
}

export function createPrimary(hierarchy: number, template: TpmtPublic, opts: { hierarchyAuth?: Uint8Array; userAuth?: Uint8Array } = {}): CommandSpec<CreatePrimaryResult> {
  return {
    name: 'TPM2_CreatePrimary',
    cc: CC.CreatePrimary,
    handles: [pw(hierarchy, opts.hierarchyAuth)],
    responseHandles: 1,
    params: (w) => {
      writeSensitiveCreate(w, opts.userAuth ?? EMPTY);
      writeCreateTail(w, template);
    },
    parse: (r, handles) => {
      const pub = readPublic2b(r, 'outPublic');
      skipCreationTail(r);
      const name = r.tpm2b('name', 68);
      return { handle: need(handles[0], 'objectHandle'), public: pub, name };
    },
  };
}

export interface CreateResult {
  private: Uint8Array;
  public: ParsedPublic;
}

export function create(parent: number, template: TpmtPublic, opts: { parentAuth?: Uint8Array; userAuth?: Uint8Array } = {}): CommandSpec<CreateResult> {
  return {
    name: 'TPM2_Create',
    cc: CC.Create,
    handles: [pw(parent, opts.parentAuth)],
    responseHandles: 0,
    params: (w) => {
      writeSensitiveCreate(w, opts.userAuth ?? EMPTY);
      writeCreateTail(w, template);
    },
    parse: (r) => {
      const priv = r.tpm2b('outPrivate');
      if (priv.length === 0) throw new TpmFormatError(`${r.what}: outPrivate is empty`);
      const pub = readPublic2b(r, 'outPublic');
      skipCreationTail(r);
      return { private: priv, public: pub };
    },
  };
}

export interface LoadResult {
  handle: number;
  name: Uint8Array;
}

/** `pub` is the TPM2B_PUBLIC body exactly as Create returned it (so the name matches). */
export function load(parent: number, priv: Uint8Array, pub: Uint8Array, parentAuth?: Uint8Array): CommandSpec<LoadResult> {
  return {
    name: 'TPM2_Load',
    cc: CC.Load,
    handles: [pw(parent, parentAuth)],
    responseHandles: 1,
    params: (w) => void w.tpm2b(priv).tpm2b(pub),
    parse: (r, handles) => ({ handle: need(handles[0], 'objectHandle'), name: r.tpm2b('name', 68) }),
  };
}

export interface ReadPublicResult {
  public: ParsedPublic;
  name: Uint8Array;
  qualifiedName: Uint8Array;
}

export function readPublic(handle: number): CommandSpec<ReadPublicResult> {
  return {
    name: 'TPM2_ReadPublic',
    cc: CC.ReadPublic,
    handles: [{ handle }],
    responseHandles: 0,
    params: () => undefined,
    parse: (r) => ({ public: readPublic2b(r, 'outPublic'), name: r.tpm2b('name', 68), qualifiedName: r.tpm2b('qualifiedName', 68) }),
  };
}

export function sign(key: number, digest: Uint8Array, scheme: Scheme = { scheme: ALG.ECDSA, hashAlg: ALG.SHA256 }, keyAuth?: Uint8Array): CommandSpec<TpmtSignature> {
  return {
    name: 'TPM2_Sign',
    cc: CC.Sign,
    handles: [pw(key, keyAuth)],
    responseHandles: 0,
    params: (w) => {
      w.tpm2b(digest);
      writeSigScheme(w, scheme);
      // validation: a NULL hashcheck ticket (fine for an unrestricted key)
      w.u16(ST.HASHCHECK).u32(RH.NULL).tpm2b(EMPTY);
    },
    parse: (r) => readSignature(r),
  };
}

export function flushContext(handle: number): CommandSpec<void> {
  // The handle to flush is a parameter, not in the handle area (Part 3, 28.4).
  return { name: 'TPM2_FlushContext', cc: CC.FlushContext, handles: [], responseHandles: 0, params: (w) => void w.u32(handle), parse: () => undefined };
}

/** Persists a loaded object at `persistent` (or, given a persistent handle as `object`, removes it). */
export function evictControl(auth: number, object: number, persistent: number, hierarchyAuth?: Uint8Array): CommandSpec<void> {
  return {
    name: 'TPM2_EvictControl',
    cc: CC.EvictControl,
    handles: [pw(auth, hierarchyAuth), { handle: object }],
    responseHandles: 0,
    params: (w) => void w.u32(persistent),
    parse: () => undefined,
  };
}

export function nvDefineSpace(auth: number, pub: NvPublic, indexAuth: Uint8Array = EMPTY, hierarchyAuth?: Uint8Array): CommandSpec<void> {
  return {
    name: 'TPM2_NV_DefineSpace',
    cc: CC.NV_DefineSpace,
    handles: [pw(auth, hierarchyAuth)],
    responseHandles: 0,
    params: (w) => {
      w.tpm2b(indexAuth);
      w.sized((p) => writeNvPublic(p, pub));
    },
    parse: () => undefined,
  };
}

export function nvUndefineSpace(auth: number, index: number, hierarchyAuth?: Uint8Array): CommandSpec<void> {
  return {
    name: 'TPM2_NV_UndefineSpace',
    cc: CC.NV_UndefineSpace,
    handles: [pw(auth, hierarchyAuth), { handle: index }],
    responseHandles: 0,
    params: () => undefined,
    parse: () => undefined,
  };
}

export function nvIncrement(auth: number, index: number, authValue?: Uint8Array): CommandSpec<void> {
  return {
    name: 'TPM2_NV_Increment',
    cc: CC.NV_Increment,
    handles: [pw(auth, authValue), { handle: index }],
    responseHandles: 0,
    params: () => undefined,
    parse: () => undefined,
  };
}

export function nvRead(auth: number, index: number, size: number, offset: number, authValue?: Uint8Array): CommandSpec<Uint8Array> {
  return {
    name: 'TPM2_NV_Read',
    cc: CC.NV_Read,
    handles: [pw(auth, authValue), { handle: index }],
    responseHandles: 0,
    params: (w) => void w.u16(size).u16(offset),
    parse: (r) => {
      const data = r.tpm2b('data');
      if (data.length !== size) throw new TpmFormatError(`${r.what}: asked for ${size} bytes, got ${data.length}`);
      return data;
    },
  };
}

export interface NvReadPublicResult {
  public: NvPublic;
  name: Uint8Array;
}

export function nvReadPublic(index: number): CommandSpec<NvReadPublicResult> {
  return {
    name: 'TPM2_NV_ReadPublic',
    cc: CC.NV_ReadPublic,
    handles: [{ handle: index }],
    responseHandles: 0,
    params: () => undefined,
    parse: (r) => {
      const pub = need(r.sized('nvPublic', readNvPublic), 'nvPublic');
      return { public: pub, name: r.tpm2b('nvName', 68) };
    },
  };
}

export interface CertifyResult {
  /** The TPMS_ATTEST bytes exactly as signed (parse with parseAttest). */
  attest: Uint8Array;
  signature: TpmtSignature;
}

/** The TPM attests, with `signer`, that `object` is loaded in it. Both need authorisation (object: admin role). */
export function certify(object: number, signer: number, qualifyingData: Uint8Array, opts: { objectAuth?: Uint8Array; signerAuth?: Uint8Array; scheme?: Scheme } = {}): CommandSpec<CertifyResult> {
  return {
    name: 'TPM2_Certify',
    cc: CC.Certify,
    handles: [pw(object, opts.objectAuth), pw(signer, opts.signerAuth)],
    responseHandles: 0,
    params: (w) => {
      w.tpm2b(qualifyingData);
      writeSigScheme(w, opts.scheme ?? { scheme: ALG.NULL });
    },
    parse: (r) => {
      const attest = r.tpm2b('certifyInfo');
      if (attest.length === 0) throw new TpmFormatError(`${r.what}: certifyInfo is empty`);
      return { attest, signature: readSignature(r) };
    },
  };
}
