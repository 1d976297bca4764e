/**
 * A card or barcode scanner in HID keyboard mode: its boot keyboard reports decoded (keyboard.ts) to lines, read
 * from the device itself, so the counter gets an insurance card number or a prescription barcode without any window
 * having the focus. 'line' per line read; `nextLine(timeoutMs)` for one; 'vanished' when it is unplugged.
 */
import { EventEmitter } from 'node:events';
import { HidTimeoutError, HidVanishedError } from './errors.ts';
import { BootKeyboardDecoder, type LayoutName } from './keyboard.ts';
import type { HidBinding, HidPort, HidSelector } from './transport.ts';

export class CardScanner extends EventEmitter {
  private readonly decoder: BootKeyboardDecoder;
  private readonly lines: string[] = [];

  private constructor(private readonly port: HidPort, layout: LayoutName) {
    super();
    this.decoder = new BootKeyboardDecoder(layout);
    port.on('report', (r) => {
      for (const line of this.decoder.push(r)) {
        this.lines.push(line);
        this.emit('line', line);
      }
    });
    port.on('vanished', (e) => this.emit('vanished', e));
  }

  static async open(binding: HidBinding, selector: HidSelector, o: { layout?: LayoutName } = {}): Promise<CardScanner> {
    return new CardScanner(await binding.open(selector), o.layout ?? 'us');
  }

  /** The next line (queued ones first). */
  nextLine(timeoutMs: number): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (!this.port.isOpen) return Promise.reject(new HidVanishedError(this.port.info.path, 'the scanner is not connected'));
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(t);
        this.off('line', onLine);
        this.off('vanished', onGone);
      };
      const onLine = () => {
        done();
        resolve(this.lines.shift()!);
      };
      const onGone = (e: HidVanishedError) => {
        done();
        reject(e);
      };
      const t = setTimeout(() => {
        done();
        reject(new HidTimeoutError('card scanner', timeoutMs));
      }, timeoutMs);
      this.on('line', onLine);
      this.on('vanished', onGone);
    });
  }

  get malformedReports(): number {
    return this.decoder.malformed;
  }

  close(): Promise<void> {
    return this.port.close();
  }
}
