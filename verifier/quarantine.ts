/**
 * Kiosks that flood the stream are cut off at the broker, not only at the verifier.
 *
 * The intake (intake.ts) drops a failing device's messages unread, but each still costs the verifier its share of
 * one MQTT session read in order: an honest attestation waits behind everything the broker queued before it. On
 * the fleet broker a device topic can only be published by that device's own login (the access rules of
 * provisioning/broker-security.ts), so every failure on it is the login's doing. Past a failure budget (counting
 * only what the device's key did not sign: an honest kiosk's signed attestations may be refused, say stale after
 * days offline, but it never sends junk), the node takes the kiosk's role away on the broker (BrokerAdmin.quarantineDevice), which stops
 * the flood where it enters. The quarantine is recorded in the store first (any node of the fleet releases it
 * when it ends, and a node that dies between the two leaves only a release to do), lasts `firstMs`, and doubles
 * with each strike in a row up to `maxMs`; strikes are forgotten after `forgetMs` without one. An operator lists
 * and releases quarantines with `biokiosk verifier quarantine`.
 */
import type { FailureBudget } from './intake.ts';
import type { QuarantineRow, VerifierStore } from './store.ts';
import { TokenBucket } from '../protocol/token-bucket.ts';

export interface QuarantinePolicy {
  /**
   * Failures a device's topic may produce before the device is quarantined: messages its registered key did not
   * sign (what the intake refuses unread, and rejections of unauthenticated messages). Smaller than the intake's
   * budget, so that junk shaped to pass the intake's cheap test trips it before the intake stops reading it.
   */
  failures: FailureBudget;
  /** Length of a first quarantine; each strike in a row doubles it. */
  firstMs: number;
  maxMs: number;
  /** A device without a quarantine this long starts again from one strike. */
  forgetMs: number;
  /** How often a node looks for quarantines that have ended. */
  sweepMs: number;
}

export const DEFAULT_QUARANTINE: QuarantinePolicy = {
  failures: { perSecond: 10, burst: 50 },
  firstMs: 10 * 60_000,
  maxMs: 24 * 3_600_000,
  forgetMs: 24 * 3_600_000,
  sweepMs: 30_000,
};

const CUT_MEMORY_MS = 1000;

/** The default policy with another first length; ends are looked for at least four times per first length. */
export function quarantinePolicy(firstMs: number): QuarantinePolicy {
  return { ...DEFAULT_QUARANTINE, firstMs, sweepMs: Math.min(DEFAULT_QUARANTINE.sweepMs, Math.max(1000, firstMs / 4)) };
}

/** What cuts a kiosk's broker login off and gives it back (BrokerAdmin on the fleet broker). */
export interface DeviceLoginSwitch {
  quarantineDevice(ueid: string): Promise<void>;
  releaseDevice(ueid: string): Promise<void>;
  /** Connects ahead of need, so that the first quarantine is not kept waiting by a TLS handshake. */
  warm?(): Promise<void>;
}

/** The row of a device's next quarantine, given its previous one. Pure. */
export function nextQuarantine(prev: QuarantineRow | undefined, ueid: string, reason: string, now: number, policy: Pick<QuarantinePolicy, 'firstMs' | 'maxMs' | 'forgetMs'>): QuarantineRow {
  const lastEnd = prev ? (prev.releasedAt ?? prev.until) : undefined;
  const strikes = prev && lastEnd !== undefined && now - lastEnd < policy.forgetMs ? prev.strikes + 1 : 1;
  const length = Math.min(policy.maxMs, policy.firstMs * 2 ** Math.min(strikes - 1, 30));
  return { ueid, strikes, since: now, until: now + length, reason, releasedAt: null };
}

export interface QuarantineHooks {
  onQuarantine?: (row: QuarantineRow) => void;
  onRelease?: (ueid: string) => void;
  onError?: (e: unknown) => void;
}

export class Quarantine {
  private readonly budgets = new Map<string, TokenBucket>();
  /** Quarantines being put in place by this node (one at a time per device). */
  private readonly pending = new Set<string>();
  /**
   * When this node last cut each device off. For a moment after (CUT_MEMORY_MS) what the broker had queued before
   * the cut is dropped unread and counts for nothing; after that it is read and counted again, and a device still
   * failing is cut again (the same quarantine while it is in force). Only a moment: another node or an operator may
   * release the device meanwhile, and its messages must then be read.
   */
  private readonly cut = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<string[]> | null = null;

  constructor(
    private readonly store: VerifierStore,
    private readonly broker: DeviceLoginSwitch,
    readonly policy: QuarantinePolicy = DEFAULT_QUARANTINE,
    private readonly hooks: QuarantineHooks = {},
    private readonly maxDevices = 100_000,
  ) {}

  /** One failure on a device's topic; the device is quarantined once its budget is gone. */
  failure(ueid: string, now = Date.now()): void {
    if (this.isCut(ueid, now)) return;
    let b = this.budgets.get(ueid);
    if (!b) {
      if (this.budgets.size >= this.maxDevices) this.budgets.delete(this.budgets.keys().next().value!);
      b = new TokenBucket(this.policy.failures.perSecond, this.policy.failures.burst);
      this.budgets.set(ueid, b);
    }
    if (b.take(now)) return;
    this.budgets.delete(ueid);
    const reason = `more than ${this.policy.failures.burst} messages its key did not sign, at over ${this.policy.failures.perSecond}/s`;
    this.quarantine(ueid, reason, now).catch((e: unknown) => this.hooks.onError?.(e));
  }

  /**
   * True while this node is cutting the device off and for a moment after: what the broker queued before the cut
   * can be dropped unread.
   */
  isCut(ueid: string, now = Date.now()): boolean {
    // From the moment the budget ran out: the broker may take a while to answer while the flood is still arriving.
    if (this.pending.has(ueid)) return true;
    const at = this.cut.get(ueid);
    return at !== undefined && now - at < CUT_MEMORY_MS;
  }

  /**
   * Quarantines a device now: cut off at the broker and recorded at once (every millisecond lets more of a flood
   * in). A cut that could not be recorded is undone, so that no login stays cut with nothing to release it.
   */
  async quarantine(ueid: string, reason: string, now = Date.now()): Promise<QuarantineRow> {
    this.pending.add(ueid);
    try {
      const prev = await this.store.quarantineRecord(ueid);
      // Another node (or this one, before) may have quarantined it already: the same quarantine, not a new strike.
      const inForce = prev !== undefined && prev.releasedAt === null && prev.until > now;
      const row = inForce ? prev : nextQuarantine(prev, ueid, reason, now, this.policy);
      const [cut, recorded] = await Promise.allSettled([this.broker.quarantineDevice(ueid), inForce ? undefined : this.store.putQuarantine(row)]);
      if (recorded.status === 'rejected') {
        if (cut.status === 'fulfilled') await this.broker.releaseDevice(ueid).catch(() => {});
        throw recorded.reason;
      }
      // Recorded but not cut: the release when it ends is harmless, and the next failures try again.
      if (cut.status === 'rejected') throw cut.reason;
      if (this.cut.size >= this.maxDevices) this.cut.delete(this.cut.keys().next().value!);
      this.cut.delete(ueid);
      this.cut.set(ueid, Date.now());
      if (!inForce) this.hooks.onQuarantine?.(row);
      return row;
    } finally {
      this.pending.delete(ueid);
    }
  }

  /** Gives a device its login back and records the release; false when it was not quarantined. */
  async release(ueid: string, now = Date.now()): Promise<boolean> {
    const row = await this.store.quarantineRecord(ueid);
    if (!row || row.releasedAt !== null) return false;
    await this.broker.releaseDevice(ueid);
    await this.store.putQuarantine({ ...row, releasedAt: now });
    this.cut.delete(ueid);
    this.hooks.onRelease?.(ueid);
    return true;
  }

  /** Releases every quarantine that has ended (a failed release is tried again at the next sweep). */
  sweep(now = Date.now()): Promise<string[]> {
    this.sweeping ??= (async () => {
      const released: string[] = [];
      try {
        for (const row of await this.store.quarantines({ dueBy: now })) {
          try {
            if (await this.release(row.ueid, now)) released.push(row.ueid);
          } catch (e) {
            this.hooks.onError?.(e);
          }
        }
      } finally {
        this.sweeping = null;
      }
      return released;
    })();
    return this.sweeping;
  }

  /** Sweeps now and every `sweepMs`. */
  start(): void {
    if (this.timer) return;
    const tick = () => void this.sweep().catch((e: unknown) => this.hooks.onError?.(e));
    void this.broker.warm?.().catch((e: unknown) => this.hooks.onError?.(e));
    tick();
    this.timer = setInterval(tick, this.policy.sweepMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sweeping?.catch(() => {});
  }
}
