/**
 * A member's configuration: etcd's member flags with etcd's meanings and defaults, validated.
 *
 * Scripts written for etcd work unchanged with `shoal start`, so the flag names, defaults and the
 * `--initial-cluster` syntax (`name=url,name=url`) follow etcd 3.4. Member and cluster ids are
 * derived deterministically from the peer URLs and the cluster token, as etcd does, so every member
 * computes the same ids for the same initial cluster without talking to the others; they are kept
 * below 2^53 so they are exact JavaScript numbers (still valid uint64 ids on the wire).
 */
import { createHash } from 'node:crypto';
import { maxRequestBytesDefault } from './etcd/server.js';

/** etcd's default, defined once with the gRPC front end that enforces it. */
export const DEFAULT_MAX_REQUEST_BYTES = maxRequestBytesDefault;
export const DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024 * 1024 * 1024;
/** etcd refuses a quota above 8 GiB; shoal keeps the same ceiling. */
export const MAX_QUOTA_BACKEND_BYTES = 8 * 1024 * 1024 * 1024;
/** etcd's upper bound for the election timeout. */
export const MAX_ELECTION_TIMEOUT_MS = 50_000;

export interface MemberFlags {
  name?: string;
  dataDir?: string;
  listenClientUrls?: string;
  advertiseClientUrls?: string;
  listenPeerUrls?: string;
  initialAdvertisePeerUrls?: string;
  initialCluster?: string;
  initialClusterState?: string;
  initialClusterToken?: string;
  heartbeatInterval?: string | number;
  electionTimeout?: string | number;
  snapshotCount?: string | number;
  leaseCheckpointInterval?: string | number;
  maxRequestBytes?: string | number;
  quotaBackendBytes?: string | number;
  join?: string;
  autopilotVoters?: string | number;
  autopilotStabilizationMs?: string | number;
  autopilotDeadVoterMs?: string | number;
  /** etcd's --listen-metrics-urls: where /health and /metrics are served over HTTP. */
  listenMetricsUrls?: string;
}

export interface InitialMember {
  readonly name: string;
  readonly id: number;
  readonly peerUrls: readonly URL[];
}

export interface MemberConfig {
  readonly name: string;
  readonly dataDir: string;
  readonly listenClientUrls: readonly URL[];
  readonly advertiseClientUrls: readonly URL[];
  readonly listenPeerUrls: readonly URL[];
  readonly initialAdvertisePeerUrls: readonly URL[];
  readonly initialCluster: readonly InitialMember[];
  readonly initialClusterState: 'new' | 'existing';
  readonly initialClusterToken: string;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  /** How often the leader checkpoints remaining lease TTLs through raft (etcd: 5 minutes). */
  readonly leaseCheckpointIntervalMs: number;
  readonly snapshotCount: number;
  readonly maxRequestBytes: number;
  readonly quotaBackendBytes: number;
  /** Seed addresses (host:port) of members to join through SWIM gossip; empty when not joining. */
  readonly join: readonly string[];
  /**
   * A brand-new member that joins a running cluster through --join (it is not in --initial-cluster,
   * or no --initial-cluster was given): it never bootstraps raft, and waits for the leader's
   * autopilot to add it as a learner.
   */
  readonly joinOnly: boolean;
  /** Autopilot (autopilot.ts): the voter count to hold (3 or 5). */
  readonly autopilotVoters: number;
  /** How long a learner stays caught up and alive before autopilot promotes it. */
  readonly autopilotStabilizationMs: number;
  /** How long a voter is dead in SWIM before autopilot replaces it. */
  readonly autopilotDeadVoterMs: number;
  /** HTTP URLs for /health and /metrics; empty: an ephemeral port on the client URL's host. */
  readonly listenMetricsUrls: readonly URL[];
  /** This member's id, derived from its advertised peer URLs and the cluster token. */
  readonly memberId: number;
  /** The cluster id, derived from the ids of the initial members. */
  readonly clusterId: number;
}

/** A configuration error: the message names the flag and says what is wrong with it. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function parseUrls(flag: string, value: string): URL[] {
  const urls = value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
  if (urls.length === 0) throw new ConfigError(`--${flag}: at least one URL is required`);
  return urls.map((text) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new ConfigError(
        `--${flag}: "${text}" is not a URL (expected e.g. http://127.0.0.1:2379)`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError(`--${flag}: "${text}" must use http:// or https://`);
    }
    if (url.port === '') throw new ConfigError(`--${flag}: "${text}" must name a port`);
    return url;
  });
}

function parseInteger(flag: string, value: string | number, min: number, max: number): number {
  const number = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw new ConfigError(`--${flag}: "${value}" must be an integer from ${min} to ${max}`);
  }
  return number;
}

/** Derives a member id from its peer URLs and the cluster token (stable across restarts). */
export function memberIdFor(peerUrls: readonly URL[], token: string): number {
  const hash = createHash('sha1');
  for (const url of [...peerUrls].map((u) => u.href).sort()) hash.update(url);
  hash.update(token);
  return idFromDigest(hash.digest());
}

export function clusterIdFor(memberIds: readonly number[]): number {
  const hash = createHash('sha1');
  for (const id of [...memberIds].sort((a, b) => a - b)) hash.update(String(id));
  return idFromDigest(hash.digest());
}

function idFromDigest(digest: Buffer): number {
  // Ids lie in [2^51, 2^52): exact JavaScript numbers, never 0 ("none" in raft), and always 13
  // hex digits wide, so they print alike in etcdctl's tables whatever the hash (51 hash bits:
  // 48 from the first six bytes, 3 from the seventh).
  return 2 ** 51 + digest.readUIntBE(0, 6) * 8 + (digest[6]! & 7);
}

export function parseInitialCluster(value: string, token: string): InitialMember[] {
  const byName = new Map<string, URL[]>();
  for (const part of value
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0)) {
    const equals = part.indexOf('=');
    if (equals <= 0) {
      throw new ConfigError(`--initial-cluster: "${part}" must be name=peer-url`);
    }
    const name = part.slice(0, equals);
    const urls = byName.get(name) ?? [];
    urls.push(...parseUrls('initial-cluster', part.slice(equals + 1)));
    byName.set(name, urls);
  }
  if (byName.size === 0)
    throw new ConfigError('--initial-cluster: at least one member is required');
  return [...byName].map(([name, peerUrls]) => ({
    name,
    peerUrls,
    id: memberIdFor(peerUrls, token),
  }));
}

export function resolveConfig(flags: MemberFlags): MemberConfig {
  const name = flags.name ?? 'default';
  if (name.length === 0) throw new ConfigError('--name: must not be empty');
  const token = flags.initialClusterToken ?? 'etcd-cluster';
  const heartbeatIntervalMs = parseInteger(
    'heartbeat-interval',
    flags.heartbeatInterval ?? 100,
    1,
    10_000,
  );
  const electionTimeoutMs = parseInteger(
    'election-timeout',
    flags.electionTimeout ?? 1000,
    1,
    MAX_ELECTION_TIMEOUT_MS,
  );
  if (electionTimeoutMs < 5 * heartbeatIntervalMs) {
    throw new ConfigError(
      `--election-timeout[${electionTimeoutMs}ms] should be at least 5 times --heartbeat-interval[${heartbeatIntervalMs}ms]`,
    );
  }
  const state = flags.initialClusterState ?? 'new';
  if (state !== 'new' && state !== 'existing') {
    throw new ConfigError(`--initial-cluster-state: "${state}" must be "new" or "existing"`);
  }
  const initialAdvertisePeerUrls = parseUrls(
    'initial-advertise-peer-urls',
    flags.initialAdvertisePeerUrls ?? 'http://localhost:2380',
  );
  const initialCluster = parseInitialCluster(
    flags.initialCluster ??
      `${name}=${initialAdvertisePeerUrls.map((u) => u.href.replace(/\/$/, '')).join(',')}`,
    token,
  );
  const self = initialCluster.find((member) => member.name === name);
  if (self === undefined && flags.join === undefined) {
    throw new ConfigError(`--initial-cluster: has no member named "${name}" (the value of --name)`);
  }
  const memberId = memberIdFor(initialAdvertisePeerUrls, token);
  if (self !== undefined && self.id !== memberId) {
    throw new ConfigError(
      `--initial-cluster: the peer URLs of "${name}" differ from --initial-advertise-peer-urls`,
    );
  }
  const quota =
    flags.quotaBackendBytes === undefined || Number(flags.quotaBackendBytes) === 0
      ? DEFAULT_QUOTA_BACKEND_BYTES
      : parseInteger('quota-backend-bytes', flags.quotaBackendBytes, 1, MAX_QUOTA_BACKEND_BYTES);
  const join = (flags.join ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const autopilotVoters = parseInteger('autopilot-voters', flags.autopilotVoters ?? 3, 3, 5);
  if (autopilotVoters !== 3 && autopilotVoters !== 5) {
    throw new ConfigError(`--autopilot-voters: ${autopilotVoters} must be 3 or 5`);
  }
  return {
    name,
    dataDir: flags.dataDir ?? `${name}.etcd`,
    listenClientUrls: parseUrls(
      'listen-client-urls',
      flags.listenClientUrls ?? 'http://localhost:2379',
    ),
    advertiseClientUrls: parseUrls(
      'advertise-client-urls',
      flags.advertiseClientUrls ?? 'http://localhost:2379',
    ),
    listenPeerUrls: parseUrls('listen-peer-urls', flags.listenPeerUrls ?? 'http://localhost:2380'),
    initialAdvertisePeerUrls,
    initialCluster,
    initialClusterState: state,
    initialClusterToken: token,
    heartbeatIntervalMs,
    electionTimeoutMs,
    leaseCheckpointIntervalMs: parseInteger(
      'lease-checkpoint-interval',
      flags.leaseCheckpointInterval ?? 5 * 60 * 1000,
      100,
      24 * 60 * 60 * 1000,
    ),
    snapshotCount: parseInteger(
      'snapshot-count',
      flags.snapshotCount ?? 100_000,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    maxRequestBytes: parseInteger(
      'max-request-bytes',
      flags.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
      1,
      64 * 1024 * 1024,
    ),
    quotaBackendBytes: quota,
    join,
    joinOnly: join.length > 0 && (flags.initialCluster === undefined || self === undefined),
    autopilotVoters,
    autopilotStabilizationMs: parseInteger(
      'autopilot-stabilization-ms',
      flags.autopilotStabilizationMs ?? 10_000,
      0,
      3_600_000,
    ),
    autopilotDeadVoterMs: parseInteger(
      'autopilot-dead-voter-ms',
      flags.autopilotDeadVoterMs ?? 10_000,
      0,
      3_600_000,
    ),
    listenMetricsUrls:
      flags.listenMetricsUrls === undefined || flags.listenMetricsUrls === ''
        ? []
        : parseUrls('listen-metrics-urls', flags.listenMetricsUrls),
    memberId,
    clusterId: clusterIdFor(initialCluster.map((member) => member.id)),
  };
}
