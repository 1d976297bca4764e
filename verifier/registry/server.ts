/**
 * The registry over HTTPS (`biokiosk verifier registry serve`): each endpoint takes one signed enrolment message
 * (a compact JWS, text/plain) and answers with one, or with a JSON error `{error: {code, message, retryable}}`:
 * POST /v1/enroll (request -> challenge), /v1/enroll/proof (proof -> answer), /v1/rotate, /v1/rotate/proof,
 * /v1/decommission. Kiosks check the server's certificate against the fleet CA; nothing else authenticates the
 * registry before enrolment (afterwards, its answers are signed with the verifier's key).
 */
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { EnrollmentError, MAX_ENROLL_BYTES, type RegistryError } from '../../protocol/enrollment.ts';
import type { Registry } from './registry.ts';

export interface RegistryServer {
  url: string;
  close(): Promise<void>;
}

export interface RegistryServerOptions {
  host?: string;
  port?: number;
  /** PEM certificate and key; plain HTTP without them (tests of the registry's logic only, never a fleet). */
  tls?: { cert: Buffer; key: Buffer };
  onError?: (e: unknown) => void;
  /** Every request and its outcome (for the operator's log). */
  onRequest?: (path: string, status: number, code: string | null) => void;
}

const ROUTES: Record<string, (r: Registry, body: string) => Promise<string>> = {
  '/v1/enroll': (r, b) => r.begin(b),
  '/v1/enroll/proof': (r, b) => r.complete(b),
  '/v1/rotate': (r, b) => r.rotateBegin(b),
  '/v1/rotate/proof': (r, b) => r.rotateComplete(b),
  '/v1/decommission': (r, b) => r.decommission(b),
};

export async function serveRegistry(registry: Registry, o: RegistryServerOptions = {}): Promise<RegistryServer> {
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    void handle(registry, req, res, o).catch((e) => {
      o.onError?.(e);
      if (!res.headersSent) sendError(res, 500, 'InternalError', 'the registry failed; try again later', true);
    });
  };
  const server: Server = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key }, handler) : createHttpServer(handler);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as { address: string; port: number };
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  return { url: `${o.tls ? 'https' : 'http'}://${host}:${addr.port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function handle(registry: Registry, req: IncomingMessage, res: ServerResponse, o: RegistryServerOptions): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://registry').pathname;
  const route = ROUTES[path];
  if (!route) return sendError(res, 404, 'NotFound', `no such endpoint ${path.slice(0, 80)}`, false);
  if (req.method !== 'POST') return sendError(res, 405, 'MethodNotAllowed', 'POST a signed enrolment message', false);
  let body: string;
  try {
    body = await readBody(req, MAX_ENROLL_BYTES);
  } catch (e) {
    return sendError(res, 413, 'TooLarge', (e as Error).message, false);
  }
  try {
    const answer = await route(registry, body.trim());
    o.onRequest?.(path, 200, null);
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(answer);
  } catch (e) {
    if (e instanceof EnrollmentError) {
      o.onRequest?.(path, e.status, e.code);
      return sendError(res, e.status, e.code, e.message, e.retryable);
    }
    throw e;
  }
}

function sendError(res: ServerResponse, status: number, code: string, message: string, retryable: boolean): void {
  const body: RegistryError = { error: { code, message: message.slice(0, 1024), retryable } };
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...(retryable ? { 'Retry-After': '2' } : {}) });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new Error(`the request is over ${max} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
