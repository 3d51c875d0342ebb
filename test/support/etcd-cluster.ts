/**
 * A cluster of real etcd processes (the reference implementation) on free local ports, for tests
 * that run the same fault workload against etcd and shoal. Members can be SIGKILLed and restarted
 * from their data dirs, or frozen with SIGSTOP, like shoal's MemberProcess. A member counts as
 * started when etcd logs that it serves clients, which it does only after joining the cluster.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../../src/cli/ports.js';
import { etcdStartTimeoutMs } from './etcd-process.js';

/** etcd log kept for failure messages. */
const LOG_CHARS_MAX = 64 * 1024;

export class EtcdMember {
  child: ChildProcess | null = null;
  log = '';

  constructor(
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
  ) {}

  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  get peerUrl(): string {
    return `http://127.0.0.1:${this.peerPort}`;
  }

  /** Starts (or restarts from its data dir) and resolves once etcd serves clients. */
  start(initialCluster: string): Promise<void> {
    const clientUrl = `http://${this.endpoint}`;
    const child = spawn(
      'etcd',
      [
        `--name=${this.name}`,
        `--data-dir=${this.dataDir}`,
        `--listen-client-urls=${clientUrl}`,
        `--advertise-client-urls=${clientUrl}`,
        `--listen-peer-urls=${this.peerUrl}`,
        `--initial-advertise-peer-urls=${this.peerUrl}`,
        `--initial-cluster=${initialCluster}`,
        '--initial-cluster-state=new',
        '--initial-cluster-token=shoal-test',
        // The same timing as shoal's test members, so both see the same fault schedule alike.
        '--heartbeat-interval=50',
        '--election-timeout=500',
        '--logger=zap',
        '--log-outputs=stderr',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child = child;
    this.log = '';
    return new Promise((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(
        () => reject(new Error(`etcd ${this.name} not ready:\n${this.log.slice(-2000)}`)),
        etcdStartTimeoutMs,
      );
      // stderr is always drained, so etcd never blocks on a full pipe.
      child.stderr?.on('data', (chunk: Buffer) => {
        this.log += chunk.toString();
        if (this.log.length > LOG_CHARS_MAX) this.log = this.log.slice(-LOG_CHARS_MAX / 2);
        if (!ready && /serving client (traffic|requests)/.test(this.log)) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (!ready) reject(new Error(`etcd ${this.name} exited with ${code}:\n${this.log}`));
      });
    });
  }

  /** Sends a signal and waits for the process to exit. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }
}

export class EtcdCluster {
  private constructor(
    readonly root: string,
    readonly members: EtcdMember[],
  ) {}

  /** Reserves ports for `count` members and starts them all. */
  static async start(count: number): Promise<EtcdCluster> {
    const root = mkdtempSync(join(tmpdir(), 'shoal-etcd-cluster-'));
    const members: EtcdMember[] = [];
    for (let i = 0; i < count; i++) {
      const name = `e${i + 1}`;
      const [clientPort, peerPort] = await freePorts(2);
      members.push(new EtcdMember(name, clientPort!, peerPort!, join(root, name)));
    }
    const cluster = new EtcdCluster(root, members);
    try {
      await Promise.all(members.map((m) => m.start(cluster.initialCluster)));
    } catch (error) {
      await cluster.stopAll();
      throw error;
    }
    return cluster;
  }

  get initialCluster(): string {
    return this.members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  }

  async stopAll(): Promise<void> {
    for (const member of this.members) member.child?.kill('SIGCONT');
    await Promise.all(this.members.map((m) => m.stop('SIGKILL')));
    rmSync(this.root, { recursive: true, force: true });
  }
}
