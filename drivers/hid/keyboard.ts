/**
 * USB HID boot keyboard reports (usage page 0x07, Keyboard/Keypad) decoded to text: what barcode and card
 * scanners send. A report is 8 bytes: modifiers (bit 0 left Ctrl, 1 left Shift, 2 left Alt, 3 left GUI, 4-7 the
 * right ones; right Alt is AltGr), a reserved byte, and up to six usages of keys held down. A key types when it
 * appears in a report (not while held), so a scanner's press/release pairs give one character each; 0x01 in the
 * key slots is the keyboard's rollover error and is ignored. A line ends at Enter (0x28 or keypad 0x58).
 *
 * The scanner is set up for a keyboard layout, as a scanner is configured to emit the keys that type its text
 * on the host's layout: US and German (QWERTZ) here; the layout maps usages to characters.
 */
export type LayoutName = 'us' | 'de';

/** usage -> [plain, shift, altgr?] */
type Layout = Record<number, [string, string, string?]>;

function baseLayout(): Layout {
  const l: Layout = {};
  for (let i = 0; i < 26; i++) l[0x04 + i] = [String.fromCharCode(97 + i), String.fromCharCode(65 + i)];
  l[0x2c] = [' ', ' '];
  l[0x2b] = ['\t', '\t'];
  // Keypad (Num Lock assumed on, as scanners send it).
  l[0x54] = ['/', '/'];
  l[0x55] = ['*', '*'];
  l[0x56] = ['-', '-'];
  l[0x57] = ['+', '+'];
  for (let i = 0; i < 9; i++) l[0x59 + i] = [String(i + 1), String(i + 1)];
  l[0x62] = ['0', '0'];
  l[0x63] = ['.', '.'];
  return l;
}

const US: Layout = (() => {
  const l = baseLayout();
  const shifted = '!@#$%^&*()';
  for (let i = 0; i < 9; i++) l[0x1e + i] = [String(i + 1), shifted[i]!];
  l[0x27] = ['0', ')'];
  const rest: Array<[number, string, string]> = [
    [0x2d, '-', '_'], [0x2e, '=', '+'], [0x2f, '[', '{'], [0x30, ']', '}'], [0x31, '\\', '|'], [0x32, '#', '~'],
    [0x33, ';', ':'], [0x34, "'", '"'], [0x35, '`', '~'], [0x36, ',', '<'], [0x37, '.', '>'], [0x38, '/', '?'], [0x64, '\\', '|'],
  ];
  for (const [u, a, b] of rest) l[u] = [a, b];
  return l;
})();

const DE: Layout = (() => {
  const l = baseLayout();
  l[0x1c] = ['z', 'Z'];
  l[0x1d] = ['y', 'Y'];
  l[0x14] = ['q', 'Q', '@'];
  l[0x08] = ['e', 'E', '€'];
  l[0x10] = ['m', 'M', 'µ'];
  const shifted = '!"§$%&/()';
  for (let i = 0; i < 9; i++) l[0x1e + i] = [String(i + 1), shifted[i]!];
  l[0x1f] = ['2', '"', '²'];
  l[0x20] = ['3', '§', '³'];
  l[0x24] = ['7', '/', '{'];
  l[0x25] = ['8', '(', '['];
  l[0x26] = ['9', ')', ']'];
  l[0x27] = ['0', '=', '}'];
  const rest: Array<[number, string, string, string?]> = [
    [0x2d, 'ß', '?', '\\'], [0x2e, '´', '`'], [0x2f, 'ü', 'Ü'], [0x30, '+', '*', '~'], [0x31, '#', "'"], [0x32, '#', "'"],
    [0x33, 'ö', 'Ö'], [0x34, 'ä', 'Ä'], [0x35, '^', '°'], [0x36, ',', ';'], [0x37, '.', ':'], [0x38, '-', '_'], [0x64, '<', '>', '|'],
  ];
  for (const [u, a, b, c] of rest) l[u] = c === undefined ? [a, b] : [a, b, c];
  return l;
})();

export const LAYOUTS: Record<LayoutName, Layout> = { us: US, de: DE };

export const KEY = Object.freeze({ enter: 0x28, keypadEnter: 0x58, backspace: 0x2a, escape: 0x29, rollover: 0x01 });
export const MOD = Object.freeze({ leftCtrl: 0x01, leftShift: 0x02, leftAlt: 0x04, rightCtrl: 0x10, rightShift: 0x20, rightAlt: 0x40 });

export class BootKeyboardDecoder {
  private held = new Set<number>();
  private line = '';
  /** Reports that were not 8-byte boot reports (or 9 with a report id), counted and skipped. */
  malformed = 0;

  constructor(private readonly layout: LayoutName = 'us') {
    if (!LAYOUTS[layout]) throw new RangeError(`unknown keyboard layout ${layout} (${Object.keys(LAYOUTS).join(', ')})`);
  }

  /** The text typed since the last Enter. */
  get pending(): string {
    return this.line;
  }

  /** Feeds one report; returns the lines it completed (usually none or one). */
  push(report: Uint8Array): string[] {
    // A boot report is 8 bytes; on a composite device it may come with a report id first.
    const r = report.length === 9 ? report.subarray(1) : report;
    if (r.length !== 8) {
      this.malformed++;
      return [];
    }
    const keys = [...r.subarray(2)].filter((k) => k !== 0);
    if (keys.some((k) => k === KEY.rollover)) return [];
    const mods = r[0]!;
    const shift = (mods & (MOD.leftShift | MOD.rightShift)) !== 0;
    const altGr = (mods & MOD.rightAlt) !== 0 || ((mods & (MOD.leftCtrl | MOD.rightCtrl)) !== 0 && (mods & MOD.leftAlt) !== 0);
    const ctrlOrAlt = !altGr && (mods & (MOD.leftCtrl | MOD.rightCtrl | MOD.leftAlt)) !== 0;
    const lines: string[] = [];
    const layout = LAYOUTS[this.layout];
    for (const k of keys) {
      if (this.held.has(k)) continue;
      if (k === KEY.enter || k === KEY.keypadEnter) {
        lines.push(this.line);
        this.line = '';
      } else if (k === KEY.backspace) this.line = this.line.slice(0, -1);
      else if (k === KEY.escape) this.line = '';
      else if (!ctrlOrAlt) {
        const entry = layout[k];
        const ch = entry ? (altGr ? entry[2] : shift ? entry[1] : entry[0]) : undefined;
        if (ch !== undefined) this.line += ch;
      }
    }
    this.held = new Set(keys);
    return lines;
  }
}

/** The reports a scanner sends to type `text` (then Enter) on `layout`: press, release per character. */
export function typeReports(text: string, layout: LayoutName = 'us', enter = true): Uint8Array[] {
  const l = LAYOUTS[layout];
  const reverse = new Map<string, [number, number]>();
  for (const [u, [a, b, c]] of Object.entries(l)) {
    const usage = Number(u);
    if (usage >= 0x54 && usage <= 0x63) continue; // prefer the main keys
    if (!reverse.has(a)) reverse.set(a, [usage, 0]);
    if (!reverse.has(b)) reverse.set(b, [usage, MOD.leftShift]);
    if (c !== undefined && !reverse.has(c)) reverse.set(c, [usage, MOD.rightAlt]);
  }
  const out: Uint8Array[] = [];
  const release = new Uint8Array(8);
  for (const ch of text) {
    const k = reverse.get(ch);
    if (!k) throw new RangeError(`character ${JSON.stringify(ch)} cannot be typed on the ${layout} layout`);
    out.push(Uint8Array.of(k[1], 0, k[0], 0, 0, 0, 0, 0), release);
  }
  if (enter) out.push(Uint8Array.of(0, 0, KEY.enter, 0, 0, 0, 0, 0), release);
  return out;
}
