/**
 * Evaluation datasets: a folder of images named `{identity}_{sample}.{ext}` (identity = everything before the last
 * `_`; FVC's `1_1.tif` fits), or a CSV of `path,identity` (paths relative to the CSV's folder; a header row is
 * recognised; fields may be quoted). Files that do not fit the naming are listed as skipped, never ignored silently.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { UsageError } from '../../protocol/errors.ts';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.pgm', '.ppm', '.pnm', '.pbm'];

export interface DatasetItem {
  path: string;
  identity: string;
  /** Name within the identity (the part after the last `_`, or the CSV row number). */
  sample: string;
}

export interface Dataset {
  name: string;
  items: DatasetItem[];
  skipped: Array<{ path: string; reason: string }>;
  identities: number;
}

export async function loadDataset(path: string): Promise<Dataset> {
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new UsageError(`dataset ${path} does not exist`);
  }
  const ds = st.isDirectory() ? await fromFolder(path) : await fromCsv(path);
  if (ds.items.length === 0) throw new UsageError(`dataset ${path} has no usable images${ds.skipped.length ? ` (${ds.skipped.length} files skipped: ${ds.skipped[0]!.reason})` : ''}`);
  if (ds.identities < 2) throw new UsageError(`dataset ${path} has ${ds.identities} identity; impostor pairs need at least 2`);
  return ds;
}

/** Splits `alice_smith_03.jpg` into identity `alice_smith`, sample `03`; null when there is no `_`. */
export function parseName(file: string): { identity: string; sample: string } | null {
  const stem = basename(file, extname(file));
  const cut = stem.lastIndexOf('_');
  if (cut <= 0 || cut === stem.length - 1) return null;
  return { identity: stem.slice(0, cut), sample: stem.slice(cut + 1) };
}

async function fromFolder(dir: string): Promise<Dataset> {
  const items: DatasetItem[] = [];
  const skipped: Dataset['skipped'] = [];
  const names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name).sort(naturalCompare);
  for (const name of names) {
    const path = join(dir, name);
    if (!IMAGE_EXTENSIONS.includes(extname(name).toLowerCase())) {
      skipped.push({ path, reason: `not an image extension (${IMAGE_EXTENSIONS.join(' ')})` });
      continue;
    }
    const parsed = parseName(name);
    if (!parsed) {
      skipped.push({ path, reason: 'name is not {identity}_{sample}.{ext}' });
      continue;
    }
    items.push({ path, ...parsed });
  }
  return { name: basename(resolve(dir)), items, skipped, identities: new Set(items.map((i) => i.identity)).size };
}

async function fromCsv(file: string): Promise<Dataset> {
  // Spreadsheet programs save CSV with a UTF-8 byte-order mark; without this the header row would read as data.
  const text = (await readFile(file, 'utf8')).replace(/^\uFEFF/, '');
  const base = dirname(resolve(file));
  const items: DatasetItem[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const fields = parseCsvLine(line, i + 1, file);
    if (fields.length !== 2) throw new UsageError(`${file} line ${i + 1}: expected 2 fields (path,identity), got ${fields.length}`);
    const [p, identity] = fields as [string, string];
    if (i === 0 && p.toLowerCase() === 'path' && identity.toLowerCase() === 'identity') return;
    if (!p || !identity) throw new UsageError(`${file} line ${i + 1}: empty path or identity`);
    items.push({ path: resolve(base, p), identity, sample: String(i + 1) });
  });
  return { name: basename(file), items, skipped: [], identities: new Set(items.map((i) => i.identity)).size };
}

export function parseCsvLine(line: string, lineNo: number, file: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let v = '';
      i++;
      for (;;) {
        if (i >= line.length) throw new UsageError(`${file} line ${lineNo}: unterminated quoted field`);
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            v += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        v += line[i++];
      }
      out.push(v);
      if (i < line.length && line[i] !== ',') throw new UsageError(`${file} line ${lineNo}: text after a quoted field`);
      i++;
    } else {
      const end = line.indexOf(',', i);
      const stop = end < 0 ? line.length : end;
      out.push(line.slice(i, stop).trim());
      i = stop + 1;
    }
  }
  return out;
}

function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, undefined, { numeric: true });
}
