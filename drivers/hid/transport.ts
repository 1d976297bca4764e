/**
 * The report transport every HID driver here is written against (the idea of serialport's bindings, applied to
 * HID): a binding lists and opens devices; a port gets and sends feature reports, delivers input reports, closes,
 * and says when the device vanished. The node-hid binding (node-hid.ts) and the virtual devices
 * (drivers/virtual/hid-binding.ts) keep the same rules:
 *
 * - reports are byte arrays whose first byte is the report id (0 when the device uses none, as boot keyboards);
 * - `close()` ends the input stream; pending `next()` calls reject with HidVanishedError('closed');
 * - any failure of the device after opening is a disconnect: 'vanished' fires once, then the port is dead;
 * - open errors are typed: HidNotFoundError, HidPermissionError.
 */
import { EventEmitter } from 'node:events';
import { HidTimeoutError, HidVanishedError } from './errors.ts';

export interface HidDeviceInfo {
  path: string;
  vendorId: number;
  productId: number;
  manufacturer?: string;
  product?: string;
  serialNumber?: string;
  usagePage?: number;
  usage?: number;
  interface?: number;
}

export type HidSelector = { path: string } | { vendorId: number; productId: number; serialNumber?: string };

export interface HidPort {
  readonly info: HidDeviceInfo;
  readonly isOpen: boolean;
  getFeatureReport(reportId: number, length: number): Promise<Uint8Array>;
  /** `data[0]` is the report id. */
  sendFeatureReport(data: Uint8Array): Promise<void>;
  /** Output report (`data[0]` the report id). */
  write(data: Uint8Array): Promise<void>;
  /** Input reports as they arrive, and the one 'vanished' event (with its HidVanishedError). */
  on(event: 'report', listener: (report: Uint8Array) => void): this;
  on(event: 'vanished', listener: (error: HidVanishedError) => void): this;
  off(event: 'report', listener: (report: Uint8Array) => void): this;
  off(event: 'vanished', listener: (error: HidVanishedError) => void): this;
  close(): Promise<void>;
}

export interface HidBinding {
  list(): Promise<HidDeviceInfo[]>;
  open(selector: HidSelector): Promise<HidPort>;
}

export function describeSelector(s: HidSelector): string {
  return 'path' in s ? `at ${s.path}` : `with vendor id 0x${hex4(s.vendorId)} and product id 0x${hex4(s.productId)}${s.serialNumber ? ` and serial ${s.serialNumber}` : ''}`;
}

export function hex4(v: number): string {
  return v.toString(16).padStart(4, '0');
}

/**
 * Input reports as a pull stream: a bounded queue filled by the port's 'report' events; `next(timeoutMs)` gives the
 * next report or rejects with HidTimeoutError (a stalled stream) or HidVanishedError (unplugged or closed).
 */
export class ReportStream {
  private readonly queue: Uint8Array[] = [];
  private waiter: { resolve: (r: Uint8Array) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  private ended: HidVanishedError | null = null;
  /** Reports dropped because the reader fell behind by more than `limit`. */
  overflowed = 0;
  private readonly onReport = (r: Uint8Array) => this.push(r);
  private readonly onVanished = (e: HidVanishedError) => this.end(e);

  constructor(private readonly port: HidPort, private readonly limit = 4096) {
    port.on('report', this.onReport);
    port.on('vanished', this.onVanished);
  }

  private push(r: Uint8Array): void {
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      clearTimeout(w.timer);
      w.resolve(r);
      return;
    }
    if (this.queue.length >= this.limit) {
      this.queue.shift();
      this.overflowed++;
    }
    this.queue.push(r);
  }

  /** Forgets queued reports (before a new transfer). */
  clear(): void {
    this.queue.length = 0;
  }

  next(timeoutMs: number, what = 'input report'): Promise<Uint8Array> {
    const r = this.queue.shift();
    if (r) return Promise.resolve(r);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new HidTimeoutError(what, timeoutMs, { path: this.port.info.path }));
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  end(e: HidVanishedError = new HidVanishedError(this.port.info.path, 'the stream was closed')): void {
    if (this.ended) return;
    this.ended = e;
    this.port.off('report', this.onReport);
    this.port.off('vanished', this.onVanished);
    const w = this.waiter;
    this.waiter = null;
    if (w) {
      clearTimeout(w.timer);
      w.reject(e);
    }
  }
}

/** A port's shared event plumbing (used by both bindings). */
export class PortEvents extends EventEmitter {}
