/**
 * Reading a file someone named on the command line or in a configuration: only a regular file is read. Opening
 * a FIFO for reading would block until a writer appears (a command that hangs forever), a device may never end,
 * and a directory is a mistake: each is refused with an error naming what the path is instead.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { BiokioskError } from './errors.ts';

export class NotARegularFileError extends BiokioskError {
  constructor(path: string, what: string) {
    super('NotARegularFile', `${path} is ${what}, not a regular file`, { kind: 'input', details: { path } });
  }
}

function describeKind(st: { isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isDirectory(): boolean; isSocket(): boolean }): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** The whole content of a regular file; `maxBytes` refuses a larger one before reading it. */
export async function readRegularFile(path: string, opts: { maxBytes?: number } = {}): Promise<Buffer> {
  let fh;
  try {
    // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; fstat then tells what it is.
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BiokioskError('CannotRead', `cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : String(code ?? e)}`, { kind: 'input', details: { path } });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new NotARegularFileError(path, describeKind(st));
    if (opts.maxBytes !== undefined && st.size > opts.maxBytes) throw new BiokioskError('FileTooLarge', `${path} is ${st.size} bytes; at most ${opts.maxBytes} allowed`, { kind: 'input', details: { path } });
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}
