/**
 * `biokiosk verifier log serve`: the audit log published read-only as C2SP tlog-tiles over HTTP (protocol/tiles.ts
 * has the paths): the latest checkpoint with its witnesses' cosignatures, hash tiles and entry bundles. Entries are
 * the leaves' commitments, never the records: what is published reveals nobody.
 *
 * Everything is read from the store (reads outside batches see committed entries only), so the server can run on
 * any host that reaches the store, beside the verifier nodes or apart from them. GET and HEAD only.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { addSignatures } from '../protocol/note.ts';
import { leafCommitment } from '../protocol/receipt.ts';
import { encodeEntryBundle, hashesAtLevel, parseTilePath, TILE_HEIGHT, TILE_WIDTH, TilePathError } from '../protocol/tiles.ts';
import type { AuditReader } from './audit/store.ts';

export interface LogServer {
  url: string;
  close(): Promise<void>;
}

export interface LogServerOptions {
  host?: string;
  port?: number;
  onError?: (e: unknown) => void;
}

/** The latest checkpoint, with the cosignatures stored for it. */
export async function latestCheckpointNote(audit: AuditReader): Promise<string | undefined> {
  const cp = await audit.latestCheckpoint();
  if (!cp) return undefined;
  const lines = await audit.cosignatures(cp.treeSize);
  return lines.length > 0 ? addSignatures(cp.note, lines.join('')) : cp.note;
}

export async function serveLog(audit: AuditReader, options: LogServerOptions = {}): Promise<LogServer> {
  const server: Server = createServer((req, res) => {
    handle(audit, req, res).catch((e) => {
      options.onError?.(e);
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as { address: string; port: number };
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function handle(audit: AuditReader, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain; charset=utf-8', 'read-only: GET and HEAD only\n', { Allow: 'GET, HEAD' });
  const path = new URL(req.url ?? '/', 'http://log').pathname;
  if (path === '/checkpoint') {
    const note = await latestCheckpointNote(audit);
    if (!note) return send(res, 404, 'text/plain; charset=utf-8', 'the log has no checkpoint yet\n');
    return send(res, 200, 'text/plain; charset=utf-8', note, { 'Cache-Control': 'no-store' });
  }
  if (!path.startsWith('/tile/')) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  let ref;
  try {
    ref = parseTilePath(path.slice('/tile/'.length));
  } catch (e) {
    if (e instanceof TilePathError) return send(res, 404, 'text/plain; charset=utf-8', `${e.message}\n`);
    throw e;
  }
  // Only tiles of the latest checkpoint's tree are served: a reader never sees a tile beyond what was signed.
  const cp = await audit.latestCheckpoint();
  const size = cp?.treeSize ?? 0;
  const level = ref.kind === 'entries' ? 0 : ref.level * TILE_HEIGHT;
  const available = hashesAtLevel(size, level) - ref.index * TILE_WIDTH;
  // Partial tiles of any width up to what exists (a reader checking an older checkpoint needs its partial tiles).
  if (ref.width > available) return send(res, 404, 'text/plain; charset=utf-8', 'no such tile in the latest checkpoint\n');
  const start = ref.index * TILE_WIDTH;
  const immutable = { 'Cache-Control': 'public, max-age=31536000, immutable' };
  if (ref.kind === 'entries') {
    const leaves = await audit.range(start, start + ref.width);
    if (leaves.length !== ref.width) return send(res, 500, 'text/plain; charset=utf-8', 'entries are missing from the store\n');
    return send(res, 200, 'application/octet-stream', encodeEntryBundle(leaves.map((l) => leafCommitment(l.salt, l.record))), immutable);
  }
  const hashes = await audit.levelHashes(level, start, start + ref.width);
  if (hashes.length !== ref.width) return send(res, 500, 'text/plain; charset=utf-8', 'hashes are missing from the store\n');
  return send(res, 200, 'application/octet-stream', Buffer.concat(hashes), immutable);
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': bytes.length, ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : bytes);
}
