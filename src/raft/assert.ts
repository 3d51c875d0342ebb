/**
 * Assertions for the raft core. A broken invariant in consensus code must stop the process loudly:
 * continuing would risk applying different commands on different members. These throw an
 * `InvariantViolation`, which the member process treats as fatal (it never catches it).
 */

export class InvariantViolation extends Error {
  constructor(message: string) {
    super(`raft invariant violated: ${message}`);
    this.name = 'InvariantViolation';
  }
}

export function assert(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new InvariantViolation(typeof message === 'string' ? message : message());
  }
}
