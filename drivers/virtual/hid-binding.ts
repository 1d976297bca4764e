/**
 * Virtual HID devices behind the report transport (drivers/hid/transport.ts), with the rules the node-hid binding
 * keeps: reports carry their id first, a closed port delivers nothing, an unplugged device makes every open port
 * emit 'vanished' once and cannot be opened (HidNotFoundError) until it is plugged in again, and a device marked
 * `permission: 'denied'` refuses to open with HidPermissionError, as a hidraw node without a udev rule does.
 *
 * Devices run in the test's process, paced by their own clock (report rate), so the drivers above the transport
 * meet the same timing a USB device gives them. (The fingerprint module's virtual device is a process behind a
 * pty because the serial stack it exercises is the kernel's; here the binding is the boundary.)
 */
import { EventEmitter } from 'node:events';
import { HidNotFoundError, HidPermissionError, HidVanishedError } from '../hid/errors.ts';
import { describeSelector, type HidBinding, type HidDeviceInfo, type HidPort, type HidSelector } from '../hid/transport.ts';

export abstract class VirtualHidDevice {
  readonly info: HidDeviceInfo;
  plugged = true;
  permission: 'granted' | 'denied' = 'granted';
  private readonly ports = new Set<VirtualHidPort>();

  constructor(info: HidDeviceInfo) {
    this.info = info;
  }

  /** Device side: answer a feature report get (`null`: the device stalls the control request). */
  protected abstract getFeature(reportId: number, length: number): Uint8Array | null;
  protected abstract setFeature(data: Uint8Array): boolean;
  protected onOutput(_data: Uint8Array): void {}
  /** Called when the last port closes or the device is unplugged. */
  protected onIdle(): void {}

  /** Sends one input report to every open port. */
  protected emitReport(r: Uint8Array): void {
    for (const p of this.ports) p.deliver(r);
  }

  protected get hasOpenPorts(): boolean {
    return this.ports.size > 0;
  }

  unplug(): void {
    if (!this.plugged) return;
    this.plugged = false;
    for (const p of [...this.ports]) p.vanish('the device was unplugged');
    this.ports.clear();
    this.onIdle();
  }

  plugIn(): void {
    this.plugged = true;
  }

  /** @internal */
  connect(): VirtualHidPort {
    const p = new VirtualHidPort(this, {
      get: (id, len) => this.getFeature(id, len),
      set: (d) => this.setFeature(d),
      write: (d) => this.onOutput(d),
      closed: (port) => {
        this.ports.delete(port);
        if (this.ports.size === 0) this.onIdle();
      },
    });
    this.ports.add(p);
    return p;
  }
}

interface PortHooks {
  get(id: number, len: number): Uint8Array | null;
  set(d: Uint8Array): boolean;
  write(d: Uint8Array): void;
  closed(p: VirtualHidPort): void;
}

export class VirtualHidPort extends EventEmitter implements HidPort {
  private open = true;

  constructor(private readonly device: VirtualHidDevice, private readonly hooks: PortHooks) {
    super();
  }

  get info(): HidDeviceInfo {
    return this.device.info;
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** @internal */
  deliver(r: Uint8Array): void {
    if (this.open) this.emit('report', r.slice());
  }

  /** @internal */
  vanish(reason: string): void {
    if (!this.open) return;
    this.open = false;
    this.emit('vanished', new HidVanishedError(this.info.path, reason));
  }

  private check(): void {
    if (!this.open) throw new HidVanishedError(this.info.path, 'the port is closed');
  }

  async getFeatureReport(reportId: number, length: number): Promise<Uint8Array> {
    this.check();
    const r = this.hooks.get(reportId, length);
    if (!r) throw new HidVanishedError(this.info.path, `get feature report 0x${reportId.toString(16)} failed: the device stalled the request`);
    return r.slice(0, length);
  }

  async sendFeatureReport(data: Uint8Array): Promise<void> {
    this.check();
    if (!this.hooks.set(data.slice())) throw new HidVanishedError(this.info.path, `send feature report 0x${(data[0] ?? 0).toString(16)} failed: the device stalled the request`);
  }

  async write(data: Uint8Array): Promise<void> {
    this.check();
    this.hooks.write(data.slice());
  }

  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    this.hooks.closed(this);
    this.emit('vanished', new HidVanishedError(this.info.path, 'closed'));
  }
}

export class VirtualHidBinding implements HidBinding {
  readonly devices: VirtualHidDevice[] = [];

  attach<T extends VirtualHidDevice>(d: T): T {
    this.devices.push(d);
    return d;
  }

  async list(): Promise<HidDeviceInfo[]> {
    return this.devices.filter((d) => d.plugged).map((d) => ({ ...d.info }));
  }

  async open(selector: HidSelector): Promise<HidPort> {
    const d = this.devices.find((x) =>
      x.plugged && ('path' in selector ? x.info.path === selector.path : x.info.vendorId === selector.vendorId && x.info.productId === selector.productId && (!selector.serialNumber || x.info.serialNumber === selector.serialNumber)),
    );
    if (!d) throw new HidNotFoundError(describeSelector(selector));
    if (d.permission === 'denied') throw new HidPermissionError(d.info.path);
    return d.connect();
  }
}
