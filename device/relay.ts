/**
 * The kiosk's MQTT relay: drains the durable outbox to the broker (QoS 1) and removes an attestation only when
 * its verdict arrives and verifies. Survives broker restarts (mqtt.js reconnects; everything unacknowledged is
 * resent from the outbox) and process death (the outbox is on disk). MQTT 5 where the broker has it (response
 * topic and correlation data on each attestation); on 3.1.1 the correlation id travels in the payload only.
 */
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { noDelay } from '../protocol/mqtt-socket.ts';
import { randomUUID } from 'node:crypto';
import { decodeEnvelope, encodeEnvelope, ENVELOPE_VERSION, requestProperties, statusPublishes } from '../protocol/envelope.ts';
import { TokenBucket } from '../protocol/token-bucket.ts';
import type { Outbox } from './outbox.ts';
import type { VerdictCheck, VerdictInfo } from './verdicts.ts';

export type { VerdictInfo } from './verdicts.ts';

export interface RelayTopics {
  attestations: string;
  verdicts: string;
  /** For online checks: where to ask a verifier for a nonce, and where the answer comes. */
  challengeRequest?: string;
  challengeResponse?: string;
}

export interface RelayOptions {
  brokerUrl: string;
  clientId: string;
  topics: RelayTopics;
  outbox: Outbox;
  /** Opens and verifies a verdict for the outbox entry it names; throws when it is not to be trusted (verdicts.ts). */
  checkVerdict: VerdictCheck;
  protocolVersion?: 4 | 5;
  /** The device id (for the retained status and its last will) and software version. */
  ueid: string;
  version: string;
  /** Attestations published but not yet answered, at most. */
  maxInFlight?: number;
  /**
   * How fast the relay publishes, at most: under the fleet broker's per-client limit (deploy/mosquitto/fleet.conf:
   * 50/s, 300 at once), so a kiosk emptying a long offline backlog is never refused by it.
   */
  publishRate?: { perSecond: number; burst: number };
  pumpIntervalMs?: number;
  mqtt?: Partial<IClientOptions>;
}

export interface RelayEvents {
  verdict: [VerdictInfo];
  rejectedVerdict: [{ reason: string; error?: unknown }];
  connected: [];
  offline: [];
}

/** Below the fleet broker's 50/s and 300 at once, with room for the status and nonce requests beside. */
export const DEFAULT_PUBLISH_RATE = { perSecond: 40, burst: 250 };

export class Relay extends EventEmitter<RelayEvents> {
  private client: MqttClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Set<string>();
  private pumping = false;
  private stopped = false;
  /** `refused`: publishes the broker answered with an error (MQTT 5), e.g. over its rate limit; the outbox sends them again. */
  readonly stats = { published: 0, republished: 0, refused: 0, verdicts: 0, badVerdicts: 0, unknownVerdicts: 0 };
  private readonly pace: TokenBucket;

  constructor(private readonly o: RelayOptions) {
    super();
    const rate = o.publishRate ?? DEFAULT_PUBLISH_RATE;
    this.pace = new TokenBucket(rate.perSecond, rate.burst);
  }

  private readonly onPublished = (err?: Error): void => {
    if (err) this.stats.refused++;
  };

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  start(): void {
    const v = this.o.protocolVersion ?? 5;
    const client = mqtt.connect(this.o.brokerUrl, {
      clientId: this.o.clientId,
      protocolVersion: v,
      clean: true,
      reconnectPeriod: 500,
      connectTimeout: 5000,
      keepalive: 15,
      will: statusPublishes(this.o.ueid, this.o.version, Math.floor(Date.now() / 1000)).will,
      ...this.o.mqtt,
    });
    this.client = client;
    client.on('connect', () => {
      // A connection that completes while the kiosk is closing must not touch the (closed) outbox.
      if (this.stopped) return;
      noDelay(client);
      client.subscribe(this.o.topics.challengeResponse ? [this.o.topics.verdicts, this.o.topics.challengeResponse] : [this.o.topics.verdicts], { qos: 1 });
      const online = statusPublishes(this.o.ueid, this.o.version, Math.floor(Date.now() / 1000)).online;
      client.publish(online.topic, online.payload, { qos: 1, retain: true });
      // Whatever was in flight before the connection dropped may be lost: everything unanswered is due again.
      this.inFlight.clear();
      this.o.outbox.retryAllNow();
      this.emit('connected');
      void this.pump();
    });
    client.on('offline', () => this.emit('offline'));
    client.on('error', () => {
      /* reconnects by itself; the outbox keeps everything */
    });
    client.on('message', (topic, payload) => {
      if (this.stopped) return;
      if (topic === this.o.topics.challengeResponse) this.onChallengeResponse(payload);
      else void this.onVerdict(payload);
    });
    this.timer = setInterval(() => void this.pump(), this.o.pumpIntervalMs ?? 50);
  }

  private readonly challenges = new Map<string, (r: { nonce: string; expiresAt: number }) => void>();

  /**
   * Asks the verifiers for a nonce (an online check): MQTT 5 request/response with response topic and correlation
   * data, the request id in the payload as well so 3.1.1 brokers work. Needs a connection: offline, the kiosk
   * attests without a nonce and the verifier's seq check is the replay defence.
   */
  async requestNonce(timeoutMs = 5000): Promise<{ nonce: string; expiresAt: number }> {
    const client = this.client;
    const { challengeRequest, challengeResponse } = this.o.topics;
    if (!client?.connected || !challengeRequest || !challengeResponse) throw new Error('no connection to ask a verifier for a nonce');
    const reqId = randomUUID();
    const answer = new Promise<{ nonce: string; expiresAt: number }>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.challenges.delete(reqId);
        reject(new Error(`no nonce from a verifier within ${timeoutMs} ms`));
      }, timeoutMs);
      this.challenges.set(reqId, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
    const payload = encodeEnvelope({ v: ENVELOPE_VERSION, kind: 'challenge_request', corr: reqId, body: { req_id: reqId, ueid: this.o.ueid } });
    const props = (this.o.protocolVersion ?? 5) === 5 ? { properties: requestProperties(reqId, challengeResponse) } : {};
    this.pace.charge(Date.now());
    client.publish(challengeRequest, payload, { qos: 1, ...props }, this.onPublished);
    return answer;
  }

  private onChallengeResponse(payload: Buffer): void {
    try {
      const env = decodeEnvelope(payload, 'challenge_response');
      this.challenges.get(env.corr)?.({ nonce: env.body.nonce, expiresAt: env.body.expires_at });
      this.challenges.delete(env.corr);
    } catch {
      // Not ours to answer: a malformed response is dropped.
    }
  }

  /** Call after enqueueing, to send without waiting for the next tick. */
  nudge(): void {
    void this.pump();
  }

  private async pump(): Promise<void> {
    const client = this.client;
    if (this.pumping || this.stopped || !client?.connected) return;
    this.pumping = true;
    try {
      const now = Date.now();
      const room = Math.min((this.o.maxInFlight ?? 256) - this.inFlight.size, Math.floor(this.pace.available(now)));
      if (room <= 0) return;
      for (const e of this.o.outbox.due(now, room)) {
        if (!client.connected) break;
        if (this.inFlight.has(e.attId)) this.stats.republished++;
        this.inFlight.add(e.attId);
        this.o.outbox.attempted(e.attId, now, e.attempts > 0 ? 'no verdict yet' : null);
        const props = (this.o.protocolVersion ?? 5) === 5 ? { properties: { responseTopic: this.o.topics.verdicts, correlationData: Buffer.from(e.attId) } } : {};
        this.pace.take(now);
        client.publish(this.o.topics.attestations, e.payload, { qos: 1, ...props }, this.onPublished);
        this.stats.published++;
      }
    } finally {
      this.pumping = false;
    }
  }

  private async onVerdict(payload: Buffer): Promise<void> {
    let env;
    try {
      env = decodeEnvelope(payload, 'verdict');
    } catch (e) {
      this.stats.badVerdicts++;
      this.emit('rejectedVerdict', { reason: e instanceof Error ? e.message : String(e) });
      return;
    }
    const entry = this.o.outbox.get(env.corr);
    if (!entry) {
      // A second copy of a verdict already taken, or one for nothing we sent: nothing to do.
      this.stats.unknownVerdicts++;
      return;
    }
    let v: VerdictInfo;
    try {
      v = await this.o.checkVerdict(env, entry);
    } catch (e) {
      // Not a verdict for what we sent (forged, rebound, for another attestation): the entry stays.
      this.stats.badVerdicts++;
      this.emit('rejectedVerdict', { reason: e instanceof Error ? e.message : String(e), error: e });
      return;
    }
    // Two copies of one verdict (the attestation was sent twice) can both pass the check: the one that removes the
    // entry settles it, the other is a duplicate.
    if (!this.o.outbox.acknowledge(v.attId, v.keep)) {
      this.stats.unknownVerdicts++;
      return;
    }
    this.inFlight.delete(v.attId);
    this.stats.verdicts++;
    this.emit('verdict', v);
    void this.pump();
  }

  /**
   * Publishes the offline status and disconnects. The broker is waited for at most STOP_GRACE_MS at each step: one
   * that is hung, or that has just dropped this client (a decommission deletes its login), would otherwise keep the
   * kiosk from closing for ever. Nothing is lost by not waiting: what was not acknowledged stays in the outbox, and
   * the last will says offline when the connection is cut.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const client = this.client;
    if (!client) return;
    let acknowledged = false;
    if (client.connected) {
      const offline = statusPublishes(this.o.ueid, this.o.version, Math.floor(Date.now() / 1000)).offline;
      const published = new Promise<boolean>((resolve) => client.publish(offline.topic, offline.payload, { qos: 1, retain: true }, (err) => resolve(!err)));
      acknowledged = await settledWithin(published, STOP_GRACE_MS, false);
    }
    // Graceful (a DISCONNECT, so no last will) only with a broker that just answered and is still there; not
    // connected, there is no handshake left to wait for (a CONNACK arriving later is ignored above).
    const ended = client.endAsync(!(acknowledged && client.connected)).catch(() => {});
    if (!(await settledWithin(ended.then(() => true), STOP_GRACE_MS, false))) {
      client.stream.destroy();
      await ended;
    }
  }
}

/** How long stop() waits for the broker, at each of its two steps. */
export const STOP_GRACE_MS = 2000;

/** The promise's value, or `fallback` once `ms` have passed without one. */
function settledWithin<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
