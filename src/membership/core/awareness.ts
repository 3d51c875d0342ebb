/**
 * Lifeguard's local health awareness: a score in [0, max - 1] that rises when this member shows
 * signs of being the slow one (its probes fail although helpers report no nack, or it must refute a
 * suspicion about itself) and falls with every successful probe. Probe intervals and timeouts are
 * multiplied by `score + 1`, so a struggling member probes less and waits longer before suspecting.
 */
export class Awareness {
  private scoreValue = 0;

  constructor(private readonly maxMultiplier: number) {
    if (!(maxMultiplier >= 1)) throw new Error('awarenessMaxMultiplier must be at least 1');
  }

  applyDelta(delta: number): void {
    const next = this.scoreValue + delta;
    this.scoreValue = Math.min(this.maxMultiplier - 1, Math.max(0, next));
  }

  get score(): number {
    return this.scoreValue;
  }

  scaleMs(timeoutMs: number): number {
    return timeoutMs * (this.scoreValue + 1);
  }
}
