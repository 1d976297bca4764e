/**
 * The TPM client: runs typed commands (commands.ts) over a transport, one at a time, and adds what every caller
 * would otherwise repeat:
 * - recovery: a TPM that was reset answers TPM_RC_INITIALIZE; the client sends Startup(CLEAR) and retries once.
 *   A connection lost mid-command is reopened and the command retried once. (A retried NV_Increment may have
 *   counted already: a monotonic counter then skips a value, which is harmless.) TPM_RC_RETRY / YIELDED /
 *   TESTING are retried a few times after a short pause.
 * - transient handles: `withTransient` flushes whatever it was given, also when the callback throws.
 * - the capability queries (manufacturer, firmware, algorithms, handles), NV reads in TPM-sized chunks, and the
 *   EK certificate.
 */
import { ALG, ALG_NAMES, CAP, EK_CERT_INDEX, HT, PT, RC, RH, SU, TPMA_NV } from '../../protocol/tpm/constants.ts';
import * as cmd from './commands.ts';
import { TpmError, TpmFailure, TpmFormatError, TpmTransportError } from '../../protocol/tpm/errors.ts';
import { ecdsaP1363, type NvPublic, type ParsedPublic, type Scheme, type TpmtPublic, type TpmtSignature } from '../../protocol/tpm/structures.ts';
import { openTransport, parseTpmUrl, type TpmTarget, type Transport } from './transport.ts';

export interface TpmClientOptions {
  /** Deadline per command (default 30 s: RSA key generation on a slow TPM takes seconds). */
  timeoutMs?: number;
  /** Called with every command spec and the raw response bytes (tracing; the tests' fuzzer records with it). */
  onExchange?: (spec: cmd.CommandSpec<unknown>, response: Uint8Array) => void;
}

export interface TpmInfo {
  manufacturer: string;
  vendor: string;
  firmwareVersion: string;
  family: string;
  level: number;
  revision: number;
  year: number;
}

export interface FreeHandles {
  /** Transient objects still loadable (TPM_PT_HR_TRANSIENT_AVAIL). */
  transientAvail: number;
  loaded: number;
  loadedAvail: number;
  persistent: number;
  persistentAvail: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const EMPTY = new Uint8Array(0);

export class TpmClient {
  private queue: Promise<unknown> = Promise.resolve();
  private nvChunk: number | undefined;
  /** Counts for tests and diagnostics. */
  readonly stats = { commands: 0, startupsSent: 0, reconnects: 0 };

  constructor(
    readonly transport: Transport,
    readonly target: TpmTarget | undefined = undefined,
    private readonly opts: TpmClientOptions = {},
  ) {}

  /** Opens a client for a setting such as `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`. */
  static open(setting: string | TpmTarget, opts: TpmClientOptions = {}): TpmClient {
    const target = typeof setting === 'string' ? parseTpmUrl(setting) : setting;
    return new TpmClient(openTransport(target), target, opts);
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    await this.transport.close();
  }

  /** Runs one command (serialised with every other command of this client), with the recoveries above. */
  run<R>(spec: cmd.CommandSpec<R>): Promise<R> {
    const p = this.queue.then(() => this.runUnlocked(spec));
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async runUnlocked<R>(spec: cmd.CommandSpec<R>): Promise<R> {
    const encoded = cmd.encodeCommand(spec);
    const timeout = this.opts.timeoutMs ?? 30_000;
    let reconnected = false;
    let restarted = false;
    let warnings = 0;
    for (;;) {
      let bytes: Uint8Array;
      try {
        this.stats.commands++;
        bytes = await this.transport.send(encoded, timeout);
        this.opts.onExchange?.(spec as cmd.CommandSpec<unknown>, bytes);
      } catch (e) {
        if (e instanceof TpmTransportError && e.connectionLost && !reconnected) {
          reconnected = true;
          this.stats.reconnects++;
          await this.transport.reconnect();
          continue;
        }
        throw e;
      }
      try {
        return cmd.decodeResponse(spec, bytes);
      } catch (e) {
        if (!(e instanceof TpmError)) throw e;
        if (e.code === RC.INITIALIZE && !restarted && spec.cc !== cmd.startup().cc) {
          restarted = true;
          await this.startupAfterReset();
          continue;
        }
        if ((e.code === RC.RETRY || e.code === RC.YIELDED || e.code === RC.TESTING) && warnings < 5) {
          warnings++;
          await sleep(20 * warnings);
          continue;
        }
        throw e;
      }
    }
  }

  private async startupAfterReset(): Promise<void> {
    this.stats.startupsSent++;
    const spec = cmd.startup(SU.CLEAR);
    const bytes = await this.transport.send(cmd.encodeCommand(spec), this.opts.timeoutMs ?? 30_000);
    try {
      cmd.decodeResponse(spec, bytes);
    } catch (e) {
      // TPM_RC_INITIALIZE from Startup means someone else started it already: fine.
      if (!(e instanceof TpmError && e.code === RC.INITIALIZE)) throw e;
    }
  }

  // ---- plain commands -------------------------------------------------------------------------------------

  startup(type: number = SU.CLEAR): Promise<void> {
    return this.run(cmd.startup(type));
  }

  selfTest(full = true): Promise<void> {
    return this.run(cmd.selfTest(full));
  }

  getRandom(n: number): Promise<Uint8Array> {
    return this.run(cmd.getRandom(n));
  }

  createPrimary(hierarchy: number, template: TpmtPublic, hierarchyAuth?: Uint8Array): Promise<cmd.CreatePrimaryResult> {
    return this.run(cmd.createPrimary(hierarchy, template, hierarchyAuth ? { hierarchyAuth } : {}));
  }

  create(parent: number, template: TpmtPublic): Promise<cmd.CreateResult> {
    return this.run(cmd.create(parent, template));
  }

  load(parent: number, priv: Uint8Array, pub: ParsedPublic | Uint8Array): Promise<cmd.LoadResult> {
    return this.run(cmd.load(parent, priv, pub instanceof Uint8Array ? pub : pub.raw));
  }

  readPublic(handle: number): Promise<cmd.ReadPublicResult> {
    return this.run(cmd.readPublic(handle));
  }

  sign(key: number, digest: Uint8Array, scheme?: Scheme): Promise<TpmtSignature> {
    return this.run(cmd.sign(key, digest, scheme));
  }

  /** ECDSA P-256 / SHA-256 over a 32-byte digest; returns r||s (64 bytes, each half left-padded). */
  async signP256(key: number, digest: Uint8Array): Promise<Uint8Array> {
    if (digest.length !== 32) throw new TypeError(`expected a 32-byte SHA-256 digest, got ${digest.length} bytes`);
    return ecdsaP1363(await this.sign(key, digest, { scheme: ALG.ECDSA, hashAlg: ALG.SHA256 }));
  }

  flushContext(handle: number): Promise<void> {
    return this.run(cmd.flushContext(handle));
  }

  evictControl(object: number, persistent: number, auth: number = RH.OWNER): Promise<void> {
    return this.run(cmd.evictControl(auth, object, persistent));
  }

  certify(object: number, signer: number, qualifyingData: Uint8Array = EMPTY, scheme?: Scheme): Promise<cmd.CertifyResult> {
    return this.run(cmd.certify(object, signer, qualifyingData, scheme ? { scheme } : {}));
  }

  nvDefineSpace(pub: NvPublic, indexAuth: Uint8Array = EMPTY, auth: number = RH.OWNER): Promise<void> {
    return this.run(cmd.nvDefineSpace(auth, pub, indexAuth));
  }

  nvUndefineSpace(index: number, auth: number = RH.OWNER): Promise<void> {
    return this.run(cmd.nvUndefineSpace(auth, index));
  }

  /** Increments a counter index, authorising with the index's own (empty) authValue. */
  nvIncrement(index: number, auth: number = index): Promise<void> {
    return this.run(cmd.nvIncrement(auth, index));
  }

  nvRead(index: number, size: number, offset = 0, auth: number = index): Promise<Uint8Array> {
    return this.run(cmd.nvRead(auth, index, size, offset));
  }

  nvReadPublic(index: number): Promise<cmd.NvReadPublicResult> {
    return this.run(cmd.nvReadPublic(index));
  }

  // ---- transient handle hygiene ---------------------------------------------------------------------------

  /** Runs `fn` with a transient handle and flushes it afterwards, whether `fn` succeeded or threw. */
  async withTransient<T>(handle: number | Promise<number>, fn: (handle: number) => Promise<T>): Promise<T> {
    const h = await handle;
    try {
      return await fn(h);
    } finally {
      await this.flushQuietly(h);
    }
  }

  /** Flushes, ignoring a handle that is already gone (e.g. after a TPM reset). */
  async flushQuietly(handle: number): Promise<void> {
    try {
      await this.flushContext(handle);
    } catch (e) {
      if (!(e instanceof TpmError)) throw e;
    }
  }

  /** Flushes every transient object the TPM holds (useful on a TPM without resource manager, e.g. swtpm). */
  async flushAllTransients(): Promise<number> {
    const hs = await this.handles(HT.TRANSIENT);
    for (const h of hs) await this.flushQuietly(h);
    return hs.length;
  }

  // ---- capabilities ---------------------------------------------------------------------------------------

  /** TPM properties from `first`, following moreData. */
  async properties(first: number, count: number): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    let next = first;
    const end = first + count;
    while (next < end) {
      const res = await this.run(cmd.getCapability(CAP.TPM_PROPERTIES, next, end - next));
      if (res.data.capability !== CAP.TPM_PROPERTIES) throw new TpmFormatError('GetCapability returned another capability');
      const props = res.data.properties.filter((p) => p.property >= next && p.property < end);
      for (const p of props) out.set(p.property, p.value);
      const last = props.at(-1);
      if (!res.moreData || !last) break;
      next = last.property + 1;
    }
    return out;
  }

  async property(pt: number): Promise<number> {
    const v = (await this.properties(pt, 1)).get(pt);
    if (v === undefined) throw new TpmFormatError(`the TPM did not report property 0x${pt.toString(16)}`);
    return v;
  }

  async info(): Promise<TpmInfo> {
    const p = await this.properties(PT.FAMILY_INDICATOR, PT.FIRMWARE_VERSION_2 - PT.FAMILY_INDICATOR + 1);
    const str = (...pts: number[]): string =>
      Buffer.concat(
        pts.map((pt) => {
          const b = Buffer.alloc(4);
          b.writeUInt32BE(p.get(pt) ?? 0, 0);
          return b;
        }),
      )
        .toString('latin1')
        .replace(/\0/g, '')
        .trim();
    const fw1 = p.get(PT.FIRMWARE_VERSION_1) ?? 0;
    const fw2 = p.get(PT.FIRMWARE_VERSION_2) ?? 0;
    return {
      manufacturer: str(PT.MANUFACTURER),
      vendor: str(PT.VENDOR_STRING_1, PT.VENDOR_STRING_2, PT.VENDOR_STRING_3, PT.VENDOR_STRING_4),
      firmwareVersion: `${fw1 >>> 16}.${fw1 & 0xffff}.${fw2 >>> 16}.${fw2 & 0xffff}`,
      family: str(PT.FAMILY_INDICATOR),
      level: p.get(PT.LEVEL) ?? 0,
      revision: (p.get(PT.REVISION) ?? 0) / 100,
      year: p.get(PT.YEAR) ?? 0,
    };
  }

  async algorithms(): Promise<{ alg: number; name: string; attributes: number }[]> {
    const out: { alg: number; name: string; attributes: number }[] = [];
    let next = 0;
    for (;;) {
      const res = await this.run(cmd.getCapability(CAP.ALGS, next, 128));
      if (res.data.capability !== CAP.ALGS) throw new TpmFormatError('GetCapability returned another capability');
      for (const a of res.data.algorithms) out.push({ ...a, name: ALG_NAMES.get(a.alg) ?? `0x${a.alg.toString(16)}` });
      const last = res.data.algorithms.at(-1);
      if (!res.moreData || !last) return out;
      next = last.alg + 1;
    }
  }

  /** Every handle of one type (HT.TRANSIENT, HT.PERSISTENT, HT.NV_INDEX, ...). */
  async handles(type: number): Promise<number[]> {
    const first = (type << 24) >>> 0;
    const end = first + 0x1000000;
    const out: number[] = [];
    let next = first;
    for (;;) {
      const res = await this.run(cmd.getCapability(CAP.HANDLES, next, 64));
      if (res.data.capability !== CAP.HANDLES) throw new TpmFormatError('GetCapability returned another capability');
      const hs = res.data.handles.filter((h) => h >= next && h < end);
      out.push(...hs);
      const last = hs.at(-1);
      if (!res.moreData || !last || hs.length < res.data.handles.length) return out;
      next = last + 1;
    }
  }

  async freeHandles(): Promise<FreeHandles> {
    const p = await this.properties(PT.HR_LOADED, PT.HR_PERSISTENT_AVAIL - PT.HR_LOADED + 1);
    return {
      transientAvail: p.get(PT.HR_TRANSIENT_AVAIL) ?? 0,
      loaded: p.get(PT.HR_LOADED) ?? 0,
      loadedAvail: p.get(PT.HR_LOADED_AVAIL) ?? 0,
      persistent: p.get(PT.HR_PERSISTENT) ?? 0,
      persistentAvail: p.get(PT.HR_PERSISTENT_AVAIL) ?? 0,
    };
  }

  // ---- NV ---------------------------------------------------------------------------------------------------

  /** Reads a whole NV index in chunks of TPM_PT_NV_BUFFER_MAX, authorising as its attributes allow. */
  async nvReadAll(index: number): Promise<Uint8Array> {
    const { public: pub } = await this.nvReadPublic(index);
    const auth = pub.attributes & TPMA_NV.AUTHREAD ? index : pub.attributes & TPMA_NV.OWNERREAD ? RH.OWNER : pub.attributes & TPMA_NV.PPREAD ? RH.PLATFORM : index;
    if (this.nvChunk === undefined) {
      this.nvChunk = await this.property(PT.NV_BUFFER_MAX).catch((e) => {
        if (e instanceof TpmFailure) return 512;
        throw e;
      });
    }
    const chunk = Math.max(1, Math.min(this.nvChunk, 1024));
    const out = new Uint8Array(pub.dataSize);
    for (let off = 0; off < pub.dataSize; off += chunk) {
      const n = Math.min(chunk, pub.dataSize - off);
      out.set(await this.nvRead(index, n, off, auth), off);
    }
    return out;
  }

  /**
   * The EK certificate (DER) from its TCG NV index, or null when the TPM has none. `kind` picks the key type;
   * both the low-range indices (0x01c00002 RSA, 0x01c0000a ECC P-256) and the high range are tried.
   */
  async readEkCertificate(kind: 'ecc' | 'rsa' | 'any' = 'any'): Promise<{ index: number; der: Uint8Array } | null> {
    const ecc = [EK_CERT_INDEX.ECC_P256, EK_CERT_INDEX.ECC_P256_H, EK_CERT_INDEX.ECC_P384_H];
    const rsa = [EK_CERT_INDEX.RSA_2048, EK_CERT_INDEX.RSA_2048_H];
    const order = kind === 'ecc' ? ecc : kind === 'rsa' ? rsa : [...ecc, ...rsa];
    for (const index of order) {
      try {
        const der = await this.nvReadAll(index);
        // Some provisioners pad the index; a DER SEQUENCE tells its own length.
        return { index, der: trimDer(der) };
      } catch (e) {
        if (e instanceof TpmError && e.baseCode === RC.HANDLE) continue;
        throw e;
      }
    }
    return null;
  }
}

/** Cuts trailing padding after a DER SEQUENCE (long or short form length). */
function trimDer(b: Uint8Array): Uint8Array {
  if (b.length < 2 || b[0] !== 0x30) return b;
  const l = b[1]!;
  if (l < 0x80) return b.subarray(0, Math.min(b.length, 2 + l));
  const n = l & 0x7f;
  if (n === 0 || n > 4 || b.length < 2 + n) return b;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!;
  return b.subarray(0, Math.min(b.length, 2 + n + len));
}
