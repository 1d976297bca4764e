/**
 * The node-hid binding. These machines have no /dev/hidraw* nor /dev/uhid, so: enumeration and "no such device"
 * run against the real node-hid (hidapi's hidraw backend); permission denied and a device that goes away cannot be
 * produced here, so the device side is played by an object of node-hid's HIDAsync shape, raising the errors
 * hidapi raises (messages as hidapi words them).
 */
import { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HidError, HidNotFoundError, HidPermissionError, HidVanishedError } from '../drivers/hid/errors.ts';
import { classifyOpenError, NodeHidBinding, type NodeHidDevice, type NodeHidModule } from '../drivers/hid/node-hid.ts';

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

describe('node-hid binding, real node-hid', () => {
  const binding = new NodeHidBinding();

  it('enumerates (no HID devices on this machine: an empty list, not an error)', async () => {
    const list = await binding.list();
    expect(Array.isArray(list)).toBe(true);
    for (const d of list) expect(typeof d.path).toBe('string');
  });

  it('refuses a vendor/product id no device has, and a path that does not exist, as not found', async () => {
    const a = await errorOf(binding.open({ vendorId: 0x1209, productId: 0xb1a5 }));
    expect(a).toBeInstanceOf(HidNotFoundError);
    expect((a as Error).message).toMatch(/vendor id 0x1209 and product id 0xb1a5/);
    const b = await errorOf(binding.open({ path: '/dev/hidraw-does-not-exist' }));
    expect(b).toBeInstanceOf(HidNotFoundError);
  });

  it('refuses a file that is not a HID device with a typed open error naming it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bk-hid-'));
    try {
      const path = join(dir, 'hidraw0');
      await writeFile(path, 'not a device');
      const e = await errorOf(binding.open({ path }));
      expect(e).toBeInstanceOf(HidError);
      expect((e as HidError).code).toBe('HidOpenFailed');
      expect((e as Error).message).toContain(path);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** A stand-in for the kernel device (see the file's comment). */
class FakeDevice extends EventEmitter implements NodeHidDevice {
  closed = false;
  failFeature = false;
  async close(): Promise<void> {
    this.closed = true;
  }
  async getFeatureReport(id: number, length: number): Promise<Buffer> {
    if (this.failFeature) throw new Error('could not get feature report from device: Input/output error');
    return Buffer.alloc(length, id);
  }
  async sendFeatureReport(data: number[] | Buffer): Promise<number> {
    return data.length;
  }
  async write(data: number[] | Buffer): Promise<number> {
    return data.length;
  }
}

function fakeModule(o: { openError?: string; device?: FakeDevice }): NodeHidModule {
  return {
    devicesAsync: async () => [{ vendorId: 0x1209, productId: 0xb1a5, path: '/dev/hidraw3', interface: 0, serialNumber: 'X1' }],
    HIDAsync: {
      open: (async () => {
        if (o.openError) throw new Error(o.openError);
        return o.device!;
      }) as NodeHidModule['HIDAsync']['open'],
    },
  };
}

describe('node-hid binding, error paths', () => {
  it('maps hidapi’s permission failure to HidPermissionError', async () => {
    const b = new NodeHidBinding(fakeModule({ openError: "cannot open device with path /dev/hidraw3: Failed to open a device with path '/dev/hidraw3': Permission denied" }));
    const e = await errorOf(b.open({ vendorId: 0x1209, productId: 0xb1a5 }));
    expect(e).toBeInstanceOf(HidPermissionError);
    expect((e as Error).message).toMatch(/udev rule/);
  });

  it('classifies the messages hidapi gives', () => {
    const sel = { path: '/dev/hidraw3' };
    expect(classifyOpenError(new Error("Failed to open a device with path '/dev/hidraw3': No such file or directory"), sel)).toBeInstanceOf(HidNotFoundError);
    expect(classifyOpenError(new Error('No HID devices with requested VID/PID found in the system.'), sel)).toBeInstanceOf(HidNotFoundError);
    expect(classifyOpenError(new Error('Operation not permitted'), sel)).toBeInstanceOf(HidPermissionError);
    expect(classifyOpenError(new Error('Inappropriate ioctl for device'), sel).code).toBe('HidOpenFailed');
  });

  it('delivers input reports, and turns a read error (device gone) into one vanished event', async () => {
    const device = new FakeDevice();
    const b = new NodeHidBinding(fakeModule({ device }));
    const port = await b.open({ vendorId: 0x1209, productId: 0xb1a5 });
    expect(port.info).toMatchObject({ path: '/dev/hidraw3', serialNumber: 'X1' });
    const reports: number[][] = [];
    const vanished: HidVanishedError[] = [];
    port.on('report', (r) => reports.push([...r]));
    port.on('vanished', (e) => vanished.push(e));
    device.emit('data', Buffer.from([0x11, 1, 2]));
    expect(reports).toEqual([[0x11, 1, 2]]);
    expect([...(await port.getFeatureReport(2, 4))]).toEqual([2, 2, 2, 2]);
    device.emit('error', new Error('could not read from HID device: No such device'));
    device.emit('error', new Error('again'));
    expect(vanished.length).toBe(1);
    expect(vanished[0]!.message).toMatch(/vanished: read failed: could not read/);
    expect(device.closed).toBe(true);
    expect(port.isOpen).toBe(false);
    await expect(port.sendFeatureReport(Uint8Array.of(4, 1))).rejects.toBeInstanceOf(HidVanishedError);
  });

  it('treats a failed feature request on an open handle as the device going away', async () => {
    const device = new FakeDevice();
    const port = await new NodeHidBinding(fakeModule({ device })).open({ path: '/dev/hidraw3' });
    const vanished = new Promise<HidVanishedError>((r) => port.on('vanished', r));
    device.failFeature = true;
    await expect(port.getFeatureReport(1, 64)).rejects.toBeInstanceOf(HidVanishedError);
    expect((await vanished).message).toMatch(/Input\/output error/);
  });
});
