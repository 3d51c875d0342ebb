/**
 * A bounded wait for a condition, for tests that must not sleep to synchronize: it polls
 * `condition` every couple of milliseconds and fails with `what` after `limitMs`.
 */
export async function waitFor(
  condition: () => boolean,
  what: string,
  limitMs = 5_000,
): Promise<void> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
