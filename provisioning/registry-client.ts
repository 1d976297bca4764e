/**
 * The kiosk's side of the registry's HTTPS API: POST one signed enrolment message, get one back, checking the
 * registry's certificate against the fleet CA the technician brought (`--ca`). Answers that say "retry" (the
 * broker was down, the registry busy) and connections that fail are retried with backoff until `retryForMs`:
 * a broker down in the middle of an enrolment delays it, and the enrolment resumes where it was.
 */
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { EnrollmentError, MAX_ENROLL_BYTES, RegistryError } from '../protocol/enrollment.ts';

export interface RegistryClientOptions {
  /** The fleet CA (PEM) the registry's certificate must chain to; required for https. */
  ca?: Buffer;
  timeoutMs?: number;
  /** Keep retrying retryable failures this long (default 120 s). */
  retryForMs?: number;
  /** Told before each retry, with why. */
  onRetry?: (why: string, attempt: number) => void;
}

export class RegistryClient {
  constructor(
    readonly url: string,
    private readonly o: RegistryClientOptions = {},
  ) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new EnrollmentError('BadFleetUrl', `--fleet takes the registry's URL (https://host:port), got "${url}"`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new EnrollmentError('BadFleetUrl', `--fleet takes an https:// URL, got "${url}"`);
    if (u.protocol === 'https:' && !o.ca) throw new EnrollmentError('NoFleetCa', 'an https registry needs the fleet CA certificate (--ca FILE) to be checked against');
  }

  /** POSTs `body` to `path`; the registry's signed answer. */
  async post(path: string, body: string): Promise<string> {
    const deadline = Date.now() + (this.o.retryForMs ?? 120_000);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(path, body);
      } catch (e) {
        const retryable = e instanceof EnrollmentError ? e.retryable : isNetworkError(e);
        if (!retryable || Date.now() > deadline) throw e instanceof EnrollmentError ? e : new EnrollmentError('RegistryUnreachable', `cannot reach the registry at ${this.url}: ${(e as Error).message}`, true, 503);
        this.o.onRetry?.((e as Error).message, attempt);
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** Math.min(attempt, 5))));
      }
    }
  }

  private once(path: string, body: string): Promise<string> {
    const u = new URL(path, this.url);
    const https = u.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(
        u,
        { method: 'POST', headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }, timeout: this.o.timeoutMs ?? 15_000, ...(https ? { ca: this.o.ca, rejectUnauthorized: true } : {}) },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_ENROLL_BYTES) {
              req.destroy(new Error(`the registry's answer is over ${MAX_ENROLL_BYTES} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode === 200) return resolve(text);
            let parsed;
            try {
              parsed = RegistryError.safeParse(JSON.parse(text));
            } catch {
              parsed = undefined;
            }
            if (parsed?.success) reject(new EnrollmentError(parsed.data.error.code, `the registry says: ${parsed.data.error.message}`, parsed.data.error.retryable, res.statusCode));
            else reject(new EnrollmentError('RegistryError', `the registry answered HTTP ${res.statusCode} without an explanation`, (res.statusCode ?? 500) >= 500, res.statusCode));
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${this.o.timeoutMs ?? 15_000} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  }
}

function isNetworkError(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'EAI_AGAIN'].includes(code ?? '');
}
