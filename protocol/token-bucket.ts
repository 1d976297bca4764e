/** A token bucket: `perSecond` tokens a second, at most `burst` saved up. Pure but for the clock it is given. */
export class TokenBucket {
  private tokens: number;
  private last: number | undefined;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
  ) {
    this.tokens = burst;
  }

  private refill(now: number): void {
    if (this.last !== undefined && now > this.last) this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = this.last === undefined ? now : Math.max(this.last, now);
  }

  /** Takes `n` tokens if there are that many; says whether it did. */
  take(now: number, n = 1): boolean {
    this.refill(now);
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Takes `n` tokens, going below zero if need be (a debt paid back before the next `take` succeeds). */
  charge(now: number, n = 1): void {
    this.refill(now);
    this.tokens = Math.max(-this.burst, this.tokens - n);
  }

  available(now: number): number {
    this.refill(now);
    return this.tokens;
  }
}
