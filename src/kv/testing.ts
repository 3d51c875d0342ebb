/**
 * A small harness around MvccStore for tests, benchmarks and the simulator: a store in a fresh
 * temporary directory with a silent logger, raft indexes assigned in order, and helpers that
 * apply one request and unwrap its response or error.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { KvError } from './errors.js';
import { type ApplyResult, MvccStore, type MvccStoreOptions } from './mvcc.js';
import type { KvRequest, KvResponse } from './types.js';

export class StoreHarness {
  nextIndex = 1;

  private constructor(
    public store: MvccStore,
    readonly directory: string,
    private readonly options: Partial<MvccStoreOptions>,
  ) {}

  static open(options: Partial<MvccStoreOptions> = {}): StoreHarness {
    const directory = mkdtempSync(join(tmpdir(), 'shoal-kv-'));
    const store = MvccStore.open(StoreHarness.storeOptions(directory, options));
    return new StoreHarness(store, directory, options);
  }

  private static storeOptions(directory: string, options: Partial<MvccStoreOptions>) {
    return { path: join(directory, 'kv.mdb'), logger: pino({ level: 'silent' }), ...options };
  }

  /** Closes and reopens the store from disk (a member restart). */
  async reopen(): Promise<void> {
    await this.store.close();
    this.store = MvccStore.open(StoreHarness.storeOptions(this.directory, this.options));
    this.nextIndex = this.store.appliedIndex + 1;
  }

  applyOne(request: KvRequest): ApplyResult {
    return this.store.applyBatch([{ index: this.nextIndex++, request }])[0]!;
  }

  /** Applies a request that must succeed and returns its response. */
  ok(request: KvRequest): KvResponse {
    const result = this.applyOne(request);
    if (result.status !== 'ok') {
      const detail = result.status === 'error' ? result.error.message : result.status;
      throw new Error(`expected success, got ${detail}`);
    }
    return result.response;
  }

  /** Applies a request that must fail and returns its error. */
  fail(request: KvRequest): KvError {
    const result = this.applyOne(request);
    if (result.status !== 'error') throw new Error(`expected an error, got ${result.status}`);
    return result.error;
  }

  async close(): Promise<void> {
    await this.store.close();
    rmSync(this.directory, { recursive: true, force: true });
  }
}
