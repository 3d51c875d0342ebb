/**
 * A lease that keeps itself alive: `client.grant(ttlSeconds)` returns a Lease whose keep-alive
 * loop renews it about every ttl/3 seconds with unary keep-alive calls (which the client retries
 * on another member when one fails, so a dead member is survived). The lease is *lost* when the
 * cluster says it no longer exists (it expired or was revoked elsewhere) or when no renewal
 * succeeded before the TTL measured from the last successful one ran out; then `lost` resolves
 * and the 'lost' event fires, once, with a ShoalError of code NOT_FOUND or DEADLINE_EXCEEDED.
 *
 *   const lease = await client.grant(10);
 *   lease.on('lost', (error) => log.warn({ err: error }, 'lease lost'));
 *   await client.put('service/a', 'up', { lease: lease.id });
 *   await lease.revoke();   // or client.close(): stops keep-alives without revoking
 */
import { EventEmitter } from 'node:events';
import { ShoalError } from './errors.js';
import type {
  LeaseKeepAliveResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
} from './protocol.js';

/** The calls a Lease makes; ShoalClient provides them. */
export interface LeaseCalls {
  leaseKeepAlive(id: bigint, options?: { timeoutMs?: number }): Promise<LeaseKeepAliveResponse>;
  leaseRevoke(id: bigint): Promise<LeaseRevokeResponse>;
  leaseTimeToLive(id: bigint, options?: { keys?: boolean }): Promise<LeaseTimeToLiveResponse>;
}

/** Keep-alives are sent every TTL / KEEP_ALIVE_DIVISOR (etcd's clients use a third). */
export const KEEP_ALIVE_DIVISOR = 3;
/** The shortest pause between two keep-alives, so a tiny TTL cannot spin the loop. */
export const KEEP_ALIVE_INTERVAL_MS_MIN = 100;
/** Pause before renewing again after a failed keep-alive (the call itself already retried). */
export const KEEP_ALIVE_RETRY_MS = 200;
/**
 * Bounds on the time one keep-alive attempt may take: a third of the TTL, so that an attempt stuck
 * on a hung member leaves time to retry on another one before the lease runs out.
 */
export const KEEP_ALIVE_ATTEMPT_MS_MIN = 200;
export const KEEP_ALIVE_ATTEMPT_MS_MAX = 5_000;

export type LeaseState = 'alive' | 'lost' | 'revoked' | 'closed';

export interface LeaseEvents {
  /** A renewal succeeded; the lease has `ttlSeconds` again. */
  keepalive: [ttlSeconds: number];
  lost: [error: ShoalError];
}

export class Lease extends EventEmitter<LeaseEvents> {
  private stateValue: LeaseState = 'alive';
  private timer: NodeJS.Timeout | undefined;
  /** Local, conservative estimate of the expiry: last successful renewal's send time + TTL. */
  private expiresAtMs: number;
  /** Resolves with the reason once the lease is lost (never for revoke or close). */
  readonly lost: Promise<ShoalError>;
  private resolveLost: (error: ShoalError) => void = () => {};
  /** Successful renewals so far. */
  keepAlives = 0;

  constructor(
    private readonly calls: LeaseCalls,
    readonly id: bigint,
    readonly ttlSeconds: number,
    grantSentMs: number,
    private readonly onStop: (lease: Lease) => void,
  ) {
    super();
    this.expiresAtMs = grantSentMs + ttlSeconds * 1000;
    this.lost = new Promise((resolve) => {
      this.resolveLost = resolve;
    });
    this.schedule(this.intervalMs());
  }

  get state(): LeaseState {
    return this.stateValue;
  }

  /** The lease id as etcd prints it (lowercase hex, no padding): the suffix of lock keys. */
  get idHex(): string {
    return this.id.toString(16);
  }

  /** Revokes the lease (deleting its keys) and stops renewing it. */
  async revoke(): Promise<void> {
    if (this.stateValue !== 'alive') {
      if (this.stateValue === 'revoked') return;
      throw new ShoalError('FAILED_PRECONDITION', `lease ${this.idHex} is ${this.stateValue}`);
    }
    this.stop('revoked');
    await this.calls.leaseRevoke(this.id);
  }

  /** The cluster's view of the lease: seconds left (-1 once gone) and, optionally, its keys. */
  timeToLive(options?: { keys?: boolean }): Promise<LeaseTimeToLiveResponse> {
    return this.calls.leaseTimeToLive(this.id, options);
  }

  /** Stops renewing without revoking (client.close() does this); the lease runs out on its own. */
  close(): void {
    if (this.stateValue === 'alive') this.stop('closed');
  }

  /** Throws the loss reason if the lease is no longer alive. */
  assertAlive(): void {
    if (this.stateValue !== 'alive')
      throw new ShoalError('FAILED_PRECONDITION', `lease ${this.idHex} is ${this.stateValue}`);
  }

  private intervalMs(): number {
    return Math.max(KEEP_ALIVE_INTERVAL_MS_MIN, (this.ttlSeconds * 1000) / KEEP_ALIVE_DIVISOR);
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => void this.renew(), delayMs);
    // A lease alone must not keep the process running; the caller's work does.
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    if (this.stateValue !== 'alive') return;
    const sentMs = performance.now();
    const remainingMs = this.expiresAtMs - sentMs;
    if (remainingMs <= 0) return this.lose(this.expiredError());
    let expiry: NodeJS.Timeout | undefined;
    // The call retries internally for longer than a short TTL; the lease is lost when its TTL
    // runs out first, whatever the call does later.
    const deadline = new Promise<'expired'>((resolve) => {
      expiry = setTimeout(() => resolve('expired'), remainingMs);
    });
    let outcome: LeaseKeepAliveResponse | 'expired' | 'failed';
    try {
      const attemptMs = Math.min(
        KEEP_ALIVE_ATTEMPT_MS_MAX,
        Math.max(KEEP_ALIVE_ATTEMPT_MS_MIN, (this.ttlSeconds * 1000) / KEEP_ALIVE_DIVISOR),
      );
      const renewal = this.calls.leaseKeepAlive(this.id, { timeoutMs: attemptMs });
      outcome = await Promise.race([renewal, deadline]);
    } catch {
      outcome = 'failed';
    } finally {
      clearTimeout(expiry);
    }
    if (this.stateValue !== 'alive') return;
    if (outcome === 'expired') return this.lose(this.expiredError());
    if (outcome === 'failed') return this.schedule(KEEP_ALIVE_RETRY_MS);
    if (outcome.ttlSeconds <= 0)
      return this.lose(
        new ShoalError('NOT_FOUND', `etcdserver: requested lease not found (${this.idHex})`),
      );
    this.expiresAtMs = sentMs + outcome.ttlSeconds * 1000;
    this.keepAlives++;
    this.emit('keepalive', outcome.ttlSeconds);
    this.schedule(this.intervalMs());
  }

  private expiredError(): ShoalError {
    return new ShoalError(
      'DEADLINE_EXCEEDED',
      `lease ${this.idHex} could not be renewed before its ${this.ttlSeconds} s TTL ran out`,
    );
  }

  private lose(error: ShoalError): void {
    this.stop('lost');
    this.resolveLost(error);
    this.emit('lost', error);
  }

  private stop(state: Exclude<LeaseState, 'alive'>): void {
    this.stateValue = state;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.onStop(this);
  }
}
