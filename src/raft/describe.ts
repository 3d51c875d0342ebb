/**
 * One-line descriptions of raft messages, for logs and transcript-style tests, e.g.
 * `1->2 App term=2 prev=3@1 entries=[4@2] commit=3`.
 */
import { type Message, MessageType } from './types.js';

const TYPE_NAMES: Record<MessageType, string> = {
  0: 'Hup',
  1: 'Beat',
  2: 'Prop',
  3: 'App',
  4: 'AppResp',
  5: 'Vote',
  6: 'VoteResp',
  7: 'Snap',
  8: 'Heartbeat',
  9: 'HeartbeatResp',
  10: 'Unreachable',
  11: 'SnapStatus',
  12: 'CheckQuorum',
  13: 'TransferLeader',
  14: 'TimeoutNow',
  15: 'ReadIndex',
  16: 'ReadIndexResp',
  17: 'PreVote',
  18: 'PreVoteResp',
};

/** One line per message, e.g. `1->2 App term=2 prev=3@1 entries=[4@2] commit=3`. */
export function describeMessage(m: Message): string {
  let line = `${m.from}->${m.to} ${TYPE_NAMES[m.type]} term=${m.term}`;
  switch (m.type) {
    case MessageType.App:
      line += ` prev=${m.index}@${m.logTerm} entries=[${m.entries.map((e) => `${e.index}@${e.term}`).join(',')}] commit=${m.commit}`;
      break;
    case MessageType.AppResp:
      line += m.reject
        ? ` reject index=${m.index} hint=${m.rejectHint}@${m.logTerm}`
        : ` index=${m.index}`;
      break;
    case MessageType.Vote:
    case MessageType.PreVote:
      line += ` last=${m.index}@${m.logTerm}`;
      break;
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      line += m.reject ? ' reject' : ' grant';
      break;
    case MessageType.Heartbeat:
      line += ` commit=${m.commit}`;
      break;
    case MessageType.Snap:
      line += ` snapshot=${m.snapshot?.metadata.index}@${m.snapshot?.metadata.term}`;
      break;
    case MessageType.ReadIndexResp:
      line += ` index=${m.index}`;
      break;
  }
  return line;
}
