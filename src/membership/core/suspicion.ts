/**
 * Lifeguard's dynamic suspicion timeout, as memberlist computes it. A suspicion starts with the
 * longest timeout (`max`) and shrinks towards `min` as independent members confirm it:
 * `timeout = max - (max - min) * log(c + 1) / log(k + 1)` for `c` confirmations out of `k`
 * expected, never below `min`. With dynamic suspicion off (plain SWIM), the timeout is `min`.
 */

/** memberlist's base suspicion timeout: `suspicionMult * max(1, log10(n)) * probeInterval`. */
export function suspicionMinTimeoutMs(
  suspicionMult: number,
  memberCount: number,
  probeIntervalMs: number,
): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, memberCount)));
  return Math.floor(suspicionMult * nodeScale * probeIntervalMs);
}

/** Confirmations a suspicion waits for: `suspicionMult - 2`, or none in a cluster too small. */
export function expectedConfirmations(suspicionMult: number, memberCount: number): number {
  const k = suspicionMult - 2;
  return memberCount - 2 < k ? 0 : Math.max(0, k);
}

/** The total timeout of a suspicion that has `confirmations` independent confirmations. */
export function suspicionTimeoutMs(
  confirmations: number,
  expected: number,
  minMs: number,
  maxMs: number,
): number {
  if (expected < 1) return minMs;
  const fraction = Math.log(confirmations + 1) / Math.log(expected + 1);
  const raw = Math.floor(maxMs - fraction * (maxMs - minMs));
  return Math.max(minMs, raw);
}

/** The state of one running suspicion, kept on the suspected member's record. */
export interface Suspicion {
  readonly startMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly expected: number;
  /** Members that suspected independently; the first suspecter is included. */
  readonly confirmers: Set<string>;
  deadlineMs: number;
}

export function startSuspicion(
  from: string,
  nowMs: number,
  minMs: number,
  maxMs: number,
  expected: number,
): Suspicion {
  const suspicion: Suspicion = {
    startMs: nowMs,
    minMs,
    maxMs,
    expected,
    confirmers: new Set([from]),
    deadlineMs: 0,
  };
  suspicion.deadlineMs = nowMs + suspicionTimeoutMs(0, expected, minMs, maxMs);
  return suspicion;
}

/**
 * Records a confirmation by `from`. Returns true when it was new (then the caller re-gossips it, so
 * other members shrink their timers too) and moves the deadline earlier.
 */
export function confirmSuspicion(suspicion: Suspicion, from: string): boolean {
  if (suspicion.confirmers.size - 1 >= suspicion.expected) return false;
  if (suspicion.confirmers.has(from)) return false;
  suspicion.confirmers.add(from);
  const confirmations = suspicion.confirmers.size - 1;
  const timeout = suspicionTimeoutMs(
    confirmations,
    suspicion.expected,
    suspicion.minMs,
    suspicion.maxMs,
  );
  suspicion.deadlineMs = suspicion.startMs + timeout;
  return true;
}
