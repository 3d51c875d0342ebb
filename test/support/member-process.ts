/**
 * Real `shoal start` member processes for process-level tests: a cluster of N members on reserved
 * free ports, each a child process with its own data dir, started, SIGKILLed, SIGTERMed and
 * restarted at will. A member counts as started when it prints its "shoal member ready" line.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MEMBER_NODE_FLAGS } from '../../src/cli/node-flags.js';
import { freePorts } from '../../src/cli/ports.js';
import { etcdctl } from './etcdctl.js';

const SHOAL_BIN = fileURLToPath(new URL('../../bin/shoal.mjs', import.meta.url));
const READY_TIMEOUT_MS = 30_000;
/** Member output kept for assertions and failure messages. */
const OUTPUT_CHARS_MAX = 4 * 1024 * 1024;

export interface MemberSpec {
  name: string;
  clientPort: number;
  peerPort: number;
  metricsPort: number;
  dataDir: string;
  extraArgs: string[];
}

export class MemberProcess {
  child: ChildProcess | null = null;
  output = '';
  logLevel = process.env.SHOAL_TEST_LOG_LEVEL ?? 'warn';
  /** Extra environment for the next start (e.g. SHOAL_TEST_BOOT_ID to simulate a machine restart). */
  env: Record<string, string> = {};

  constructor(readonly spec: MemberSpec) {}

  /** host:port, the form etcdctl 3.4 needs for endpoint commands. */
  get endpoint(): string {
    return `127.0.0.1:${this.spec.clientPort}`;
  }

  get peerUrl(): string {
    return `http://127.0.0.1:${this.spec.peerPort}`;
  }

  get metricsUrl(): string {
    return `http://127.0.0.1:${this.spec.metricsPort}`;
  }

  async start(initialCluster: string, state: 'new' | 'existing'): Promise<void> {
    const s = this.spec;
    const args = [
      ...MEMBER_NODE_FLAGS,
      SHOAL_BIN,
      'start',
      `--name=${s.name}`,
      `--data-dir=${s.dataDir}`,
      `--listen-client-urls=http://127.0.0.1:${s.clientPort}`,
      `--advertise-client-urls=http://127.0.0.1:${s.clientPort}`,
      `--listen-peer-urls=${this.peerUrl}`,
      `--initial-advertise-peer-urls=${this.peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-state=${state}`,
      `--listen-metrics-urls=${this.metricsUrl}`,
      '--heartbeat-interval=50',
      '--election-timeout=500',
      ...s.extraArgs,
    ];
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SHOAL_LOG_LEVEL: this.logLevel, ...this.env },
    });
    this.child = child;
    this.output = '';
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(
        () => reject(new Error(`${s.name} not ready: ${this.output}`)),
        READY_TIMEOUT_MS,
      );
      const onData = (data: Buffer) => {
        this.output += data.toString();
        if (this.output.length > OUTPUT_CHARS_MAX)
          this.output = this.output.slice(-OUTPUT_CHARS_MAX / 2);
        if (!ready && this.output.includes('shoal member ready')) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (!ready) reject(new Error(`${s.name} exited with ${code} before ready: ${this.output}`));
      });
    });
  }

  /** Waits (bounded) for the process to exit on its own; returns its exit code. */
  async exited(timeoutMs: number): Promise<number | null> {
    const child = this.child;
    if (child === null) return null;
    if (child.exitCode !== null) return child.exitCode;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.spec.name} did not exit`)),
        timeoutMs,
      );
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  /** Sends a signal and waits for the process to exit; returns its exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null)
      return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    child.kill(signal);
    const code = await exited;
    this.child = null;
    return code;
  }
}

export class ProcessCluster {
  readonly root: string;
  readonly members: MemberProcess[] = [];

  private constructor(root: string) {
    this.root = root;
  }

  /** Plans `count` members (ports reserved now) without starting them. */
  static async plan(count: number, extraArgs: string[] = []): Promise<ProcessCluster> {
    const cluster = new ProcessCluster(mkdtempSync(join(tmpdir(), 'shoal-cluster-')));
    for (let i = 0; i < count; i++) await cluster.addSpec(extraArgs);
    return cluster;
  }

  async addSpec(extraArgs: string[] = []): Promise<MemberProcess> {
    const [clientPort, peerPort, metricsPort] = await freePorts(3);
    const name = `m${this.members.length + 1}`;
    const member = new MemberProcess({
      name,
      clientPort: clientPort!,
      peerPort: peerPort!,
      metricsPort: metricsPort!,
      dataDir: join(this.root, name),
      extraArgs,
    });
    this.members.push(member);
    return member;
  }

  initialCluster(members: readonly MemberProcess[] = this.members): string {
    return members.map((m) => `${m.spec.name}=${m.peerUrl}`).join(',');
  }

  async startAll(): Promise<void> {
    const initial = this.initialCluster();
    await Promise.all(this.members.map((m) => m.start(initial, 'new')));
  }

  endpoints(members: readonly MemberProcess[] = this.members): string {
    return members.map((m) => m.endpoint).join(',');
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop('SIGKILL')));
    rmSync(this.root, { recursive: true, force: true });
  }
}

export interface EndpointStatus {
  memberId: string;
  leader: string;
  raftIndex: number;
  raftAppliedIndex: number;
  raftTerm: number;
  isLearner: boolean;
}

/** `etcdctl endpoint status -w json` for one member, or null if it does not answer. */
export async function endpointStatus(member: MemberProcess): Promise<EndpointStatus | null> {
  const result = await etcdctl(member.endpoint, ['endpoint', 'status', '-w', 'json']);
  if (result.code !== 0) return null;
  const parsed = JSON.parse(result.stdout) as {
    Status: {
      header: { member_id: number | string };
      leader: number | string;
      raftIndex: number;
      raftAppliedIndex?: number;
      raftTerm: number;
    };
  }[];
  const status = parsed[0]!.Status;
  return {
    memberId: String(status.header.member_id),
    leader: String(status.leader),
    raftIndex: status.raftIndex,
    raftAppliedIndex: status.raftAppliedIndex ?? 0,
    raftTerm: status.raftTerm,
    isLearner: false,
  };
}

/** Polls `condition` until it returns a value other than undefined/false, or fails at the deadline. */
export async function waitFor<T>(
  what: string,
  condition: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  while (performance.now() < deadline) {
    try {
      const value = await condition();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** Waits until every given member reports the same leader; returns the leader's member. */
export async function waitForLeader(
  members: readonly MemberProcess[],
  timeoutMs = 20_000,
): Promise<MemberProcess> {
  return waitFor(
    'a leader all members agree on',
    async () => {
      const statuses = await Promise.all(members.map(endpointStatus));
      if (statuses.some((s) => s === null || s.leader === '0')) return undefined;
      const leader = statuses[0]!.leader;
      if (statuses.some((s) => s!.leader !== leader)) return undefined;
      return members[statuses.findIndex((s) => s!.memberId === leader)];
    },
    timeoutMs,
    200,
  );
}
