/**
 * Pseudo-terminals for the serial tests, made by socat: a "silent" pty (nothing ever answers) and an "echo" pty (a
 * non-sensor that repeats what it hears). Fails (never skips) when socat is missing: `npm test` installs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export function requireSocat(): string {
  const r = spawnSync('sh', ['-c', 'command -v socat'], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (r.status !== 0 || !path) throw new Error('socat is not installed: run `npm test` (it installs the Debian package socat) or apt-get install socat');
  return path;
}

export class SocatPty {
  private constructor(
    readonly path: string,
    private readonly child: ChildProcess,
  ) {}

  /** `kind`: 'silent' links a pty to another pty nobody opens; 'echo' links it to `cat`, which echoes every byte. */
  static async start(path: string, kind: 'silent' | 'echo'): Promise<SocatPty> {
    const socat = requireSocat();
    const other = kind === 'echo' ? 'EXEC:cat' : `pty,raw,echo=0,link=${path}.other`;
    const child = spawn(socat, [`pty,raw,echo=0,link=${path}`, other], { stdio: 'ignore' });
    const deadline = Date.now() + 5000;
    while (!existsSync(path)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`socat did not make ${path}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return new SocatPty(path, child);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGTERM');
    await exited;
  }
}
