/** A progress bar on stderr for long evaluations: only on a terminal, redrawn at most 10 times a second. */
export class ProgressBar {
  private last = 0;
  private readonly start = Date.now();
  private readonly enabled: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    enabled = Boolean(process.stderr.isTTY),
  ) {
    this.enabled = enabled;
  }

  update(done: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 100 && done < this.total) return;
    this.last = now;
    const frac = this.total ? done / this.total : 1;
    const width = 30;
    const filled = Math.round(frac * width);
    const rate = done / Math.max(0.001, (now - this.start) / 1000);
    const eta = rate > 0 ? (this.total - done) / rate : 0;
    process.stderr.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${this.total} ${rate.toFixed(1)}/s ETA ${eta.toFixed(0)}s `);
    if (done >= this.total) process.stderr.write('\n');
  }
}
