/**
 * The virtual card/barcode scanner: a boot keyboard (usage page 0x07) that types what it "reads", a key press and
 * a release per character at `reportsPerSecond` (scanners send ~500-1,000 reports/s), then Enter.
 */
import { typeReports, type LayoutName } from '../hid/keyboard.ts';
import { VirtualHidDevice } from './hid-binding.ts';

export class VirtualCardScanner extends VirtualHidDevice {
  private queue: Uint8Array[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(o: { path?: string; vendorId?: number; productId?: number; layout?: LayoutName; reportsPerSecond?: number } = {}) {
    super({ path: o.path ?? '/dev/hidraw-virtual-scanner0', vendorId: o.vendorId ?? 0x1209, productId: o.productId ?? 0xb1a6, manufacturer: 'biokiosk', product: 'Virtual card scanner', usagePage: 0x01, usage: 0x06, interface: 0 });
    this.layout = o.layout ?? 'us';
    this.intervalMs = 1000 / (o.reportsPerSecond ?? 1000);
  }

  layout: LayoutName;
  private readonly intervalMs: number;

  /** Types a line (Enter added); `raw` reports can be mixed in to test malformed input. */
  scan(text: string, o: { layout?: LayoutName; raw?: Uint8Array[] } = {}): void {
    this.queue.push(...(o.raw ?? []), ...typeReports(text, o.layout ?? this.layout));
    if (!this.timer) this.tick();
  }

  private tick(): void {
    this.timer = null;
    const r = this.queue.shift();
    if (!r || !this.plugged) return;
    this.emitReport(r);
    this.timer = setTimeout(() => this.tick(), this.intervalMs);
  }

  protected getFeature(): Uint8Array | null {
    return null;
  }

  protected setFeature(): boolean {
    return false;
  }
}
