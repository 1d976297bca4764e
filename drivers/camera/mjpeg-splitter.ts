/**
 * Splits a byte stream of concatenated JPEGs (what `ffmpeg -f mjpeg pipe:1` writes, or a camera's raw MJPEG) into
 * whole JPEG images, incrementally: chunks may cut anywhere, even between the two bytes of a marker.
 *
 * Searching for the first FFD9 after FFD8 is not enough: an EXIF thumbnail is a complete JPEG nested inside the
 * APP1 segment, so its EOI would end the outer image early. Instead we walk the marker segments by their lengths
 * (the thumbnail is inside a segment's payload, which we skip unread) up to SOS, then scan the entropy-coded data,
 * where a literal FF is always stuffed as FF00 and RSTn markers may appear, for the next real marker. Progressive
 * JPEGs have several scans with tables between them; any marker other than EOI after a scan is walked again as a
 * segment.
 *
 * Pure: no I/O, no timers. Memory is bounded by maxFrameBytes plus one chunk.
 */

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const TEM = 0x01;
const FF_BYTE = Buffer.from([0xff]);

export interface MjpegSplitterOptions {
  /** Frames larger than this are dropped (counted, reported), never buffered beyond it. Default 16 MiB. */
  maxFrameBytes?: number;
  /** Told about every frame thrown away, e.g. for a log line. */
  onDrop?: (reason: 'oversize' | 'corrupt', bytes: number) => void;
}

export interface MjpegSplitterStats {
  frames: number;
  /** Frames dropped for exceeding maxFrameBytes. */
  oversize: number;
  /** Frames abandoned because their structure was broken (bad marker, a new SOI before the EOI, no scan). */
  corrupt: number;
  /** Bytes skipped between frames while looking for the next SOI. */
  garbageBytes: number;
}

type State =
  | 'soi' // between frames, looking for FFD8
  | 'marker' // inside a frame's header, expecting FF then a marker code
  | 'len1' // first (high) byte of a segment length
  | 'len2' // second byte
  | 'skip' // skipping a segment's payload
  | 'entropy'; // inside entropy-coded scan data, looking for a real marker

export class MjpegSplitter {
  readonly stats: MjpegSplitterStats = { frames: 0, oversize: 0, corrupt: 0, garbageBytes: 0 };
  private readonly maxFrameBytes: number;
  private readonly onDrop: MjpegSplitterOptions['onDrop'];

  private state: State = 'soi';
  /** The previous byte was an FF (in the soi, marker and entropy states). */
  private ff = false;
  private marker = 0;
  private lenHi = 0;
  private remaining = 0;
  private sawScan = false;
  /** Bytes of the current frame from earlier chunks (empty while oversize: those are not kept). */
  private parts: Buffer[] = [];
  /** Size of the current frame so far, counting earlier chunks only. */
  private size = 0;
  private oversize = false;

  constructor(options: MjpegSplitterOptions = {}) {
    this.maxFrameBytes = options.maxFrameBytes ?? 16 * 1024 * 1024;
    if (!(this.maxFrameBytes >= 4)) throw new RangeError(`maxFrameBytes must be at least 4, got ${this.maxFrameBytes}`);
    this.onDrop = options.onDrop;
  }

  /** Feeds the next chunk of the stream; returns the frames it completed, in order. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const n = chunk.length;
    // Where the current frame's bytes start within this chunk (0 when the frame began in an earlier chunk).
    let start = 0;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case 'soi': {
          if (!this.ff) {
            const j = chunk.indexOf(0xff, i);
            if (j < 0) {
              this.stats.garbageBytes += n - i;
              i = n;
              break;
            }
            this.stats.garbageBytes += j - i;
            this.ff = true;
            i = j + 1;
            break;
          }
          const b = chunk[i]!;
          if (b === SOI) {
            start = this.beginFrame(i);
            this.state = 'marker';
            this.ff = false;
          } else if (b !== 0xff) {
            this.ff = false;
            this.stats.garbageBytes += 2; // the FF and this byte
          } else {
            this.stats.garbageBytes += 1;
          }
          i++;
          break;
        }
        case 'marker': {
          const b = chunk[i]!;
          if (!this.ff) {
            if (b !== 0xff) {
              // Not a marker where one must be: the length we followed was wrong, or bytes were lost.
              this.abandon('corrupt', start, i);
              this.state = 'soi';
              // Do not consume b: it may itself start the next frame's FF.
              break;
            }
            this.ff = true;
            i++;
            break;
          }
          i++;
          if (b === 0xff) break; // fill byte
          this.ff = false;
          if (b === EOI) {
            const frame = this.endFrame(chunk, start, i);
            if (frame) out.push(frame);
          } else if (b === SOI) {
            // A new image starts before this one ended: the old one was truncated.
            this.abandon('corrupt', start, i - 2);
            start = this.beginFrame(i - 1);
          } else if ((b >= 0xd0 && b <= 0xd7) || b === TEM) {
            // Standalone markers without a length: nothing to skip.
          } else if (b === 0x00) {
            this.abandon('corrupt', start, i);
            this.state = 'soi';
          } else {
            this.marker = b;
            this.state = 'len1';
          }
          break;
        }
        case 'len1':
          this.lenHi = chunk[i++]!;
          this.state = 'len2';
          break;
        case 'len2': {
          const len = (this.lenHi << 8) | chunk[i++]!;
          if (len < 2) {
            this.abandon('corrupt', start, i);
            this.state = 'soi';
            break;
          }
          this.remaining = len - 2;
          this.state = 'skip';
          if (this.remaining === 0) this.afterSegment();
          break;
        }
        case 'skip': {
          const step = Math.min(this.remaining, n - i);
          i += step;
          this.remaining -= step;
          if (this.remaining === 0) this.afterSegment();
          break;
        }
        case 'entropy': {
          if (!this.ff) {
            const j = chunk.indexOf(0xff, i);
            if (j < 0) {
              i = n;
              break;
            }
            this.ff = true;
            i = j + 1;
            break;
          }
          const b = chunk[i++]!;
          if (b === 0xff) break; // fill byte before a marker
          this.ff = false;
          if (b === 0x00 || (b >= 0xd0 && b <= 0xd7) || b === TEM) {
            // Stuffed FF, or a restart marker: still entropy data.
          } else if (b === EOI) {
            const frame = this.endFrame(chunk, start, i);
            if (frame) out.push(frame);
          } else if (b === SOI) {
            this.abandon('corrupt', start, i - 2);
            start = this.beginFrame(i - 1);
            this.state = 'marker';
          } else {
            // DHT, DQT, DRI, another SOS... between the scans of a progressive or multi-scan image.
            this.marker = b;
            this.state = 'len1';
          }
          break;
        }
      }
    }
    // Keep the unfinished frame's bytes of this chunk, unless the bound was already passed.
    if (this.state !== 'soi' && start < n) this.keep(chunk.subarray(start, n));
    return out;
  }

  /** True while in the middle of a frame (bytes buffered or being skipped). */
  get inFrame(): boolean {
    return this.state !== 'soi';
  }

  /** Forgets any partial frame (e.g. at the end of the stream); counts it as corrupt. */
  reset(): void {
    if (this.state !== 'soi') this.abandon('corrupt', 0, 0);
    this.state = 'soi';
    this.ff = false;
  }

  private afterSegment(): void {
    if (this.marker === SOS) {
      this.sawScan = true;
      this.state = 'entropy';
    } else {
      this.state = 'marker';
    }
    this.ff = false;
  }

  /** Starts a frame whose D8 byte is at index i of the chunk; returns the frame's start index in the chunk. */
  private beginFrame(i: number): number {
    this.parts = [];
    this.size = 0;
    this.oversize = false;
    this.sawScan = false;
    if (i === 0) {
      // The FF was the last byte of the previous chunk.
      this.parts.push(FF_BYTE);
      this.size = 1;
      return 0;
    }
    return i - 1;
  }

  private keep(bytes: Buffer): void {
    this.size += bytes.length;
    if (this.oversize) return;
    if (this.size > this.maxFrameBytes) {
      this.oversize = true;
      this.parts = [];
      return;
    }
    this.parts.push(bytes);
  }

  /** Ends the frame whose last byte is at index end-1 of the chunk; returns it, or null when it was dropped. */
  private endFrame(chunk: Buffer, start: number, end: number): Buffer | null {
    const total = this.size + (end - start);
    const sawScan = this.sawScan;
    const parts = this.parts;
    const oversize = this.oversize || total > this.maxFrameBytes;
    this.parts = [];
    this.size = 0;
    this.oversize = false;
    this.state = 'soi';
    this.ff = false;
    if (oversize) {
      this.stats.oversize++;
      this.onDrop?.('oversize', total);
      return null;
    }
    if (!sawScan) {
      // SOI ... EOI with no image data: nothing a decoder could use.
      this.stats.corrupt++;
      this.onDrop?.('corrupt', total);
      return null;
    }
    this.stats.frames++;
    parts.push(chunk.subarray(start, end));
    // Copy: the result must not pin (or alias) the caller's chunk buffers.
    return Buffer.concat(parts, total);
  }

  /** Drops the current partial frame; its bytes in this chunk run from start to end. */
  private abandon(reason: 'oversize' | 'corrupt', start: number, end: number): void {
    const total = this.size + Math.max(0, end - start);
    this.parts = [];
    this.size = 0;
    this.oversize = false;
    this.ff = false;
    if (reason === 'corrupt') this.stats.corrupt++;
    else this.stats.oversize++;
    this.onDrop?.(reason, total);
  }
}
