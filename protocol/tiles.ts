/**
 * C2SP tlog-tiles: how the audit log is published so that a third party (a witness, an auditor, a monitor) can
 * read it with standard tools. Paths and the reading side; the server is verifier/log-server.ts.
 *
 * SPEC: https://c2sp.org/tlog-tiles
 * - `/checkpoint`: the latest checkpoint note;
 * - `/tile/<L>/<N>[.p/<W>]`: the hashes at tree level 8L with indexes N*256 .. N*256+255, 32 bytes each (a
 *   partial tile, at the tree's right edge, has its first W);
 * - `/tile/entries/<N>[.p/<W>]`: the entries (leaf data) of leaves N*256 .., each a big-endian uint16 length
 *   and the bytes. Our entries are the 32-byte commitments SHA-256(salt || record), never records.
 * N is written in groups of three digits, all but the last prefixed with `x`: 1234067 -> x001/x234/067.
 */
import { BiokioskError } from './errors.ts';
import { HASH_BYTES, leafHash, nodeHash, perfectSubtrees, rootOf } from './merkle.ts';

export const TILE_WIDTH = 256;
export const TILE_HEIGHT = 8;

export class TilePathError extends BiokioskError {
  constructor(message: string) {
    super('BadTilePath', message, { kind: 'input' });
  }
}

/** N as path elements: 1234067 -> "x001/x234/067". */
export function encodeTileIndex(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new TilePathError(`a tile index is a non-negative integer, got ${n}`);
  const groups: string[] = [];
  let rest = n;
  do {
    groups.unshift(String(rest % 1000).padStart(3, '0'));
    rest = Math.floor(rest / 1000);
  } while (rest > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
}

export type TileRef = { kind: 'hashes'; level: number; index: number; width: number } | { kind: 'entries'; index: number; width: number };

/** Parses a request path under /tile/ ("0/x001/234", "entries/005.p/17", "1/000"); width 256 for a full tile. */
export function parseTilePath(path: string): TileRef {
  const parts = path.split('/');
  if (parts.length < 2 || parts.length > 12) throw new TilePathError(`not a tile path: ${path.slice(0, 80)}`);
  const head = parts.shift()!;
  let width = TILE_WIDTH;
  let last = parts[parts.length - 1]!;
  const partial = last.match(/^(\d{3})\.p$/);
  if (parts.length >= 2 && /^\d{1,3}$/.test(last) && /^\d{3}\.p$/.test(parts[parts.length - 2]!)) {
    // "... /067.p/17": the width is the element after "N.p".
    width = Number(last);
    if (String(width) !== last || width < 1 || width >= TILE_WIDTH) throw new TilePathError(`a partial tile's width is 1..255 without leading zeroes, got ${last}`);
    parts.pop();
    last = parts[parts.length - 1]!;
    parts[parts.length - 1] = last.slice(0, 3);
  } else if (partial) {
    throw new TilePathError('a partial tile path ends in .p/<width>');
  }
  let index = 0;
  parts.forEach((p, i) => {
    const final = i === parts.length - 1;
    const m = final ? /^(\d{3})$/.exec(p) : /^x(\d{3})$/.exec(p);
    if (!m) throw new TilePathError(`tile index element ${JSON.stringify(p)} is not ${final ? 'three digits' : 'x and three digits'}`);
    index = index * 1000 + Number(m[1]);
  });
  if (!Number.isSafeInteger(index)) throw new TilePathError('tile index too large');
  if (head === 'entries') return { kind: 'entries', index, width };
  if (!/^(0|[1-9]\d?)$/.test(head) || Number(head) > 63) throw new TilePathError(`tile level ${JSON.stringify(head)} is not 0..63`);
  return { kind: 'hashes', level: Number(head), index, width };
}

export function tilePath(t: TileRef): string {
  const base = t.kind === 'entries' ? `tile/entries/${encodeTileIndex(t.index)}` : `tile/${t.level}/${encodeTileIndex(t.index)}`;
  return t.width === TILE_WIDTH ? base : `${base}.p/${t.width}`;
}

/** How many hashes tree level `level` has complete in a tree of `size` leaves. */
export function hashesAtLevel(size: number, level: number): number {
  return Math.floor(size / 2 ** level);
}

/** Encodes entries as an entry bundle (uint16 length-prefixed). */
export function encodeEntryBundle(entries: readonly Uint8Array[]): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(e.length, 0);
    out.push(len, Buffer.from(e));
  }
  return Buffer.concat(out);
}

export function decodeEntryBundle(bytes: Uint8Array): Buffer[] {
  const b = Buffer.from(bytes);
  const out: Buffer[] = [];
  for (let o = 0; o < b.length; ) {
    if (o + 2 > b.length) throw new TilePathError('an entry bundle ends inside a length');
    const n = b.readUInt16BE(o);
    if (o + 2 + n > b.length) throw new TilePathError('an entry bundle ends inside an entry');
    out.push(b.subarray(o + 2, o + 2 + n));
    o += 2 + n;
  }
  return out;
}

/** Fetches a tile's bytes (e.g. over HTTP from a log's tiles server). */
export type TileFetch = (path: string) => Promise<Uint8Array>;

/**
 * The root of the tree of `size` leaves, from tiles: each perfect subtree of the tree's decomposition is read
 * from the tile at the nearest tree level at or below it (a multiple of 8), hashing at most 255 hashes up. What
 * a reader checks a checkpoint's root against.
 */
export async function rootFromTiles(size: number, fetchTile: TileFetch): Promise<Buffer> {
  if (size === 0) return rootOf([]);
  const cache = new Map<string, Buffer[]>();
  const tile = async (level: number, index: number): Promise<Buffer[]> => {
    const available = hashesAtLevel(size, level * TILE_HEIGHT) - index * TILE_WIDTH;
    const width = Math.min(TILE_WIDTH, available);
    const ref: TileRef = { kind: 'hashes', level, index, width };
    const key = tilePath(ref);
    let hashes = cache.get(key);
    if (!hashes) {
      const bytes = Buffer.from(await fetchTile(key));
      if (bytes.length !== width * HASH_BYTES) throw new TilePathError(`${key} has ${bytes.length} bytes, not ${width * HASH_BYTES}`);
      hashes = [];
      for (let i = 0; i < width; i++) hashes.push(bytes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
      cache.set(key, hashes);
    }
    return hashes;
  };
  const subtree = async (level: number, index: number): Promise<Buffer> => {
    const tl = Math.floor(level / TILE_HEIGHT);
    const span = 2 ** (level - tl * TILE_HEIGHT); // hashes at the tile level under this subtree
    const first = index * span;
    const t = await tile(tl, Math.floor(first / TILE_WIDTH));
    const offset = first % TILE_WIDTH;
    let row = t.slice(offset, offset + span);
    if (row.length !== span) throw new TilePathError(`the tile at level ${tl} lacks hashes for subtree ${index} at level ${level}`);
    while (row.length > 1) {
      const up: Buffer[] = [];
      for (let i = 0; i < row.length; i += 2) up.push(nodeHash(row[i]!, row[i + 1]!));
      row = up;
    }
    return row[0]!;
  };
  const roots: Buffer[] = [];
  for (const id of perfectSubtrees(size)) roots.push(await subtree(id.level, id.index));
  let r = roots[roots.length - 1]!;
  for (let i = roots.length - 2; i >= 0; i--) r = nodeHash(roots[i]!, r);
  return r;
}

/** Checks an entry bundle against the level-0 tile of the same leaves: each entry's leaf hash. */
export function entriesMatchTile(entries: readonly Uint8Array[], tile: Uint8Array): boolean {
  if (tile.length !== entries.length * HASH_BYTES) return false;
  return entries.every((e, i) => leafHash(e).equals(Buffer.from(tile.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES))));
}
