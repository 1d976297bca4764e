/**
 * The witness over HTTP (node:http), with the submission and monitoring prefixes both at the root:
 * - POST /add-checkpoint                 the tlog-witness call (witness.ts decides)
 * - GET  /<hex SHA-256 of origin>/checkpoint  the spec's monitoring call: the latest cosigned checkpoint
 * - GET  /latest/<percent-encoded origin>     the same, by origin (not in the spec; handy with curl)
 * Anything else is 404, or 405 for a known path with the wrong method.
 *
 * SPEC: https://c2sp.org/tlog-witness (HTTP interface; "Monitor Retrieval Mechanism")
 *
 * Bodies are read up to witness.ts's bound; a larger one is drained (to 1 MiB, then the connection is cut) and
 * answered 400, so a client that sent it still reads the answer.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BiokioskError } from '../protocol/errors.ts';
import { MAX_REQUEST_BYTES, type Witness, type WitnessResponse } from './witness.ts';

const DRAIN_LIMIT = 1024 * 1024;
const TEXT = 'text/plain; charset=utf-8';

export interface WitnessServer {
  /** http://host:port (the port actually bound when 0 was asked for). */
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

export interface WitnessServerOptions {
  host: string;
  port: number;
  /** Internal failures (the state could not be written): the client got a 500. */
  onError?: (e: unknown) => void;
}

export async function startWitnessServer(witness: Witness, opts: WitnessServerOptions): Promise<WitnessServer> {
  // The monitoring path names a log by the hash of its origin; the known origins are fixed at start.
  const byHash = new Map(witness.origins().map((o) => [createHash('sha256').update(o, 'utf8').digest('hex'), o]));
  const server = createServer((req, res) => {
    handle(witness, byHash, req, res).catch((e: unknown) => {
      opts.onError?.(e);
      if (!res.headersSent) send(res, { status: 500, contentType: TEXT, body: 'internal error\n' });
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => reject(new BiokioskError('WitnessListen', `cannot listen on ${opts.host}:${opts.port}: ${e.code ?? e.message}`, { cause: e }));
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    host: addr.address,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

async function handle(witness: Witness, byHash: ReadonlyMap<string, string>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!;
  if (path === '/add-checkpoint') {
    if (req.method !== 'POST') return methodNotAllowed(req, res, 'POST');
    const body = await readBody(req);
    if (body === 'cut') return;
    if (body === 'too-large') return send(res, { status: 400, contentType: TEXT, body: `the request body is larger than ${MAX_REQUEST_BYTES} bytes\n` });
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
    } catch {
      return send(res, { status: 400, contentType: TEXT, body: 'the request body is not UTF-8\n' });
    }
    return send(res, await witness.addCheckpoint(text));
  }
  const monitor = /^\/([0-9a-f]{64})\/checkpoint$/.exec(path);
  const latest = /^\/latest\/([^/]+)$/.exec(path);
  if (!monitor && !latest) return send(res, { status: 404, contentType: TEXT, body: 'not found\n' });
  if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(req, res, 'GET, HEAD');
  let origin: string | undefined;
  if (monitor) origin = byHash.get(monitor[1]!);
  else {
    try {
      origin = decodeURIComponent(latest![1]!);
    } catch {
      return send(res, { status: 400, contentType: TEXT, body: 'the origin is not percent-encoded UTF-8\n' });
    }
  }
  const note = origin === undefined ? undefined : witness.latest(origin);
  if (note === undefined) return send(res, { status: 404, contentType: TEXT, body: 'this witness has cosigned no checkpoint of that log\n' });
  send(res, { status: 200, contentType: TEXT, body: note }, req.method === 'HEAD');
}

function methodNotAllowed(req: IncomingMessage, res: ServerResponse, allow: string): void {
  req.resume();
  res.setHeader('Allow', allow);
  send(res, { status: 405, contentType: TEXT, body: `use ${allow}\n` });
}

function send(res: ServerResponse, r: WitnessResponse, headOnly = false): void {
  const body = Buffer.from(r.body, 'utf8');
  res.writeHead(r.status, { 'Content-Type': r.contentType, 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(headOnly ? undefined : body);
}

/** The body; 'too-large' past MAX_REQUEST_BYTES (drained); 'cut' past DRAIN_LIMIT (the socket is destroyed). */
async function readBody(req: IncomingMessage): Promise<Buffer | 'too-large' | 'cut'> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > DRAIN_LIMIT) {
    req.socket.destroy();
    return 'cut';
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > DRAIN_LIMIT) {
        req.socket.destroy();
        return 'cut';
      }
      if (size <= MAX_REQUEST_BYTES) chunks.push(chunk);
    }
  } catch {
    return 'cut'; // the client went away mid-body
  }
  return size > MAX_REQUEST_BYTES ? 'too-large' : Buffer.concat(chunks);
}
