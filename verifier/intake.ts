/**
 * The verifier's intake, between MQTT and the decision pipeline: bounded, fair between devices, and closed to
 * devices that keep sending what fails.
 *
 * - `FairQueue`: one FIFO per device, batches taken round-robin across devices, so a flood on one device's topic
 *   delays another device's attestation by at most one batch; bounded per device and in total.
 * - `DeviceGate`: a failure budget per device (token bucket): every rejection a device's topic produces costs a
 *   token; with none left, that topic's messages are dropped unread until the budget refills. An honest kiosk
 *   produces few rejections; a flood of junk is cut to the refill rate after its first burst. Bounded in the
 *   number of devices it remembers (least recently seen forgotten first).
 */
import { TokenBucket } from '../protocol/token-bucket.ts';

export class FairQueue<T> {
  private readonly queues = new Map<string, T[]>();
  /** Devices with something queued, in round-robin order. */
  private readonly ring: string[] = [];
  private total = 0;

  constructor(readonly maxPerDevice: number) {}

  get size(): number {
    return this.total;
  }

  /** Queues an item for a device; false (nothing queued) when that device's queue is full. */
  push(device: string, item: T): boolean {
    let q = this.queues.get(device);
    if (!q) {
      q = [];
      this.queues.set(device, q);
      this.ring.push(device);
    }
    if (q.length >= this.maxPerDevice) return false;
    q.push(item);
    this.total++;
    return true;
  }

  /** Up to `max` items, one per device in turn, starting where the last take stopped. */
  take(max: number): T[] {
    const out: T[] = [];
    while (out.length < max && this.ring.length > 0) {
      const device = this.ring.shift()!;
      const q = this.queues.get(device)!;
      out.push(q.shift()!);
      this.total--;
      if (q.length > 0) this.ring.push(device);
      else this.queues.delete(device);
    }
    return out;
  }
}

export interface FailureBudget {
  perSecond: number;
  burst: number;
}

export class DeviceGate {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    readonly budget: FailureBudget,
    readonly maxDevices = 100_000,
  ) {}

  /** False while the device has used up its failure budget. */
  allows(device: string, now: number): boolean {
    const b = this.buckets.get(device);
    return b === undefined || b.available(now) >= 1;
  }

  /** One failure on the device's topic. */
  charge(device: string, now: number): void {
    let b = this.buckets.get(device);
    if (b) this.buckets.delete(device);
    else {
      b = new TokenBucket(this.budget.perSecond, this.budget.burst);
      if (this.buckets.size >= this.maxDevices) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(device, b);
    b.charge(now);
  }

  /** Devices whose budget is used up now (for monitoring). */
  throttled(now: number): string[] {
    return [...this.buckets].filter(([, b]) => b.available(now) < 1).map(([d]) => d);
  }
}
