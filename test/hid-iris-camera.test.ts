import { describe, expect, it } from 'vitest';
import { HidNotFoundError, HidPermissionError, HidProtocolError, HidTimeoutError, HidVanishedError } from '../drivers/hid/errors.ts';
import { IrisCamera } from '../drivers/hid/iris-camera.ts';
import { CHUNK_BYTES, descriptorReportSizes, ImageAssembler, imageReports, REPORT, REPORT_DESCRIPTOR, REPORT_LENGTH } from '../drivers/hid/iris-protocol.ts';
import { VirtualHidBinding } from '../drivers/virtual/hid-binding.ts';
import { VirtualIrisCamera, type GrayFrame } from '../drivers/virtual/hid-iris-camera.ts';

/** The error a promise rejects with (success fails the test). */
async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

function frame(width: number, height: number, seed: number): GrayFrame {
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return { width, height, data };
}

async function rig(images = [frame(320, 240, 1), frame(320, 240, 2)]) {
  const binding = new VirtualHidBinding();
  const device = binding.attach(new VirtualIrisCamera({ images, reportRate: 20_000 }));
  const camera = await IrisCamera.open(binding, { stallMs: 200, reopenIntervalMs: 20 });
  return { binding, device, camera };
}

describe('iris camera protocol', () => {
  it('has a report descriptor whose report sizes are the codec’s', () => {
    const sizes = descriptorReportSizes(REPORT_DESCRIPTOR);
    expect(sizes.get('feature:1')).toBe(REPORT_LENGTH.deviceInfo);
    expect(sizes.get('feature:2')).toBe(REPORT_LENGTH.illumination);
    expect(sizes.get('feature:3')).toBe(REPORT_LENGTH.exposure);
    expect(sizes.get('feature:4')).toBe(REPORT_LENGTH.capture);
    expect(sizes.get('input:16')).toBe(REPORT_LENGTH.imageBegin);
    expect(sizes.get('input:17')).toBe(1024);
    expect(sizes.get('input:18')).toBe(REPORT_LENGTH.imageEnd);
  });

  it('reassembles an image from its reports and names each kind of damage', () => {
    const img = frame(100, 50, 3);
    const reports = imageReports(7, 100, 50, img.data);
    expect(reports.length).toBe(2 + Math.ceil(5000 / CHUNK_BYTES));
    const a = new ImageAssembler();
    let out = null;
    for (const r of reports) out = a.push(r) ?? out;
    expect(out?.seq).toBe(7);
    expect(Buffer.from(out!.data).equals(Buffer.from(img.data))).toBe(true);

    const fault = (mutate: (r: Uint8Array[]) => Uint8Array[]) => {
      const asm = new ImageAssembler();
      try {
        for (const r of mutate(imageReports(1, 100, 50, img.data).map((x) => x.slice()))) asm.push(r);
      } catch (e) {
        return e as HidProtocolError;
      }
      return null;
    };
    expect(fault((r) => [...r.slice(0, 2), ...r.slice(3)])?.fault).toBe('lost');
    expect(fault((r) => [...r.slice(0, 3), r[2]!, ...r.slice(3)])?.fault).toBe('repeated');
    expect(fault((r) => [r[0]!, r[2]!, r[1]!, ...r.slice(3)])?.fault).toBe('reordered');
    expect(fault((r) => ((r[r.length - 1]![4]! ^= 1), r))?.fault).toBe('crc');
    expect(fault((r) => [r[0]!, r[1]!.subarray(0, 5), ...r.slice(2)])?.fault).toBe('length');
    expect(fault((r) => [r[0]!, ...r.slice(1, 3), ...imageReports(2, 100, 50, img.data)])?.fault).toBe('interrupted');
    expect(fault((r) => [Uint8Array.of(REPORT.imageBegin, 0, 0, 10, 0, 10, 0, 1, 0, 99, 0, 0, 0)])?.fault).toBe('malformed');
    expect(fault((r) => [r[0]!, Uint8Array.of(0x7f, 1, 2)])?.fault).toBe('malformed');
  });
});

describe('iris camera over the virtual HID device', () => {
  it('reads the device info, sets illumination and exposure, captures images', async () => {
    const { camera, device } = await rig();
    try {
      expect(await camera.info()).toMatchObject({ make: 'biokiosk', model: 'virtual-nir-1', serial: 'VIRT-0001', firmware: '1.2.3', maxWidth: 320, maxHeight: 240 });
      await camera.setIllumination({ level: 80, wavelengthNm: 850 });
      expect(await camera.getIllumination()).toEqual({ level: 80, wavelengthNm: 850 });
      await camera.setExposure({ microseconds: 12_000, gain: 20 });
      expect(await camera.getExposure()).toEqual({ microseconds: 12_000, gain: 20 });
      const a = await camera.capture();
      const b = await camera.capture();
      expect([a.width, a.height, a.dropped]).toEqual([320, 240, 0]);
      expect(Buffer.from(a.data).equals(Buffer.from(frame(320, 240, 1).data))).toBe(true);
      // The camera streams on until the stop arrives: the second capture is a later image of the stream.
      expect(b.seq).toBeGreaterThan(a.seq);
      expect([1, 2].some((k) => Buffer.from(b.data).equals(Buffer.from(frame(320, 240, k).data)))).toBe(true);
      expect(device.isStreaming).toBe(false);
      expect((await camera.captureState()).streaming).toBe(false);
      await expect(camera.setIllumination({ level: 101, wavelengthNm: 850 })).rejects.toThrow(RangeError);
    } finally {
      await camera.close();
    }
  });

  for (const f of [{ type: 'drop', index: 10 }, { type: 'duplicate', index: 3 }, { type: 'reorder', index: 5 }, { type: 'badCrc' }] as const) {
    it(`detects a ${f.type} fault and retries with the next image`, async () => {
      const { camera, device } = await rig();
      try {
        device.arm(f);
        const retries: HidProtocolError[] = [];
        camera.on('retry', (e) => retries.push(e));
        const img = await camera.capture();
        expect(img.dropped).toBe(1);
        expect(retries[0]!.fault).toBe({ drop: 'lost', duplicate: 'repeated', reorder: 'reordered', badCrc: 'crc' }[f.type]);
        // The damaged image was the first; the one delivered is the second, intact.
        expect(Buffer.from(img.data).equals(Buffer.from(frame(320, 240, 2).data))).toBe(true);
      } finally {
        await camera.close();
      }
    });
  }

  it('gives up after the retries with the last fault', async () => {
    const { camera, device } = await rig();
    try {
      for (let i = 0; i < 3; i++) device.arm({ type: 'badCrc' });
      // Faults apply to the next image each: arm them one image at a time through retries = 0.
      const e = await rejectionOf(camera.capture({ retries: 0 }));
      expect(e).toBeInstanceOf(HidProtocolError);
      expect((e as HidProtocolError).fault).toBe('crc');
    } finally {
      await camera.close();
    }
  });

  it('times out on a stalled stream with a typed error, and captures again afterwards', async () => {
    const { camera, device } = await rig();
    try {
      device.arm({ type: 'stall', afterReports: 40 });
      const e = await rejectionOf(camera.capture());
      expect(e).toBeInstanceOf(HidTimeoutError);
      expect((e as Error).message).toMatch(/stalled: no report within 200 ms/);
      expect(device.isStreaming).toBe(false);
      expect((await camera.capture()).width).toBe(320);
    } finally {
      await camera.close();
    }
  });

  it('survives an unplug mid-image: the capture fails as vanished, the camera comes back on replug', async () => {
    const { camera, device, binding } = await rig();
    try {
      device.arm({ type: 'unplug', afterReports: 50 });
      const vanished = new Promise((r) => camera.once('vanished', r));
      const e = await rejectionOf(camera.capture());
      expect(e).toBeInstanceOf(HidVanishedError);
      await vanished;
      expect(await binding.list()).toEqual([]);
      // While unplugged a call tries one reopen, then fails.
      expect(await rejectionOf(camera.info())).toBeInstanceOf(HidVanishedError);
      device.plugIn();
      await camera.waitUntilReturned(2000);
      expect((await camera.capture()).width).toBe(320);
      expect(camera.stats.reopens).toBeGreaterThanOrEqual(1);
    } finally {
      await camera.close();
    }
  });

  it('opens by path, refuses missing devices and devices without permission with typed errors', async () => {
    const binding = new VirtualHidBinding();
    const device = binding.attach(new VirtualIrisCamera({ images: [frame(64, 64, 1)] }));
    expect(await rejectionOf(IrisCamera.open(binding, { selector: { path: '/dev/hidraw9' } }))).toBeInstanceOf(HidNotFoundError);
    const cam = await IrisCamera.open(binding, { selector: { path: device.info.path } });
    expect((await cam.capture()).width).toBe(64);
    await cam.close();
    device.permission = 'denied';
    expect(await rejectionOf(IrisCamera.open(binding))).toBeInstanceOf(HidPermissionError);
  });
});
