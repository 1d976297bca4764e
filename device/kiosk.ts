/**
 * The one factory of a kiosk: from a config object, its state folder (key store, seq, outbox, tree heads), the
 * relay to the broker with the verdict and receipt checks, the attester, the capture devices and (lazily) the
 * engines, and verification sessions that use them all. `biokiosk run`, `biokiosk demo`, the test helpers and the
 * benchmarks all build kiosks here, so the wiring exists once.
 *
 * Alarms reach whoever runs the kiosk (`alarm` events): the outbox filling up or full, a verdict or receipt
 * refused, the broker unreachable for longer than `offlineAlarmMs`, a capture device gone.
 */
import { EventEmitter } from 'node:events';
import type { JsonWebKey } from 'node:crypto';
import type { IClientOptions } from 'mqtt';
import { OVERRIDE_FORMAT, OVERRIDE_MODEL, type Modality, type Override } from '../protocol/claims.ts';
import { BiokioskError } from '../protocol/errors.ts';
import { NotARegularFileError, readRegularFile } from '../protocol/input-files.ts';
import { packageVersion } from '../protocol/runtime.ts';
import type { NoticeSink } from '../protocol/private-files.ts';
import { deviceTopics } from '../protocol/topics.ts';
import { createEngine, TEMPLATE_FORMATS } from '../models/engines.ts';
import type { ModalityEngine } from '../models/modality.ts';
import { Attester, type Attested, type DeviceIdentity, type TemplateToAttest } from './attester.ts';
import { CameraCaptureDevice } from './capture/camera.ts';
import { FingerprintCaptureDevice } from './capture/fingerprint.ts';
import { abortable, type CaptureDevice, type SensorInfo } from './capture/types.ts';
import type { OutboxOptions } from './outbox.ts';
import { Relay } from './relay.ts';
import { KioskSession, type Clock, type SessionOptions } from './session/session.ts';
import { sitePolicy, type SitePolicy, type SitePolicyInput } from './session/policy.ts';
import { openKioskState, type KeyStoreChoice, type KioskState } from './setup.ts';
import { TreeHeadStore } from './tree-heads.ts';
import { parseVkey } from '../protocol/note.ts';
import type { LogTrust } from '../protocol/receipt.ts';
import { verdictChecker, VerdictRefusedError, type TrustedVerifier, type VerdictInfo } from './verdicts.ts';

/** What `biokiosk verifier keys` prints: the verifier's verdict key, the fleet's template key, the log's keys. */
export interface VerifierKeys {
  verifierId: string;
  verdictKey: JsonWebKey;
  fleetKey: JsonWebKey;
  /** The audit log's origin and checkpoint keys (C2SP vkeys). */
  log: { origin: string; keys: string[] };
}

export type CaptureConfig =
  | { modality: 'face'; camera: string; sensor?: Partial<SensorInfo> }
  | { modality: 'fingerprint'; port: string; baudRate?: number; password?: number; address?: number; sensor?: Partial<SensorInfo> }
  | { modality: Modality; device: CaptureDevice };
// The iris camera is opened by the caller (it needs a HID binding: node-hid's, or a virtual one) and given as a device.

export interface KioskConfig {
  dir: string;
  ueid: string;
  site: string;
  version?: string;
  keyStore?: KeyStoreChoice;
  /**
   * The verifiers this kiosk trusts (their verdict keys), the fleet key templates are sealed to, and the audit
   * log's checkpoint keys with the witnesses whose cosignatures count (C2SP vkeys).
   */
  verifiers: { trusted: TrustedVerifier[]; fleetKey: JsonWebKey; log: { keys: string[]; witnesses?: string[] } };
  broker: { url: string; protocolVersion?: 4 | 5; mqtt?: Partial<IClientOptions>; pumpIntervalMs?: number; maxInFlight?: number; publishRate?: { perSecond: number; burst: number } };
  capture?: CaptureConfig[];
  /** Engines to use instead of creating them (tests, benchmarks). */
  engines?: Partial<Record<Modality, ModalityEngine>>;
  policy?: SitePolicyInput;
  outbox?: OutboxOptions;
  offlineAlarmMs?: number;
  clock?: Clock;
  onNotice?: NoticeSink;
}

export type KioskAlarm =
  | { kind: 'outbox'; level: 'warning' | 'full'; entries: number; bytes: number }
  | { kind: 'verdict_refused'; receipt: 'mismatch' | 'forged' | 'inconsistent' | null; reason: string }
  | { kind: 'offline'; sinceMs: number }
  | { kind: 'device'; modality: Modality; reason: string };

export interface KioskHealth {
  sensors: Array<{ modality: Modality; available: boolean }>;
  keyStore: 'tpm' | 'software';
  broker: 'connected' | 'offline';
  verifier: 'ok' | 'unreachable' | 'unknown';
  outbox: number;
}

export interface KioskEvents {
  alarm: [KioskAlarm];
  /** Every verdict the kiosk accepted, including those that settle an attempt reported "queued" earlier. */
  verdict: [VerdictInfo];
  connected: [];
}

/** Reads the file `biokiosk verifier keys` wrote. */
export async function loadVerifierKeys(path: string): Promise<VerifierKeys> {
  let doc: VerifierKeys;
  try {
    doc = JSON.parse((await readRegularFile(path)).toString('utf8')) as VerifierKeys;
  } catch (e) {
    if (e instanceof NotARegularFileError) throw e;
    throw new BiokioskError('BadVerifierKeys', `cannot read the verifier keys ${path} (write it with \`biokiosk verifier keys > ${path}\`)`, { kind: 'input' });
  }
  if (typeof doc?.verifierId !== 'string' || !doc.verdictKey || !doc.fleetKey) throw new BiokioskError('BadVerifierKeys', `${path} is not the output of \`biokiosk verifier keys\``, { kind: 'input' });
  if (!doc.log || !Array.isArray(doc.log.keys) || doc.log.keys.length === 0) {
    throw new BiokioskError('BadVerifierKeys', `${path} has no audit-log keys (it was written by an older \`biokiosk verifier keys\`): write it again`, { kind: 'input' });
  }
  return doc;
}

/** The trust a kiosk needs from `verifier keys` output, with the witnesses (vkeys) it is configured with. */
export function trustedFrom(keys: VerifierKeys, witnesses: string[] = []): KioskConfig['verifiers'] {
  return { trusted: [{ id: keys.verifierId, publicJwk: keys.verdictKey }], fleetKey: keys.fleetKey, log: { keys: keys.log.keys, witnesses } };
}

/** The log keys and witnesses of the configuration, parsed (a bad vkey is a configuration error, named). */
export function logTrustOf(log: { keys: string[]; witnesses?: string[] }): LogTrust {
  const parse = (v: string, what: string) => {
    try {
      return parseVkey(v);
    } catch (e) {
      throw new BiokioskError('BadVerifierKeys', `${what} ${JSON.stringify(v.slice(0, 60))} is not a C2SP verifier key: ${(e as Error).message}`, { kind: 'input' });
    }
  };
  return { logKeys: log.keys.map((k) => parse(k, 'the log key')), witnesses: (log.witnesses ?? []).map((w) => parse(w, 'the witness key')) };
}

function captureDevice(c: CaptureConfig): CaptureDevice {
  if ('device' in c) return c.device;
  if (c.modality === 'face') return new CameraCaptureDevice(c.camera, c.sensor);
  return new FingerprintCaptureDevice({ path: c.port, baudRate: c.baudRate, password: c.password, address: c.address, sensor: c.sensor });
}

export class Kiosk extends EventEmitter<KioskEvents> {
  readonly devices = new Map<Modality, CaptureDevice>();
  readonly policy: SitePolicy | null;
  private readonly engines = new Map<Modality, Promise<ModalityEngine>>();
  private readonly ownEngines = new Set<Modality>();
  private readonly waiting = new Map<string, (v: VerdictInfo) => void>();
  private offlineSince: number | null = null;
  private offlineTimer: NodeJS.Timeout | null = null;
  private active: KioskSession | null = null;

  private constructor(
    readonly config: KioskConfig,
    readonly state: KioskState,
    readonly heads: TreeHeadStore,
    readonly relay: Relay,
    readonly attester: Attester,
    devices: CaptureDevice[],
  ) {
    super();
    for (const d of devices) {
      if (this.devices.has(d.modality)) throw new BiokioskError('BadConfig', `two ${d.modality} capture devices configured`);
      this.devices.set(d.modality, d);
      d.on('vanished', (reason) => this.emit('alarm', { kind: 'device', modality: d.modality, reason }));
    }
    for (const [m, e] of Object.entries(config.engines ?? {}) as Array<[Modality, ModalityEngine]>) this.engines.set(m, Promise.resolve(e));
    this.policy = devices.length > 0 ? sitePolicy(config.policy ?? {}, [...this.devices.keys()]) : null;
  }

  static async create(config: KioskConfig): Promise<Kiosk> {
    const devices = (config.capture ?? []).map(captureDevice);
    // The policy is checked before anything is opened: a bad one is a configuration error, not a half-started kiosk.
    if (devices.length > 0) sitePolicy(config.policy ?? {}, devices.map((d) => d.modality));
    let alarm: ((a: KioskAlarm) => void) | null = null;
    const state = await openKioskState(config.dir, {
      keyStore: config.keyStore,
      onNotice: config.onNotice,
      outbox: { ...config.outbox, onAlarm: (a) => alarm?.({ kind: 'outbox', ...a }) },
    });
    const heads = new TreeHeadStore(state.outbox.db);
    const t = deviceTopics(config.ueid);
    const relay = new Relay({
      brokerUrl: config.broker.url,
      clientId: config.ueid,
      ueid: config.ueid,
      version: config.version ?? packageVersion(),
      topics: { attestations: t.attestations, verdicts: t.verdicts, challengeRequest: t.challengeRequest, challengeResponse: t.challengeResponse },
      outbox: state.outbox,
      protocolVersion: config.broker.protocolVersion ?? 5,
      mqtt: config.broker.mqtt,
      pumpIntervalMs: config.broker.pumpIntervalMs,
      maxInFlight: config.broker.maxInFlight,
      publishRate: config.broker.publishRate,
      ...verdictChecker(config.ueid, config.verifiers.trusted, heads, logTrustOf(config.verifiers.log)),
    });
    const identity: DeviceIdentity = { ueid: config.ueid, site: config.site, sensor: devices[0]?.sensor ?? { make: 'biokiosk', model: 'none', serial: config.ueid, firmware: '1' } };
    const attester = new Attester(identity, state.keystore, config.verifiers.fleetKey, state.seq, state.outbox, () => heads.latestSize());
    let kiosk: Kiosk;
    try {
      kiosk = new Kiosk(config, state, heads, relay, attester, devices);
    } catch (e) {
      await state.close();
      throw e;
    }
    alarm = (a) => kiosk.emit('alarm', a);
    kiosk.wire();
    relay.start();
    return kiosk;
  }

  private wire(): void {
    this.relay.on('verdict', (v) => {
      this.waiting.get(v.attId)?.(v);
      this.emit('verdict', v);
    });
    this.relay.on('rejectedVerdict', (r) => this.emit('alarm', { kind: 'verdict_refused', receipt: r.error instanceof VerdictRefusedError ? r.error.receipt : null, reason: r.reason }));
    this.relay.on('connected', () => {
      this.offlineSince = null;
      if (this.offlineTimer) clearTimeout(this.offlineTimer);
      this.offlineTimer = null;
      this.emit('connected');
    });
    this.relay.on('offline', () => {
      if (this.offlineSince !== null) return;
      this.offlineSince = Date.now();
      const after = this.config.offlineAlarmMs ?? 60_000;
      this.offlineTimer = setTimeout(() => this.emit('alarm', { kind: 'offline', sinceMs: Date.now() - this.offlineSince! }), after);
      this.offlineTimer.unref();
    });
  }

  get ueid(): string {
    return this.config.ueid;
  }

  get online(): boolean {
    return this.relay.connected;
  }

  /** The engine of a modality, created on first use (and closed with the kiosk). */
  engine(modality: Modality): Promise<ModalityEngine> {
    let e = this.engines.get(modality);
    if (!e) {
      e = createEngine(modality);
      this.ownEngines.add(modality);
      this.engines.set(modality, e);
      e.catch(() => this.engines.delete(modality));
    }
    return e;
  }

  /** Replaces the capture device of its modality (closing the old one): a demo's next person, a swapped sensor. */
  async replaceDevice(device: CaptureDevice): Promise<void> {
    const old = this.devices.get(device.modality);
    this.devices.set(device.modality, device);
    device.on('vanished', (reason) => this.emit('alarm', { kind: 'device', modality: device.modality, reason }));
    if (old && old !== device) await old.close();
  }

  /** Attests a template now (what a session does after capture; tests and benchmarks call it directly). */
  async attest(t: TemplateToAttest): Promise<Attested> {
    const a = await this.attester.attest(t);
    this.relay.nudge();
    return a;
  }

  /** The verdict for an attestation when it comes within `timeoutMs`, else null (the outbox keeps it). */
  awaitVerdict(attId: string, timeoutMs: number, signal?: AbortSignal): Promise<VerdictInfo | null> {
    return new Promise<VerdictInfo | null>((resolve, reject) => {
      const done = (v: VerdictInfo | null) => {
        clearTimeout(timer);
        this.waiting.delete(attId);
        signal?.removeEventListener('abort', onAbort);
        resolve(v);
      };
      const onAbort = () => {
        clearTimeout(timer);
        this.waiting.delete(attId);
        reject(signal!.reason);
      };
      const timer = setTimeout(() => done(null), timeoutMs);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.set(attId, (v) => done(v));
    });
  }

  /**
   * The staff's check of the ID by hand instead of (or after) a biometric: attested by this device's key like any
   * attempt (no template) and logged by the verifier with the reason and the staff member; resolves with the
   * verdict (null when none came in time: it stays in the outbox).
   */
  async override(o: { subject: string; of: string | null; reason: Override['reason']; staff: string; scenario?: string | null; modality?: Modality; wantEligibility?: boolean; timeoutMs?: number }): Promise<{ attId: string; verdict: VerdictInfo | null }> {
    const modality = o.modality ?? this.policy?.steps[0]?.modality ?? 'face';
    const a = await this.attest({
      subject: o.subject,
      modality,
      template: new Uint8Array(0),
      templateFormat: OVERRIDE_FORMAT,
      quality: 0,
      model: { ...OVERRIDE_MODEL },
      override: { of: o.of, reason: o.reason, staff: o.staff },
      ...(o.scenario ? { scenario: o.scenario } : {}),
      ...(o.wantEligibility ? { wantEligibility: true } : {}),
    });
    return { attId: a.attId, verdict: await this.awaitVerdict(a.attId, o.timeoutMs ?? this.policy?.verdictTimeoutMs ?? 10_000) };
  }

  /** What the screen's health strip shows: sensors, key store, broker, verifier, outbox depth. */
  health(now = Date.now()): KioskHealth {
    const entries = this.state.outbox.all();
    const oldest = entries.reduce((m, e) => Math.min(m, e.createdAt), Infinity);
    const waitMs = this.policy?.verdictTimeoutMs ?? 10_000;
    return {
      sensors: [...this.devices.values()].map((d) => ({ modality: d.modality, available: d.available })),
      keyStore: this.state.keystore.developmentOnly ? 'software' : 'tpm',
      broker: this.online ? 'connected' : 'offline',
      // The verifier is unreachable when an attestation has waited longer than a verdict should take.
      verifier: !this.online ? 'unknown' : Number.isFinite(oldest) && now - oldest > waitMs ? 'unreachable' : 'ok',
      outbox: entries.length,
    };
  }

  /** A new verification session (one at a time). */
  session(options: SessionOptions = {}): KioskSession {
    if (!this.policy) throw new BiokioskError('NoCaptureDevice', 'this kiosk has no capture device configured: sessions need one', { kind: 'input' });
    if (this.active && this.active.state !== 'cleared') throw new BiokioskError('SessionBusy', `a session is already in ${this.active.state}`, { kind: 'input' });
    const s = new KioskSession(
      {
        devices: this.devices,
        engine: (m) => this.engine(m),
        templateFormat: (m) => TEMPLATE_FORMATS[m],
        attest: (t) => this.attest(t),
        online: () => this.online,
        requestNonce: async (timeoutMs, signal) => {
          try {
            return (await abortable(this.relay.requestNonce(timeoutMs), signal)).nonce;
          } catch (e) {
            if (signal.aborted) throw e;
            return null;
          }
        },
        awaitVerdict: (attId, timeoutMs, signal) => this.awaitVerdict(attId, timeoutMs, signal),
        clock: this.config.clock,
      },
      this.policy,
      options,
    );
    this.active = s;
    return s;
  }

  async close(): Promise<void> {
    this.active?.cancel();
    if (this.active) await this.active.done;
    if (this.offlineTimer) clearTimeout(this.offlineTimer);
    await this.relay.stop();
    for (const d of this.devices.values()) await d.close().catch(() => {});
    for (const m of this.ownEngines) await (await this.engines.get(m)?.catch(() => null))?.close();
    await this.state.close();
  }
}
