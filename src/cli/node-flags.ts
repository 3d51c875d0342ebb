/**
 * The Node.js flags a member process runs with. `bin/shoal.mjs` carries them in its `#!` line, so
 * `shoal start` (and `npx shoal start`) gets them; everything in shoal that starts a member with
 * `node bin/shoal.mjs` (the dev cluster, the test harness, bench:compare) passes them itself.
 *
 * `--single-threaded-gc`: V8 collects garbage on the member's main thread alone, without parallel
 * scavenger helpers or concurrent marking and sweeping threads. A member shares a small machine's
 * cores with the other members and its clients; a young-generation collection split over helper
 * threads then waits for helpers that are not running, and the event loop stands still longer than
 * if the main thread had done the work itself. On the 2-core bench machine (2026-12-04, stall-probe
 * at 16 clients, runs alternating with and without it) the put p99 was 8.3-10.7 ms in 7 runs with
 * it against 10.6-12.2 ms in 4 without; one-client puts and native puts at 256 clients were no
 * slower, gRPC puts at 256 clients about 4 % slower (bench/README.md). On a machine with cores to
 * spare for one member, running `node bin/shoal.mjs start ...` without it may collect faster; the
 * member then says on stderr that the flag is missing.
 */
export const MEMBER_NODE_FLAGS: readonly string[] = ['--single-threaded-gc'];

/** The member flags missing from a process's `execArgv`. */
export function missingMemberNodeFlags(execArgv: readonly string[]): string[] {
  return MEMBER_NODE_FLAGS.filter((flag) => !execArgv.includes(flag));
}
