/**
 * Incremental parser for `multipart/x-mixed-replace` bodies, the way IP cameras stream MJPEG over HTTP:
 *
 *   --BOUNDARY\r\n
 *   Content-Type: image/jpeg\r\n
 *   Content-Length: 12345\r\n        (optional)
 *   \r\n
 *   <bytes>\r\n
 *   --BOUNDARY\r\n ...
 *
 * With Content-Length the part's end is known and the bytes are never searched (a JPEG may well contain the
 * boundary's bytes by chance); without it the part ends at the next CRLF + delimiter. Cameras are sloppy, so we
 * accept LF line ends, blank lines or junk before a delimiter, and a boundary parameter that already carries the
 * leading "--" (delimiter lines then are the parameter itself, not "--" + parameter).
 *
 * Pure: no I/O. Memory is bounded by maxPartBytes plus the header bound plus one chunk.
 */

export interface MultipartPart {
  /** Header names lower-cased; a repeated header keeps its last value. */
  headers: Record<string, string>;
  body: Buffer;
}

export interface MultipartParserOptions {
  /** Parts larger than this are skipped (counted), never buffered beyond it. Default 16 MiB. */
  maxPartBytes?: number;
  /** Bound on a part's header block. Default 16 KiB. */
  maxHeaderBytes?: number;
  onDrop?: (reason: 'oversize' | 'bad-header', bytes: number) => void;
}

export interface MultipartStats {
  parts: number;
  oversize: number;
  badHeaders: number;
}

type State = 'delimiter' | 'delimiter-line' | 'headers' | 'body-length' | 'body-search' | 'done';

/**
 * The boundary parameter of a Content-Type such as `multipart/x-mixed-replace; boundary="frame"`, or null when the
 * type is not multipart or has no boundary.
 */
export function multipartBoundary(contentType: string | undefined): string | null {
  if (!contentType) return null;
  const [type, ...params] = contentType.split(';');
  if (!type || !/^\s*multipart\//i.test(type)) return null;
  for (const p of params) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    if (p.slice(0, eq).trim().toLowerCase() !== 'boundary') continue;
    let v = p.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    return v.length > 0 ? v : null;
  }
  return null;
}

export class MultipartParser {
  readonly stats: MultipartStats = { parts: 0, oversize: 0, badHeaders: 0 };
  private readonly delimiter: Buffer;
  private readonly maxPartBytes: number;
  private readonly maxHeaderBytes: number;
  private readonly onDrop: MultipartParserOptions['onDrop'];

  private state: State = 'delimiter';
  /** Unconsumed input. */
  private buf: Buffer = Buffer.alloc(0);
  /** How far buf has already been searched without a match (so each byte is searched about once). */
  private searched = 0;
  private headers: Record<string, string> = {};
  private bodyLength = 0;
  private bodyParts: Buffer[] = [];
  private bodySize = 0;
  private skipping = false;

  constructor(boundary: string, options: MultipartParserOptions = {}) {
    if (boundary.length === 0 || boundary.length > 200) throw new RangeError('multipart boundary must be 1 to 200 characters');
    // A boundary given as "--frame" is, by most cameras that send one, used verbatim on the delimiter lines.
    this.delimiter = Buffer.from(boundary.startsWith('--') ? boundary : `--${boundary}`, 'latin1');
    this.maxPartBytes = options.maxPartBytes ?? 16 * 1024 * 1024;
    this.maxHeaderBytes = options.maxHeaderBytes ?? 16 * 1024;
    this.onDrop = options.onDrop;
  }

  /** True after the closing delimiter (--BOUNDARY--): the stream has no more parts. */
  get done(): boolean {
    return this.state === 'done';
  }

  /** Feeds the next chunk; returns the parts it completed, in order. */
  push(chunk: Buffer): MultipartPart[] {
    const out: MultipartPart[] = [];
    if (this.state === 'done') return out;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      const progressed = this.step(out);
      if (!progressed || this.done) break;
    }
    return out;
  }

  /** One state transition; false when more input is needed. */
  private step(out: MultipartPart[]): boolean {
    switch (this.state) {
      case 'delimiter': {
        // Anything before the delimiter (preamble, the CRLF after a body, junk) is skipped.
        const at = this.buf.indexOf(this.delimiter, this.searched);
        if (at < 0) {
          // Keep only a tail that could be the start of a split delimiter.
          this.consume(Math.max(0, this.buf.length - this.delimiter.length + 1));
          this.searched = 0;
          return false;
        }
        this.consume(at + this.delimiter.length);
        this.state = 'delimiter-line';
        return true;
      }
      case 'delimiter-line': {
        // The rest of the delimiter line: "--" closes the stream; otherwise transport padding up to the line end.
        if (this.buf.length >= 2 && this.buf[0] === 0x2d && this.buf[1] === 0x2d) {
          this.state = 'done';
          this.buf = Buffer.alloc(0);
          return true;
        }
        const lf = this.buf.indexOf(0x0a);
        if (lf < 0) {
          if (this.buf.length > 1024) {
            // No line end after a "delimiter": it was not one. Look again further on.
            this.state = 'delimiter';
            this.searched = 0;
            return true;
          }
          return false;
        }
        this.consume(lf + 1);
        this.state = 'headers';
        this.headers = {};
        this.searched = 0;
        return true;
      }
      case 'headers': {
        const end = findBlankLine(this.buf, this.searched);
        if (end === null) {
          if (this.buf.length > this.maxHeaderBytes) {
            this.stats.badHeaders++;
            this.onDrop?.('bad-header', this.buf.length);
            this.state = 'delimiter';
            this.searched = 0;
            return true;
          }
          this.searched = Math.max(0, this.buf.length - 3);
          return false;
        }
        this.headers = parseHeaders(this.buf.subarray(0, end.headerEnd).toString('latin1'));
        this.consume(end.bodyStart);
        this.searched = 0;
        this.bodyParts = [];
        this.bodySize = 0;
        this.skipping = false;
        const cl = this.headers['content-length'];
        if (cl !== undefined && /^\s*\d+\s*$/.test(cl)) {
          this.bodyLength = Number(cl);
          this.skipping = this.bodyLength > this.maxPartBytes;
          this.state = 'body-length';
        } else {
          this.state = 'body-search';
        }
        return true;
      }
      case 'body-length': {
        const need = this.bodyLength - this.bodySize;
        const take = Math.min(need, this.buf.length);
        if (take > 0) {
          if (!this.skipping) this.bodyParts.push(this.buf.subarray(0, take));
          this.bodySize += take;
          this.consume(take);
        }
        if (this.bodySize < this.bodyLength) return false;
        this.finishPart(out);
        return true;
      }
      case 'body-search': {
        // The body ends at the line break before the next delimiter.
        const at = this.buf.indexOf(this.delimiter, this.searched);
        if (at < 0) {
          // Everything but a tail that could start a split "\r\n" + delimiter belongs to the body.
          const keepTail = this.delimiter.length + 4; // room for "\r\n--" before a split delimiter
          const take = Math.max(0, this.buf.length - keepTail);
          if (take > 0) {
            this.appendBody(this.buf.subarray(0, take));
            this.consume(take);
          }
          this.searched = Math.max(0, this.buf.length - this.delimiter.length + 1);
          return false;
        }
        const after = this.delimiterFollows(at + this.delimiter.length);
        if (after === null) {
          // Cannot tell yet whether this is a delimiter line: wait for the next bytes.
          this.searched = at;
          return false;
        }
        const end = after ? this.bodyEndBefore(at) : null;
        if (end !== null) {
          this.appendBody(this.buf.subarray(0, end));
          this.consume(at); // the delimiter state finds the delimiter at 0
          this.searched = 0;
          this.finishPart(out);
          this.state = 'delimiter';
          return true;
        }
        // The delimiter bytes appear mid-line: part of the body, not a delimiter.
        this.searched = at + 1;
        return true;
      }
      case 'done':
        return false;
    }
  }

  /**
   * Whether the bytes at i can follow a delimiter: "--" (the close), or white space / a line end (RFC 2046: a
   * delimiter line is the delimiter, optional white space, CRLF). Null when more input is needed to tell.
   */
  private delimiterFollows(i: number): boolean | null {
    const c = this.buf[i];
    if (c === undefined) return null;
    if (c === 0x0d || c === 0x0a || c === 0x20 || c === 0x09) return true;
    if (c !== 0x2d) return false;
    const d = this.buf[i + 1];
    return d === undefined ? null : d === 0x2d;
  }

  /**
   * Where the body ends when a delimiter was found at `at`: before the line break that precedes it (and before a
   * "--" when the sender put "--" + a boundary parameter that already starts with "--"). Null when the delimiter
   * is not at the start of a line, so it is body data.
   */
  private bodyEndBefore(at: number): number | null {
    const b = this.buf;
    let k = at;
    if (k >= 2 && b[k - 1] === 0x2d && b[k - 2] === 0x2d && k >= 3 && b[k - 3] === 0x0a) k -= 2;
    if (k > 0 && b[k - 1] === 0x0a) {
      k--;
      if (k > 0 && b[k - 1] === 0x0d) k--;
      return k;
    }
    // A body that is empty and sent without a line break before the delimiter.
    return k === 0 && this.bodySize === 0 ? 0 : null;
  }

  private appendBody(bytes: Buffer): void {
    this.bodySize += bytes.length;
    if (this.skipping) return;
    if (this.bodySize > this.maxPartBytes) {
      this.skipping = true;
      this.bodyParts = [];
      return;
    }
    // A view of the input (never written to); finishPart copies the pieces into one buffer.
    this.bodyParts.push(bytes);
  }

  private finishPart(out: MultipartPart[]): void {
    if (this.skipping) {
      this.stats.oversize++;
      this.onDrop?.('oversize', this.bodySize);
    } else {
      this.stats.parts++;
      out.push({ headers: this.headers, body: Buffer.concat(this.bodyParts, this.bodySize) });
    }
    this.bodyParts = [];
    this.bodySize = 0;
    this.skipping = false;
    if (this.state === 'body-length') {
      this.state = 'delimiter';
      this.searched = 0;
    }
  }

  private consume(n: number): void {
    this.buf = n >= this.buf.length ? Buffer.alloc(0) : this.buf.subarray(n);
  }
}

/** Finds the empty line ending a header block (CRLF CRLF, or LF LF from sloppy senders). */
function findBlankLine(buf: Buffer, from: number): { headerEnd: number; bodyStart: number } | null {
  // A part with no headers at all starts with the blank line right away.
  if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) return { headerEnd: 0, bodyStart: 2 };
  if (buf.length >= 1 && buf[0] === 0x0a) return { headerEnd: 0, bodyStart: 1 };
  for (let i = Math.max(0, from); i < buf.length; i++) {
    if (buf[i] !== 0x0a) continue;
    if (buf[i + 1] === 0x0a) return { headerEnd: i, bodyStart: i + 2 };
    if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return { headerEnd: i, bodyStart: i + 3 };
  }
  return null;
}

function parseHeaders(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}
