/**
 * The node-hid binding (hidapi; on Linux its hidraw backend, /dev/hidraw*) behind the report transport.
 *
 * node-hid reports every open failure as one Error whose text carries hidapi's reason; this binding turns it into
 * the transport's typed errors: no such device (ENOENT, or no device with that vendor/product id) ->
 * HidNotFoundError, EACCES/EPERM -> HidPermissionError, anything else -> HidError('HidOpenFailed'). After opening,
 * any read error is the device going away (hidraw returns EIO/ENODEV on unplug): 'vanished' fires once and the
 * handle is closed.
 *
 * `hid` can be replaced (tests): these machines have no hidraw device, so the device side of the error paths is
 * played by an object with node-hid's HIDAsync shape (see test/hid-node-binding.test.ts).
 */
import { createRequire } from 'node:module';
import { HidError, HidNotFoundError, HidPermissionError, HidVanishedError } from './errors.ts';
import { describeSelector, PortEvents, type HidBinding, type HidDeviceInfo, type HidPort, type HidSelector } from './transport.ts';

/** The part of node-hid's HIDAsync used here. */
export interface NodeHidDevice {
  on(event: 'data', l: (data: Buffer) => void): unknown;
  on(event: 'error', l: (e: Error) => void): unknown;
  removeAllListeners(): unknown;
  close(): Promise<void>;
  getFeatureReport(id: number, length: number): Promise<Buffer>;
  sendFeatureReport(data: number[] | Buffer): Promise<number>;
  write(data: number[] | Buffer): Promise<number>;
}

export interface NodeHidModule {
  devicesAsync(): Promise<Array<{ vendorId: number; productId: number; path?: string; serialNumber?: string; manufacturer?: string; product?: string; usagePage?: number; usage?: number; interface: number }>>;
  HIDAsync: { open(path: string): Promise<NodeHidDevice>; open(vid: number, pid: number): Promise<NodeHidDevice> };
}

const require = createRequire(import.meta.url);

export function loadNodeHid(): NodeHidModule {
  try {
    return require('node-hid') as NodeHidModule;
  } catch (e) {
    throw new HidError('HidUnavailable', `node-hid cannot be loaded on this platform: ${(e as Error).message}`, { cause: e });
  }
}

/** hidapi's open failure text -> the transport's error. */
export function classifyOpenError(e: unknown, selector: HidSelector): HidError {
  const msg = e instanceof Error ? e.message : String(e);
  const where = 'path' in selector ? selector.path : describeSelector(selector);
  if (/permission denied|operation not permitted|EACCES|EPERM/i.test(msg)) return new HidPermissionError(where, e);
  if (/no such file|no HID devices? with|not found|ENOENT|ENODEV|no such device/i.test(msg)) return new HidNotFoundError(describeSelector(selector), { reason: msg });
  return new HidError('HidOpenFailed', `cannot open HID device ${describeSelector(selector)}: ${msg}`, { cause: e });
}

export class NodeHidBinding implements HidBinding {
  constructor(private readonly hid: NodeHidModule = loadNodeHid()) {}

  async list(): Promise<HidDeviceInfo[]> {
    const devices = await this.hid.devicesAsync();
    return devices
      .filter((d) => typeof d.path === 'string')
      .map((d) => ({
        path: d.path!,
        vendorId: d.vendorId,
        productId: d.productId,
        manufacturer: d.manufacturer,
        product: d.product,
        serialNumber: d.serialNumber,
        usagePage: d.usagePage,
        usage: d.usage,
        interface: d.interface,
      }));
  }

  async open(selector: HidSelector): Promise<HidPort> {
    let info: HidDeviceInfo;
    if ('path' in selector) {
      info = (await this.list()).find((d) => d.path === selector.path) ?? { path: selector.path, vendorId: 0, productId: 0 };
    } else {
      const match = (await this.list()).find((d) => d.vendorId === selector.vendorId && d.productId === selector.productId && (!selector.serialNumber || d.serialNumber === selector.serialNumber));
      if (!match) throw new HidNotFoundError(describeSelector(selector));
      info = match;
    }
    let dev: NodeHidDevice;
    try {
      // By path even when asked by id: with several identical devices, the one listed (and its serial) is the one opened.
      dev = await this.hid.HIDAsync.open(info.path);
    } catch (e) {
      throw classifyOpenError(e, selector);
    }
    return new NodeHidPort(info, dev);
  }
}

class NodeHidPort extends PortEvents implements HidPort {
  private open = true;

  constructor(readonly info: HidDeviceInfo, private readonly dev: NodeHidDevice) {
    super();
    dev.on('data', (data: Buffer) => {
      if (this.open) this.emit('report', new Uint8Array(data.buffer, data.byteOffset, data.length));
    });
    dev.on('error', (e: Error) => this.gone(`read failed: ${e.message}`, e));
  }

  get isOpen(): boolean {
    return this.open;
  }

  private gone(reason: string, cause?: unknown): void {
    if (!this.open) return;
    this.open = false;
    this.dev.removeAllListeners();
    // A late error from the dying handle must not become an unhandled 'error' event.
    this.dev.on('error', () => {});
    void this.dev.close().catch(() => {});
    this.emit('vanished', new HidVanishedError(this.info.path, reason, cause));
  }

  /** A failed call on an open handle means the device went away; the caller gets the same HidVanishedError. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (!this.open) throw new HidVanishedError(this.info.path, 'the port is closed');
    try {
      return await fn();
    } catch (e) {
      this.gone(`${what} failed: ${(e as Error).message}`, e);
      throw new HidVanishedError(this.info.path, `${what} failed: ${(e as Error).message}`, e);
    }
  }

  async getFeatureReport(reportId: number, length: number): Promise<Uint8Array> {
    const b = await this.call('get feature report', () => this.dev.getFeatureReport(reportId, length));
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  }

  async sendFeatureReport(data: Uint8Array): Promise<void> {
    await this.call('send feature report', () => this.dev.sendFeatureReport(Buffer.from(data)));
  }

  async write(data: Uint8Array): Promise<void> {
    await this.call('write', () => this.dev.write(Buffer.from(data)));
  }

  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    this.dev.removeAllListeners();
    await this.dev.close().catch(() => {});
    this.emit('vanished', new HidVanishedError(this.info.path, 'closed'));
  }
}
