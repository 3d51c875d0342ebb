/**
 * Runs etcdctl (API v3) against an endpoint and normalizes its output so that two servers can be
 * compared: cluster and member ids, raft terms, endpoints, versions, database sizes and timings
 * legitimately differ between etcd and shoal; revisions, versions, values and errors must not.
 */
import { execFile } from 'node:child_process';

/** Bound on one etcdctl run, so a hung server fails the test instead of stalling it. */
export const etcdctlTimeoutMs = 20_000;

export interface EtcdctlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function etcdctl(
  endpoint: string,
  args: readonly string[],
  stdin?: string | Buffer,
): Promise<EtcdctlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      'etcdctl',
      [`--endpoints=${endpoint}`, '--dial-timeout=5s', '--command-timeout=10s', ...args],
      {
        env: { ...process.env, ETCDCTL_API: '3' },
        timeout: etcdctlTimeoutMs,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    // etcdctl may exit without reading its input (for commands that take none, or on an early
    // error); the resulting EPIPE is expected and must not fail the test process.
    child.stdin?.on('error', () => {});
    child.stdin?.end(stdin ?? '');
  });
}

/** Header and status fields whose values are per-server identity or timing, not semantics. */
const identityFields = new Set([
  'cluster_id',
  'member_id',
  'raft_term',
  'leader',
  'raftIndex',
  'raftTerm',
  'raftAppliedIndex',
  'dbSize',
  'dbSizeInUse',
  'version',
  'ID',
  'Endpoint',
  'clientURLs',
  'peerURLs',
  'name',
  'hash',
  // Seconds left on a lease depend on when the command ran; the granted TTL is still compared.
  'TTL',
  'ttl',
  'id',
]);

function normalizeJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalizeJson);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      // Lease ids are random per server; only whether a key has one is comparable.
      if (k === 'lease') out[k] = v ? '<lease>' : v;
      // etcd lists a lease's keys in Go map order, which changes from run to run.
      else if (k === 'keys' && Array.isArray(v)) out[k] = [...v].sort();
      else out[k] = identityFields.has(k) ? '<id>' : normalizeJson(v);
    }
    return out;
  }
  return value;
}

/** Drops clientv3's retry warnings (JSON log lines with random client ids and timestamps). */
function normalizeStderr(stderr: string): string {
  return stderr
    .split('\n')
    .filter((line) => !line.startsWith('{"level":'))
    .join('\n')
    .replace(/took = [0-9.]+[µnm]?s/g, 'took = <t>')
    .trim();
}

export interface NormalizedResult {
  code: number;
  stdout: unknown;
  stderr: string;
}

/**
 * Normalizes one result. JSON output (-w json) is parsed and its identity fields masked; plain
 * output has endpoints, hex member ids, timings, versions and sizes masked.
 */
export function normalize(result: EtcdctlResult, endpoint: string): NormalizedResult {
  // Interactive commands print prompts before their JSON, so each line is parsed on its own.
  const stdout = result.stdout
    .trim()
    .split('\n')
    .map((line) => normalizeLine(line, endpoint));
  return {
    code: result.code,
    stdout,
    stderr: normalizeStderr(result.stderr.split(endpoint).join('<endpoint>')),
  };
}

function normalizeLine(line: string, endpoint: string): unknown {
  if (line.startsWith('{') || line.startsWith('[')) {
    try {
      return normalizeJson(JSON.parse(line));
    } catch {
      // Not JSON after all: fall through to text normalization.
    }
  }
  return (
    line
      .split(endpoint)
      .join('<endpoint>')
      .replace(/took = [0-9.]+[µnm]?s/g, 'took = <t>')
      .replace(/"(ClusterID|MemberID|RaftTerm)" : \d+/g, '"$1" : <id>')
      // alarm list / disarm print the member id in decimal.
      .replace(/\bmemberID:\d+/g, 'memberID:<id>')
      .replace(/\b[0-9a-f]{12,16}\b/g, '<hexid>')
      // endpoint status table: is-leader, is-learner, then raft term, raft index, applied index.
      .replace(/(true|false), (true|false), \d+, \d+, \d+,/, '$1, $2, <term>, <index>, <index>,')
      .replace(/\b3\.4\.\d+\b/g, '<version>')
      .replace(/\b\d+(\.\d+)? (B|kB|MB)\b/g, '<size>')
  );
}
