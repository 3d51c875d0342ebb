/**
 * The Cluster API and MoveLeader on top of raft: MemberAdd (voter or learner), MemberRemove and
 * MemberPromote are raft conf changes whose context names the member (so every member's registry
 * learns its URLs from the same entry); MemberUpdate is a registry command. Errors use etcd's
 * codes and messages. A promotion needs the leader's view of the learner's progress, so a
 * follower forwards it to the leader over the peer transport (see `promote`).
 */
import { ConfChangeTransition, ConfChangeType, Role } from '../raft/index.js';
import { encodeConfChangeContext } from './command.js';
import { memberIdFor } from './config.js';
import type { MemberAddResponse } from './etcd/backend.js';
import { EtcdError, etcdErrors, GrpcCode } from './etcd/errors.js';
import type { MemberListResponse, ResponseHeader } from './etcd/types.js';
import type { MemberCore } from './member-core.js';
import type { MemberRecord } from './registry.js';
import type { ForwardResult } from './transport.js';

/** etcd promotes a learner only when its log is within 10% of the leader's (readyPercent 0.9). */
const LEARNER_READY_FRACTION = 0.9;
/** etcd's maximum number of learners in a cluster. */
export const LEARNERS_MAX = 1;
const MOVE_LEADER_POLL_MS = 20;

const fail = (code: number, message: string) => new EtcdError(code as 9, message);
export const clusterErrors = {
  peerUrlExists: () => fail(GrpcCode.failedPrecondition, 'etcdserver: Peer URLs already exists'),
  memberExists: () => fail(GrpcCode.failedPrecondition, 'etcdserver: member ID already exist'),
  badUrls: () => fail(GrpcCode.invalidArgument, 'etcdserver: given member URLs are invalid'),
  notLearner: () =>
    fail(GrpcCode.failedPrecondition, 'etcdserver: can only promote a learner member'),
  learnerNotReady: () =>
    fail(
      GrpcCode.failedPrecondition,
      'etcdserver: can only promote a learner member which is in sync with leader',
    ),
  tooManyLearners: () =>
    fail(GrpcCode.failedPrecondition, 'etcdserver: too many learner members in cluster'),
  badTransferee: () => fail(GrpcCode.failedPrecondition, 'etcdserver: bad leader transferee'),
};

function normalizeUrls(urls: string[]): string[] {
  if (urls.length === 0) throw clusterErrors.badUrls();
  return urls.map((text) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw clusterErrors.badUrls();
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.port === '') {
      throw clusterErrors.badUrls();
    }
    return url.href.replace(/\/$/, '');
  });
}

export class ClusterOps {
  constructor(private readonly core: MemberCore) {}

  private header(): ResponseHeader {
    const c = this.core;
    return {
      clusterId: BigInt(c.registry.clusterId),
      memberId: BigInt(c.id),
      revision: c.kv.revision,
      raftTerm: BigInt(c.raft.term),
    };
  }

  private list(): MemberListResponse {
    return { header: this.header(), members: this.core.members() };
  }

  private async confChange(
    type: (typeof ConfChangeType)[keyof typeof ConfChangeType],
    nodeId: number,
    member: { name: string; peerUrls: string[]; isLearner: boolean },
    action: 'add' | 'remove' | 'promote',
  ): Promise<void> {
    const core = this.core;
    await core.proposer.waitForLeader();
    const id = core.proposer.nextId();
    const context = encodeConfChangeContext({ id, member: { id: nodeId, ...member }, action });
    await core.proposer.proposeWithId(id, context, () =>
      core.raft.proposeConfChange({
        transition: ConfChangeTransition.Auto,
        changes: [{ type, nodeId }],
        context,
      }),
    );
  }

  /**
   * MemberAdd. `learnersMax` is etcd's limit of one learner for operators; autopilot passes its
   * own, since it holds several learners as standby replacements for voters.
   */
  async add(
    peerUrls: string[],
    isLearner: boolean,
    learnersMax = LEARNERS_MAX,
  ): Promise<MemberAddResponse> {
    const urls = normalizeUrls(peerUrls);
    const members = this.core.registry.list();
    if (members.some((m) => m.peerUrls.some((u) => urls.includes(u))))
      throw clusterErrors.peerUrlExists();
    if (isLearner && members.filter((m) => m.isLearner).length >= learnersMax) {
      throw clusterErrors.tooManyLearners();
    }
    const id = memberIdFor(
      urls.map((u) => new URL(u)),
      this.core.config.initialClusterToken,
    );
    if (this.core.registry.get(id) !== undefined) throw clusterErrors.memberExists();
    const type = isLearner ? ConfChangeType.AddLearner : ConfChangeType.AddNode;
    await this.confChange(type, id, { name: '', peerUrls: urls, isLearner }, 'add');
    return {
      header: this.header(),
      member: { id: BigInt(id), name: '', peerUrls: urls, clientUrls: [], isLearner },
      members: this.core.members(),
    };
  }

  private existing(id: bigint) {
    const member =
      id <= BigInt(Number.MAX_SAFE_INTEGER) ? this.core.registry.get(Number(id)) : undefined;
    if (member === undefined) throw etcdErrors.memberNotFound();
    return member;
  }

  async remove(id: bigint): Promise<MemberListResponse> {
    const member = this.existing(id);
    await this.confChange(ConfChangeType.RemoveNode, member.id, member, 'remove');
    return this.list();
  }

  async update(id: bigint, peerUrls: string[]): Promise<MemberListResponse> {
    const member = this.existing(id);
    const urls = normalizeUrls(peerUrls);
    const others = this.core.registry.list().filter((m) => m.id !== member.id);
    if (others.some((m) => m.peerUrls.some((u) => urls.includes(u))))
      throw clusterErrors.peerUrlExists();
    const outcome = await this.core.proposer.propose({
      registry: { updatePeerUrls: { id: member.id, peerUrls: urls } },
    });
    if (outcome.status !== 'member') throw new Error(`member update applied as ${outcome.status}`);
    return this.list();
  }

  /**
   * Promotes a learner once it has caught up. Only the leader knows the learner's progress, so a
   * follower forwards the request to it over the peer transport and then waits (bounded) until
   * it has applied the promotion itself, so that its answer lists the member as a voter.
   */
  async promote(id: bigint): Promise<MemberListResponse> {
    const member = this.existing(id);
    if (!member.isLearner) throw clusterErrors.notLearner();
    const core = this.core;
    await core.proposer.waitForLeader();
    if (core.raft.role === Role.Leader) {
      await this.promoteLearner(member);
      return this.list();
    }
    const result = await core.transport.forwardPromote(
      core.raft.lead,
      member.id,
      core.requestTimeoutMs,
    );
    if (!result.ok) throw new EtcdError(result.code as 9, result.message);
    const deadline = performance.now() + core.requestTimeoutMs;
    while (core.registry.get(member.id)?.isLearner === true) {
      if (performance.now() > deadline) throw etcdErrors.timeout();
      await new Promise((resolve) => setTimeout(resolve, MOVE_LEADER_POLL_MS));
    }
    return this.list();
  }

  /** The leader's side of a promotion forwarded by a follower. */
  async promoteOnLeader(id: number): Promise<ForwardResult> {
    try {
      const member = this.core.registry.get(id);
      if (member === undefined) throw etcdErrors.memberNotFound();
      if (!member.isLearner) throw clusterErrors.notLearner();
      if (this.core.raft.role !== Role.Leader) throw etcdErrors.notLeader();
      await this.promoteLearner(member);
      return { ok: true, code: 0, message: '' };
    } catch (error) {
      if (error instanceof EtcdError)
        return { ok: false, code: error.code, message: error.message };
      throw error;
    }
  }

  private async promoteLearner(member: MemberRecord): Promise<void> {
    const core = this.core;
    const status = core.raft.node.status();
    const learner = status.progress?.get(member.id);
    const leaderMatch = status.progress?.get(core.id)?.match ?? status.lastIndex;
    if (learner === undefined || learner.match < leaderMatch * LEARNER_READY_FRACTION) {
      throw clusterErrors.learnerNotReady();
    }
    await this.confChange(ConfChangeType.AddNode, member.id, member, 'promote');
  }

  /** Maintenance.MoveLeader: served by the leader, as in etcd. */
  async moveLeader(targetId: bigint): Promise<{ header: ResponseHeader }> {
    const core = this.core;
    if (core.raft.role !== Role.Leader) throw etcdErrors.notLeader();
    const target = targetId <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(targetId) : 0;
    const config = core.raft.node.status().config;
    if (!config.voters.includes(target)) throw clusterErrors.badTransferee();
    if (target === core.id) return { header: this.header() };
    core.raft.transferLeader(target);
    const deadline = performance.now() + core.requestTimeoutMs;
    while (core.raft.lead !== target) {
      if (performance.now() > deadline) throw etcdErrors.timeout();
      await new Promise((resolve) => setTimeout(resolve, MOVE_LEADER_POLL_MS));
    }
    return { header: this.header() };
  }
}
