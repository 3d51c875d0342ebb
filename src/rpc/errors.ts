/**
 * Errors that cross the RPC boundary. Every failure a caller sees is an `RpcError` carrying a status
 * code named after gRPC's (so operators and the etcd-compatible API can map them one to one) and a
 * message a person can act on. Codes travel on the wire as their gRPC numbers.
 */

/** gRPC status codes by name, with their wire numbers. */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = keyof typeof Status;

const codeByNumber: readonly StatusCode[] = (() => {
  const names: StatusCode[] = [];
  for (const [name, value] of Object.entries(Status)) names[value] = name as StatusCode;
  return names;
})();

/** Maps a wire number back to its name; numbers this version does not know become UNKNOWN. */
export function statusFromNumber(value: number): StatusCode {
  return codeByNumber[value] ?? 'UNKNOWN';
}

export class RpcError extends Error {
  override readonly name = 'RpcError';
  readonly code: StatusCode;

  constructor(code: StatusCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** The gRPC number of this error's code, as sent on the wire. */
  get status(): number {
    return Status[this.code];
  }

  /**
   * Turns anything a handler threw into an RpcError. Handlers that throw an RpcError choose the
   * code; anything else becomes UNKNOWN with the error's message, like gRPC servers do.
   */
  static from(error: unknown): RpcError {
    if (error instanceof RpcError) return error;
    if (error instanceof Error) return new RpcError('UNKNOWN', error.message, { cause: error });
    return new RpcError('UNKNOWN', String(error));
  }
}

/** True when `error` is an RpcError with the given code; handy in callers' retry logic. */
export function isRpcError(error: unknown, code?: StatusCode): error is RpcError {
  return error instanceof RpcError && (code === undefined || error.code === code);
}
