/**
 * A verifier node on MQTT: takes attestations from the shared stream (MQTT 5 shared subscription, so N verifier
 * processes split it; a plain subscription on 3.1.1 brokers), decides them in batches (verifier.ts), and answers
 * each on its device's verdict topic; also hands out nonces for online checks.
 */
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { noDelay } from '../protocol/mqtt-socket.ts';
import { decodeEnvelope, encodeEnvelope, ENVELOPE_VERSION } from '../protocol/envelope.ts';
import { allDevicesFilter, deviceIdFromTopic, sharedSubscription, topicFor } from '../protocol/topics.ts';
import type { VerifierStore } from './store.ts';
import type { IncomingMessage, PreparedBatch, Verifier, VerdictOut } from './verifier.ts';

export interface VerifierNodeOptions {
  brokerUrl: string;
  clientId: string;
  protocolVersion?: 4 | 5;
  /** Shared-subscription group (MQTT 5 only). */
  group?: string;
  maxBatch?: number;
  nonceTtlSeconds?: number;
  mqtt?: Partial<IClientOptions>;
  onVerdict?: (v: VerdictOut, msg: IncomingMessage, ms: number) => void;
  onError?: (e: unknown) => void;
}

export class VerifierNode {
  private client: MqttClient | null = null;
  private queue: IncomingMessage[] = [];
  private draining = false;
  private idle: Array<() => void> = [];
  readonly stats = { received: 0, answered: 0, duplicates: 0, batches: 0 };

  constructor(
    private readonly verifier: Verifier,
    private readonly store: VerifierStore,
    private readonly o: VerifierNodeOptions,
  ) {}

  get version(): 4 | 5 {
    return this.o.protocolVersion ?? 5;
  }

  async start(): Promise<void> {
    const client = await mqtt.connectAsync(this.o.brokerUrl, {
      clientId: this.o.clientId,
      protocolVersion: this.version,
      clean: true,
      reconnectPeriod: 500,
      keepalive: 15,
      ...this.o.mqtt,
    });
    this.client = client;
    const attFilter = this.version === 5 ? sharedSubscription(this.o.group ?? 'verifiers', 'attestations') : allDevicesFilter('attestations');
    const chFilter = this.version === 5 ? sharedSubscription(this.o.group ?? 'verifiers', 'challenges/request') : allDevicesFilter('challenges/request');
    const subscribe = () => client.subscribeAsync([attFilter, chFilter], { qos: 1 });
    noDelay(client);
    client.on('connect', () => {
      noDelay(client);
      void subscribe().catch((e) => this.o.onError?.(e));
    });
    client.on('message', (topic, payload, packet) => {
      if (topic.endsWith('/challenges/request')) return this.onChallenge(topic, payload, packet.properties?.responseTopic, packet.properties?.correlationData);
      this.stats.received++;
      this.queue.push({ topic, payload, correlationData: packet.properties?.correlationData, receivedAt: Date.now() });
      void this.drain();
    });
    await subscribe();
  }

  /**
   * Decides what is queued, one batch at a time; the next batch's stateless checks start before the current one
   * is decided, so that with precheck workers the two overlap (workers check, the main thread decides).
   */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      let next = this.takeBatch();
      while (next) {
        const { batch, prepared } = next;
        next = this.takeBatch();
        const t0 = performance.now();
        let results: VerdictOut[];
        try {
          results = await this.verifier.decide(await prepared);
        } catch (e) {
          // Nothing of the batch was committed; its messages will come again from the kiosks' outboxes.
          this.o.onError?.(e);
          continue;
        }
        this.stats.batches++;
        const ms = performance.now() - t0;
        results.forEach((r, i) => {
          if (r.duplicate) this.stats.duplicates++;
          if (r.verdict && r.attId) {
            this.publishVerdict(r.ueid, r.attId, r.verdict);
            this.stats.answered++;
          }
          this.o.onVerdict?.(r, batch[i]!, ms);
        });
        next ??= this.takeBatch();
      }
    } finally {
      this.draining = false;
      for (const f of this.idle.splice(0)) f();
    }
  }

  private takeBatch(): { batch: IncomingMessage[]; prepared: Promise<PreparedBatch> } | null {
    if (this.queue.length === 0) return null;
    const batch = this.queue.splice(0, this.o.maxBatch ?? 256);
    const prepared = this.verifier.prepare(batch);
    prepared.catch(() => {}); // observed when its turn comes
    return { batch, prepared };
  }

  private publishVerdict(ueid: string, attId: string, verdict: string): void {
    const payload = encodeEnvelope({ v: ENVELOPE_VERSION, kind: 'verdict', corr: attId, body: verdict });
    const props = this.version === 5 ? { properties: { correlationData: Buffer.from(attId) } } : {};
    this.client?.publish(topicFor('verdicts', ueid), payload, { qos: 1, ...props });
  }

  private onChallenge(topic: string, payload: Buffer, responseTopic?: string, correlationData?: Buffer): void {
    try {
      const ueid = deviceIdFromTopic(topic, 'challenges/request');
      const env = decodeEnvelope(payload, 'challenge_request');
      if (env.body.ueid !== ueid) return;
      const nonce = randomBytes(16).toString('base64url');
      const expiresAt = Math.floor(Date.now() / 1000) + (this.o.nonceTtlSeconds ?? 120);
      this.store.issueNonce(ueid, nonce, expiresAt * 1000);
      const answer = encodeEnvelope({ v: ENVELOPE_VERSION, kind: 'challenge_response', corr: env.corr, body: { req_id: env.corr, nonce, expires_at: expiresAt } });
      const props = this.version === 5 && correlationData ? { properties: { correlationData } } : {};
      this.client?.publish(responseTopic ?? topicFor('challenges/response', ueid), answer, { qos: 1, ...props });
    } catch (e) {
      this.o.onError?.(e);
    }
  }

  /** Resolves when everything received so far has been decided. */
  async settled(): Promise<void> {
    if (!this.draining && this.queue.length === 0) return;
    await new Promise<void>((r) => this.idle.push(r));
  }

  async stop(): Promise<void> {
    await this.settled();
    await this.client?.endAsync();
  }
}
