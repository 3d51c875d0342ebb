/**
 * Membership changes: encoding a `ConfChange` into an entry, and computing the configuration that
 * results from applying one (Raft thesis §4; joint consensus §4.3 and etcd's joint changes).
 *
 * Three kinds of change are accepted:
 * - simple: at most one voter is added or removed (learners may change freely). Any two majorities
 *   of the old and the new voter sets intersect, so the change is safe in one step.
 * - enter joint: the new voters are "incoming", the old ones "outgoing"; until the joint
 *   configuration is left, elections and commits need a majority of both.
 * - leave joint: an empty change; outgoing voters are dropped, `learnersNext` become learners.
 *
 * The resulting configuration is validated before it is returned; a bad change throws a
 * `RaftError` with code BAD_CONF_CHANGE and changes nothing.
 */
import { emptyTrackerConfig, isJoint, type TrackerConfig } from './progress.js';
import {
  type ConfChange,
  ConfChangeTransition,
  ConfChangeType,
  type ConfState,
  type NodeId,
  RaftError,
} from './types.js';

/** At most this many single changes in one ConfChange: a change is an admin action, not bulk. */
export const CONF_CHANGE_SINGLES_MAX = 64;
const ENCODING_VERSION = 1;

export function encodeConfChange(cc: ConfChange): Uint8Array {
  if (cc.changes.length > CONF_CHANGE_SINGLES_MAX) {
    throw new RaftError('BAD_CONF_CHANGE', `more than ${CONF_CHANGE_SINGLES_MAX} changes`);
  }
  const bytes = new Uint8Array(4 + cc.changes.length * 9 + cc.context.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, ENCODING_VERSION);
  view.setUint8(1, cc.transition);
  view.setUint16(2, cc.changes.length);
  let at = 4;
  for (const change of cc.changes) {
    view.setUint8(at, change.type);
    view.setFloat64(at + 1, change.nodeId);
    at += 9;
  }
  bytes.set(cc.context, at);
  return bytes;
}

export function decodeConfChange(bytes: Uint8Array): ConfChange {
  const bad = (why: string) =>
    new RaftError('BAD_CONF_CHANGE', `cannot decode conf change: ${why}`);
  if (bytes.byteLength < 4) throw bad('too short');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint8(0) !== ENCODING_VERSION) throw bad(`version ${view.getUint8(0)}`);
  const transition = view.getUint8(1);
  if (transition > ConfChangeTransition.JointExplicit) throw bad(`transition ${transition}`);
  const count = view.getUint16(2);
  if (count > CONF_CHANGE_SINGLES_MAX || bytes.byteLength < 4 + count * 9) throw bad('count');
  const changes: { type: ConfChangeType; nodeId: NodeId }[] = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    const type = view.getUint8(at);
    const nodeId = view.getFloat64(at + 1);
    if (type > ConfChangeType.AddLearner) throw bad(`change type ${type}`);
    if (!Number.isSafeInteger(nodeId) || nodeId <= 0) throw bad(`node id ${nodeId}`);
    changes.push({ type: type as ConfChangeType, nodeId });
    at += 9;
  }
  return {
    transition: transition as ConfChangeTransition,
    changes,
    context: bytes.slice(at),
  };
}

function cloneConfig(config: TrackerConfig): TrackerConfig {
  return {
    voters: new Set(config.voters),
    votersOutgoing: new Set(config.votersOutgoing),
    learners: new Set(config.learners),
    learnersNext: new Set(config.learnersNext),
    autoLeave: config.autoLeave,
  };
}

export function configFromConfState(cs: ConfState): TrackerConfig {
  const config = emptyTrackerConfig();
  for (const id of cs.voters) config.voters.add(id);
  for (const id of cs.votersOutgoing) config.votersOutgoing.add(id);
  for (const id of cs.learners) config.learners.add(id);
  for (const id of cs.learnersNext) config.learnersNext.add(id);
  config.autoLeave = cs.autoLeave;
  validate(config);
  return config;
}

/** Whether this change leaves a joint configuration (an empty change list). */
export function isLeaveJoint(cc: ConfChange): boolean {
  return cc.changes.length === 0;
}

/** Whether applying `cc` uses a joint configuration, and whether it is left automatically. */
export function entersJoint(cc: ConfChange): { joint: boolean; autoLeave: boolean } {
  if (isLeaveJoint(cc)) return { joint: false, autoLeave: false };
  if (cc.transition === ConfChangeTransition.Auto) {
    const voterChanges = cc.changes.filter((c) => c.type !== ConfChangeType.AddLearner).length;
    return voterChanges > 1 ? { joint: true, autoLeave: true } : { joint: false, autoLeave: false };
  }
  return { joint: true, autoLeave: cc.transition === ConfChangeTransition.JointImplicit };
}

/** The configuration after applying `cc` to `current`. Throws BAD_CONF_CHANGE if unsafe. */
export function changeConfig(current: TrackerConfig, cc: ConfChange): TrackerConfig {
  const next = cloneConfig(current);
  if (isLeaveJoint(cc)) {
    if (!isJoint(current)) throw new RaftError('BAD_CONF_CHANGE', 'not in a joint configuration');
    for (const id of next.learnersNext) next.learners.add(id);
    next.learnersNext.clear();
    next.votersOutgoing.clear();
    next.autoLeave = false;
    validate(next);
    return next;
  }
  if (isJoint(current)) {
    throw new RaftError('BAD_CONF_CHANGE', 'a joint configuration must be left first');
  }
  const { joint, autoLeave } = entersJoint(cc);
  if (joint) {
    for (const id of current.voters) next.votersOutgoing.add(id);
    next.autoLeave = autoLeave;
  }
  for (const change of cc.changes) applySingle(next, change.type, change.nodeId);
  if (!joint && symmetricDifference(current.voters, next.voters) > 1) {
    throw new RaftError('BAD_CONF_CHANGE', 'more than one voter changed without joint consensus');
  }
  if (next.voters.size === 0) throw new RaftError('BAD_CONF_CHANGE', 'removed all voters');
  validate(next);
  return next;
}

function applySingle(config: TrackerConfig, type: ConfChangeType, id: NodeId): void {
  switch (type) {
    case ConfChangeType.AddNode:
      config.voters.add(id);
      config.learners.delete(id);
      config.learnersNext.delete(id);
      return;
    case ConfChangeType.AddLearner:
      config.voters.delete(id);
      // A voter of the outgoing config stays a voter there until the joint config is left.
      if (config.votersOutgoing.has(id)) config.learnersNext.add(id);
      else config.learners.add(id);
      return;
    case ConfChangeType.RemoveNode:
      config.voters.delete(id);
      config.learners.delete(id);
      config.learnersNext.delete(id);
      return;
  }
}

function symmetricDifference(a: ReadonlySet<NodeId>, b: ReadonlySet<NodeId>): number {
  let count = 0;
  for (const id of a) if (!b.has(id)) count++;
  for (const id of b) if (!a.has(id)) count++;
  return count;
}

function validate(config: TrackerConfig): void {
  const fail = (why: string) => {
    throw new RaftError('BAD_CONF_CHANGE', `invalid configuration: ${why}`);
  };
  for (const id of config.learners) {
    if (config.voters.has(id)) fail(`${id} is both voter and learner`);
    if (config.votersOutgoing.has(id)) fail(`${id} is an outgoing voter and a learner`);
  }
  for (const id of config.learnersNext) {
    if (!config.votersOutgoing.has(id)) fail(`${id} in learnersNext is not an outgoing voter`);
  }
  if (!isJoint(config) && (config.learnersNext.size > 0 || config.autoLeave)) {
    fail('learnersNext or autoLeave outside a joint configuration');
  }
}
