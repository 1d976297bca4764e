import { describe, expect, it } from 'vitest';
import { CardScanner } from '../drivers/hid/card-scanner.ts';
import { HidTimeoutError, HidVanishedError } from '../drivers/hid/errors.ts';
import { BootKeyboardDecoder, KEY, MOD, typeReports } from '../drivers/hid/keyboard.ts';
import { VirtualHidBinding } from '../drivers/virtual/hid-binding.ts';
import { VirtualCardScanner } from '../drivers/virtual/hid-scanner.ts';

const report = (mods: number, ...keys: number[]) => Uint8Array.of(mods, 0, ...keys, ...new Array(6 - keys.length).fill(0));

describe('boot keyboard decoding', () => {
  it('types on key press, with shift, and ends a line at Enter', () => {
    const d = new BootKeyboardDecoder('us');
    const lines = [
      report(MOD.leftShift, 0x0b), report(0), // H
      report(0, 0x0c), report(0, 0x0c), report(0), // i (held across two reports: one character)
      report(MOD.rightShift, 0x1e), report(0), // !
      report(0, 0x59), report(0, 0x62), report(0), // keypad 1, 0
      report(0, KEY.enter), report(0),
    ].flatMap((r) => d.push(r));
    expect(lines).toEqual(['Hi!10']);
    expect(d.pending).toBe('');
  });

  it('reads the same keys on the German layout as a German host would (QWERTZ, AltGr)', () => {
    const d = new BootKeyboardDecoder('de');
    const keys = [report(0, 0x1c), report(0), report(0, 0x1d), report(0), report(MOD.leftShift, 0x24), report(0), report(MOD.rightAlt, 0x14), report(0), report(0, 0x33), report(0), report(0, KEY.keypadEnter)];
    expect(keys.flatMap((r) => d.push(r))).toEqual(['zy/@ö']);
    const us = new BootKeyboardDecoder('us');
    // US has no AltGr level: AltGr+Q types nothing there.
    expect(keys.flatMap((r) => us.push(r))).toEqual(['yz&;']);
  });

  it('handles backspace, rollover errors, a report id and malformed reports', () => {
    const d = new BootKeyboardDecoder();
    const out = [report(0, 0x04), report(0), report(0, 0x05), report(0), report(0, KEY.backspace), report(0), report(0, 1, 1, 1, 1, 1, 1), Uint8Array.of(1, 0, 0, 0x06, 0, 0, 0, 0, 0), Uint8Array.of(1, 2, 3), report(0), report(0, KEY.enter)].flatMap((r) => d.push(r));
    expect(out).toEqual(['ac']);
    expect(d.malformed).toBe(1);
  });

  it('round-trips every printable character of both layouts through typeReports', () => {
    const text = 'AZ az 09 -+=.,;:/#';
    for (const layout of ['us', 'de'] as const) {
      const d = new BootKeyboardDecoder(layout);
      expect(typeReports(text, layout).flatMap((r) => d.push(r))).toEqual([text]);
    }
    expect(() => typeReports('ü', 'us')).toThrow(/cannot be typed/);
  });
});

describe('card scanner on the virtual HID device', () => {
  it('reads lines (an insurance card number, a prescription barcode) and reports unplugging', async () => {
    const binding = new VirtualHidBinding();
    const device = binding.attach(new VirtualCardScanner({ layout: 'de', reportsPerSecond: 4000 }));
    const scanner = await CardScanner.open(binding, { path: device.info.path }, { layout: 'de' });
    device.scan('A123456789');
    device.scan('RX-2024/0815', { raw: [Uint8Array.of(9, 9)] });
    expect(await scanner.nextLine(2000)).toBe('A123456789');
    expect(await scanner.nextLine(2000)).toBe('RX-2024/0815');
    expect(scanner.malformedReports).toBe(1);
    await expect(scanner.nextLine(50)).rejects.toBeInstanceOf(HidTimeoutError);
    const pending = scanner.nextLine(2000);
    device.unplug();
    await expect(pending).rejects.toBeInstanceOf(HidVanishedError);
    await scanner.close();
  });
});
