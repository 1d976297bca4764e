/**
 * A verifier node on MQTT: takes attestations from the shared stream (MQTT 5 shared subscription, so N verifier
 * processes split it; a plain subscription on 3.1.1 brokers), decides them in batches (verifier.ts), and answers
 * each on its device's verdict topic; also hands out nonces for online checks, on the asking device's own topic.
 *
 * The intake (intake.ts) stands between the broker and the pipeline: payload size checked before anything is
 * parsed, messages queued per device and batched round-robin, devices over their failure budget dropped unread,
 * and when the queue is full the client stops taking packets (the PUBACK is withheld, so the broker holds the
 * rest; with MQTT 5 the receive maximum bounds how many it sends ahead) instead of growing with a flood.
 */
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { noDelay } from '../protocol/mqtt-socket.ts';
import { decodeEnvelope, encodeEnvelope, ENVELOPE_VERSION, MAX_ENVELOPE_BYTES } from '../protocol/envelope.ts';
import { Rejection } from '../protocol/rejections.ts';
import { allDevicesFilter, deviceIdFromTopic, parseTopic, sharedSubscription, topicFor } from '../protocol/topics.ts';
import { DeviceGate, FairQueue, type FailureBudget } from './intake.ts';
import { prescreen } from './precheck.ts';
import type { Quarantine } from './quarantine.ts';
import type { VerifierStore } from './store.ts';
import { TokenBucket } from '../protocol/token-bucket.ts';
import type { CommittedBatch, IncomingMessage, PreparedBatch, Verifier, VerdictOut } from './verifier.ts';
import type { Witnessing } from './witnessing.ts';

export interface IntakeLimits {
  /** Messages queued in all; past it the client stops acknowledging (and so reading) until half of them are decided. The broker's messages in flight (receiveMaximum) come on top. */
  maxQueued: number;
  /** Messages queued per device, at most; more are dropped (the kiosk's outbox sends them again). */
  maxPerDevice: number;
  /** Rejections a device's topic may produce before its messages are dropped unread. */
  failureBudget: FailureBudget;
  /** Nonce requests per device. */
  challengeRate: { perSecond: number; burst: number };
  /** MQTT 5 receive maximum: unacknowledged QoS 1 messages the broker may send ahead. */
  receiveMaximum: number;
}

export const DEFAULT_INTAKE: IntakeLimits = {
  maxQueued: 4096,
  maxPerDevice: 1024,
  failureBudget: { perSecond: 10, burst: 200 },
  challengeRate: { perSecond: 2, burst: 10 },
  receiveMaximum: 1024,
};

export interface VerifierNodeOptions {
  brokerUrl: string;
  clientId: string;
  protocolVersion?: 4 | 5;
  /** Shared-subscription group (MQTT 5 only). */
  group?: string;
  maxBatch?: number;
  nonceTtlSeconds?: number;
  intake?: Partial<IntakeLimits>;
  mqtt?: Partial<IClientOptions>;
  onVerdict?: (v: VerdictOut, msg: IncomingMessage, ms: number) => void;
  onError?: (e: unknown) => void;
  /** Witnesses to have each batch's checkpoint cosigned by before answering (receipts then carry their cosignatures). */
  witnessing?: Witnessing;
  /** How long a batch waits for its cosignatures before answering with the log's signature alone (default 2 s). */
  witnessTimeoutMs?: number;
  /**
   * Cuts a flooding kiosk off at the broker (quarantine.ts). Only with a broker whose access rules let nobody but
   * a device publish on its topics (the fleet broker): every failure on a device topic then counts against it,
   * including what the intake refuses without cryptography.
   */
  quarantine?: Quarantine;
}

/** Committed batches being witnessed and answered at once, at most (their order is kept). */
const MAX_ANSWERING = 4;

export interface NodeStats {
  received: number;
  answered: number;
  duplicates: number;
  batches: number;
  /** Messages no trusted device signed (decided and counted, never logged). */
  unauthenticated: number;
  /** Messages dropped by the intake, by reason. */
  dropped: Record<'oversized' | 'not_a_device_topic' | 'not_the_device' | 'throttled' | 'device_queue_full' | 'quarantined', number>;
  challenges: { issued: number; refused: number };
  /** Times the client stopped reading because the queue was full. */
  pauses: number;
}

export class VerifierNode {
  private client: MqttClient | null = null;
  private readonly limits: IntakeLimits;
  private readonly queue: FairQueue<IncomingMessage>;
  private readonly gate: DeviceGate;
  private readonly challengeBuckets = new Map<string, TokenBucket>();
  private challenges: Array<{ topic: string; payload: Buffer }> = [];
  /** Writes the intake's rejection counts soon (coalesced: a flood must not cost a transaction per message). */
  private flushTimer: NodeJS.Timeout | null = null;
  /** PUBACKs withheld while the queue is full. */
  private held: Array<() => void> = [];
  private draining = false;
  private idle: Array<() => void> = [];
  readonly stats: NodeStats = {
    received: 0,
    answered: 0,
    duplicates: 0,
    batches: 0,
    unauthenticated: 0,
    dropped: { oversized: 0, not_a_device_topic: 0, not_the_device: 0, throttled: 0, device_queue_full: 0, quarantined: 0 },
    challenges: { issued: 0, refused: 0 },
    pauses: 0,
  };

  constructor(
    private readonly verifier: Verifier,
    private readonly store: VerifierStore,
    private readonly o: VerifierNodeOptions,
  ) {
    this.limits = { ...DEFAULT_INTAKE, ...o.intake };
    this.queue = new FairQueue(this.limits.maxPerDevice);
    this.gate = new DeviceGate(this.limits.failureBudget);
  }

  get version(): 4 | 5 {
    return this.o.protocolVersion ?? 5;
  }

  /** Registered keys by device, looked up at most every few seconds per device (a revocation shows within that). */
  private readonly keyCache = new Map<string, { at: number; kid: string | undefined; status: string | undefined }>();

  private readonly keyLookups = new Map<string, Promise<void>>();

  /** The cached registration of a device, or undefined when it must be looked up first (lookupKey). */
  private registeredKey(device: string, now: number): { kid: string | undefined; status: string | undefined } | undefined {
    const hit = this.keyCache.get(device);
    return hit && now - hit.at < 5000 ? hit : undefined;
  }

  /** Looks a device's registration up (one query per device at a time), then runs `then`. */
  private lookupKey(device: string, then: () => void): void {
    let p = this.keyLookups.get(device);
    if (!p) {
      p = this.store
        .device(device)
        .then((d) => {
          if (this.keyCache.size >= 100_000) this.keyCache.delete(this.keyCache.keys().next().value!);
          this.keyCache.delete(device);
          this.keyCache.set(device, { at: Date.now(), kid: d?.kid, status: d?.status });
        })
        .finally(() => this.keyLookups.delete(device));
      this.keyLookups.set(device, p);
    }
    p.then(then, (e) => this.o.onError?.(e));
  }

  /** Messages waiting to be decided. */
  get queued(): number {
    return this.queue.size;
  }

  /** Devices whose messages are being dropped for too many failures. */
  throttledDevices(): string[] {
    return this.gate.throttled(Date.now());
  }

  async start(): Promise<void> {
    const v5 = this.version === 5;
    const client = await mqtt.connectAsync(this.o.brokerUrl, {
      clientId: this.o.clientId,
      protocolVersion: this.version,
      clean: true,
      reconnectPeriod: 500,
      keepalive: 15,
      ...(v5 ? { properties: { receiveMaximum: this.limits.receiveMaximum } } : {}),
      ...this.o.mqtt,
    });
    this.client = client;
    // The PUBACK of each message waits for this: withheld while the queue is full (backpressure). mqtt.js hands the
    // message over before asking, so the queue holds at most maxQueued plus what the broker sends ahead unacknowledged
    // (the receive maximum on MQTT 5; the broker's max_inflight_messages on 3.1.1).
    client.handleMessage = (_packet: IPublishPacket, callback: (error?: Error) => void) => {
      if (this.queue.size < this.limits.maxQueued) return callback();
      if (this.held.length === 0) this.stats.pauses++;
      this.held.push(() => callback());
    };
    const attFilter = v5 ? sharedSubscription(this.o.group ?? 'verifiers', 'attestations') : allDevicesFilter('attestations');
    const chFilter = v5 ? sharedSubscription(this.o.group ?? 'verifiers', 'challenges/request') : allDevicesFilter('challenges/request');
    const subscribe = async () => {
      const granted = await client.subscribeAsync([attFilter, chFilter], { qos: 1 });
      const refused = granted.filter((g) => g.qos >= 0x80);
      if (refused.length > 0) throw new Error(`the broker refused the subscriptions ${refused.map((g) => g.topic).join(', ')} (is this client a verifier in the broker's ACL?)`);
    };
    noDelay(client);
    client.on('connect', () => {
      noDelay(client);
      void subscribe().catch((e) => this.o.onError?.(e));
    });
    client.on('message', (topic, payload, packet) => this.intake(topic, payload, packet.properties?.correlationData));
    await subscribe();
  }

  /** Intake rejections are counted in memory; a drain (which runs between batches) writes them, at most 4 times a second. */
  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      void this.drain();
    }, 250);
    this.flushTimer.unref();
  }

  /** Every message, before anything is parsed: size, topic, the device's failure budget, its queue. */
  private intake(topic: string, payload: Buffer, correlationData: Buffer | undefined): void {
    this.scheduleFlush();
    this.stats.received++;
    const now = Date.now();
    if (payload.byteLength > MAX_ENVELOPE_BYTES) {
      this.stats.dropped.oversized++;
      const device = safeDevice(topic);
      this.verifier.noteIntakeRejection('oversized', device, `The MQTT payload is ${payload.byteLength} bytes; at most ${MAX_ENVELOPE_BYTES} allowed.`, payload.subarray(0, 4096), now);
      if (device) this.o.quarantine?.failure(device, now);
      return;
    }
    let device: string;
    let kind: string;
    try {
      ({ deviceId: device, kind } = parseTopic(topic));
    } catch {
      this.stats.dropped.not_a_device_topic++;
      this.verifier.noteIntakeRejection('malformed', '', 'The message did not arrive on a device topic.', payload, now);
      return;
    }
    if (this.o.quarantine?.isCut(device, now)) {
      this.stats.dropped.quarantined++;
      this.verifier.noteIntakeRejection('rate_limited', device, 'Dropped unread: the device is quarantined at the broker for flooding.', payload, now);
      return;
    }
    if (kind === 'challenges/request') {
      if (!this.gate.allows(device, now)) {
        this.stats.challenges.refused++;
        return;
      }
      if (this.challenges.length < 1024) this.challenges.push({ topic, payload });
      else this.stats.challenges.refused++;
      void this.drain();
      return;
    }
    if (kind !== 'attestations') {
      this.stats.dropped.not_a_device_topic++;
      return;
    }
    // Without cryptography: shaped like an attestation of this device, under its registered key? If not, it is
    // certain to fail, and is refused here without costing the device anything (a broker without an ACL lets
    // anyone publish on any device's topic).
    const pre = prescreen(device, payload);
    if ('rejection' in pre) {
      this.stats.dropped.not_the_device++;
      this.verifier.noteIntakeRejection(pre.rejection.code, device, pre.rejection.detail, payload, now);
      this.o.quarantine?.failure(device, now);
      return;
    }
    const registered = this.registeredKey(device, now);
    if (!registered) {
      // Not cached: looked up without blocking the intake; a flood of unknown topics is bounded by the lookups in flight.
      if (this.keyLookups.size >= 10_000 && !this.keyLookups.has(device)) {
        this.stats.dropped.throttled++;
        this.verifier.noteIntakeRejection('rate_limited', device, 'Dropped unread: too many device lookups in flight.', payload, now);
        return;
      }
      this.lookupKey(device, () => this.admit(device, topic, payload, correlationData, pre.kid));
      return;
    }
    this.admit(device, topic, payload, correlationData, pre.kid);
  }

  /** The rest of the intake, once the device's registration is known. */
  private admit(device: string, topic: string, payload: Buffer, correlationData: Buffer | undefined, kid: string): void {
    const now = Date.now();
    const registered = this.registeredKey(device, now) ?? { kid: undefined, status: undefined };
    const pre = { kid };
    if (registered?.kid !== pre.kid || registered.status !== 'active') {
      this.stats.dropped.not_the_device++;
      const code = registered?.kid === pre.kid ? 'revoked_device' : 'unknown_device';
      this.verifier.noteIntakeRejection(code, device, code === 'revoked_device' ? `Device ${device} is revoked.` : `The attestation is not signed with the key registered for ${device}.`, payload, now);
      this.o.quarantine?.failure(device, now);
      return;
    }
    if (!this.gate.allows(device, now)) {
      this.stats.dropped.throttled++;
      this.verifier.noteIntakeRejection('rate_limited', device, 'Dropped unread: the device is over its failure budget.', payload, now);
      return;
    }
    if (!this.queue.push(device, { topic, payload, correlationData, receivedAt: now, kid: pre.kid })) {
      this.stats.dropped.device_queue_full++;
      this.fault(device, now);
      return;
    }
    void this.drain();
  }

  /**
   * Decides what is queued, one batch at a time; the next batch's stateless checks start before the current one
   * is decided, so that with precheck workers the two overlap (workers check, the main thread decides). A
   * committed batch is witnessed and answered while the next one is decided (in order, a few at a time). Nonce
   * requests are answered between batches.
   */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      await this.answerChallenges();
      let next = this.takeBatch();
      while (next) {
        const { batch, prepared } = next;
        next = this.takeBatch();
        const t0 = performance.now();
        let committed: CommittedBatch;
        try {
          committed = await this.verifier.commit(await prepared);
        } catch (e) {
          // Nothing of the batch was committed; its messages will come again from the kiosks' outboxes.
          this.o.onError?.(e);
          await this.answerChallenges();
          next ??= this.takeBatch();
          continue;
        }
        this.answering.push(this.finish(batch, committed, t0));
        while (this.answering.length >= MAX_ANSWERING) await this.answering.shift();
        await this.answerChallenges();
        next ??= this.takeBatch();
      }
      while (this.answering.length > 0) await this.answering.shift();
      await this.verifier.flushIntakeRejections();
    } catch (e) {
      this.o.onError?.(e);
    } finally {
      this.draining = false;
      this.release();
      for (const f of this.idle.splice(0)) f();
    }
  }

  /** Batches committed and being answered, oldest first. */
  private answering: Array<Promise<void>> = [];
  /** The previous batch's answer: verdicts go out in commit order. */
  private lastAnswer: Promise<void> = Promise.resolve();

  /** Has the batch's checkpoint cosigned (when witnesses are configured, within the timeout), then answers it. */
  private finish(batch: IncomingMessage[], committed: CommittedBatch, t0: number): Promise<void> {
    const cosigned = this.o.witnessing && committed.checkpoint ? this.o.witnessing.cosign(committed.checkpoint, this.o.witnessTimeoutMs ?? 2000).catch((e: unknown) => (this.o.onError?.(e), undefined)) : Promise.resolve(undefined);
    const before = this.lastAnswer;
    const done = (async () => {
      const witnessed = await cosigned;
      let results: VerdictOut[];
      try {
        results = await this.verifier.answer(committed, witnessed);
      } catch (e) {
        // Decided and logged, not answered: the kiosks' outboxes send again and get the answer from the log.
        this.o.onError?.(e);
        await before;
        return;
      }
      await before;
      this.stats.batches++;
      const ms = performance.now() - t0;
      const now = Date.now();
      results.forEach((r, i) => {
        if (r.duplicate) this.stats.duplicates++;
        if (!r.authenticated) this.stats.unauthenticated++;
        if (r.decision === 'rejected' && !r.duplicate) {
          const device = safeDevice(batch[i]!.topic);
          // Only what the device's key did not sign counts towards a quarantine: an honest kiosk's signed
          // attestations can be refused (stale after a long time offline, say), never unsigned junk.
          if (device) this.fault(device, now, !r.authenticated);
        }
        if (r.verdict && r.attId) {
          this.publishVerdict(r.ueid, r.attId, r.verdict);
          this.stats.answered++;
        }
        this.o.onVerdict?.(r, batch[i]!, ms);
      });
    })();
    this.lastAnswer = done;
    return done;
  }

  /** A failure the device's topic produced: against its intake budget, and its quarantine budget when `unsigned`. */
  private fault(device: string, now: number, unsigned = true): void {
    this.gate.charge(device, now);
    if (unsigned) this.o.quarantine?.failure(device, now);
  }

  private takeBatch(): { batch: IncomingMessage[]; prepared: Promise<PreparedBatch> } | null {
    if (this.queue.size === 0) return null;
    const batch = this.queue.take(this.o.maxBatch ?? 256);
    this.release();
    const prepared = this.verifier.prepare(batch);
    prepared.catch(() => {}); // observed when its turn comes
    return { batch, prepared };
  }

  /** Lets the client read again once the queue is down to half its bound. */
  private release(): void {
    if (this.held.length === 0 || this.queue.size > this.limits.maxQueued / 2) return;
    for (const ack of this.held.splice(0)) ack();
  }

  private publishVerdict(ueid: string, attId: string, body: string): void {
    const payload = encodeEnvelope({ v: ENVELOPE_VERSION, kind: 'verdict', corr: attId, body });
    const props = this.version === 5 ? { properties: { correlationData: Buffer.from(attId) } } : {};
    this.client?.publish(topicFor('verdicts', ueid), payload, { qos: 1, ...props });
  }

  private async answerChallenges(): Promise<void> {
    for (const c of this.challenges.splice(0)) await this.answerChallenge(c.topic, c.payload);
  }

  /**
   * A nonce for a registered, active device, at most `challengeRate` a second, published on that device's own
   * response topic only: a response topic named in the request is ignored, so nobody can make the verifier
   * publish where they choose.
   */
  private async answerChallenge(topic: string, payload: Buffer): Promise<void> {
    try {
      const ueid = deviceIdFromTopic(topic, 'challenges/request');
      const env = decodeEnvelope(payload, 'challenge_request');
      const now = Date.now();
      let bucket = this.challengeBuckets.get(ueid);
      if (!bucket) {
        if (this.challengeBuckets.size >= 100_000) this.challengeBuckets.delete(this.challengeBuckets.keys().next().value!);
        bucket = new TokenBucket(this.limits.challengeRate.perSecond, this.limits.challengeRate.burst);
        this.challengeBuckets.set(ueid, bucket);
      }
      const device = await this.store.device(ueid);
      if (env.body.ueid !== ueid || device?.status !== 'active' || !bucket.take(now)) {
        this.stats.challenges.refused++;
        if (device?.status !== 'active') this.gate.charge(ueid, now);
        return;
      }
      const nonce = randomBytes(16).toString('base64url');
      const expiresAt = Math.floor(now / 1000) + (this.o.nonceTtlSeconds ?? 120);
      await this.store.issueNonce(ueid, nonce, expiresAt * 1000, { now });
      this.stats.challenges.issued++;
      const answer = encodeEnvelope({ v: ENVELOPE_VERSION, kind: 'challenge_response', corr: env.corr, body: { req_id: env.corr, nonce, expires_at: expiresAt } });
      const props = this.version === 5 ? { properties: { correlationData: Buffer.from(env.corr) } } : {};
      this.client?.publish(topicFor('challenges/response', ueid), answer, { qos: 1, ...props });
    } catch (e) {
      this.stats.challenges.refused++;
      // A malformed request is the sender's problem, counted; anything else is ours.
      if (!(e instanceof Rejection)) this.o.onError?.(e);
    }
  }

  /** Resolves when everything received so far has been decided. */
  async settled(): Promise<void> {
    if (!this.draining && this.queue.size === 0 && this.challenges.length === 0 && this.keyLookups.size === 0) return;
    if (!this.draining && this.queue.size === 0 && this.challenges.length === 0) {
      await Promise.allSettled([...this.keyLookups.values()]);
      return this.settled();
    }
    await new Promise<void>((r) => this.idle.push(r));
  }

  async stop(): Promise<void> {
    await this.settled();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    await this.verifier.flushIntakeRejections();
    await this.client?.endAsync();
  }
}

function safeDevice(topic: string): string {
  try {
    return parseTopic(topic).deviceId;
  } catch {
    return '';
  }
}
