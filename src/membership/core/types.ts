/**
 * The data of the SWIM protocol: member states, the messages members exchange (as plain objects,
 * which the transport encodes as msgpack), membership events and the configuration with
 * memberlist's LAN defaults.
 */

/** Largest datagram the core ever asks the transport to send, header and compound framing included. */
export const DATAGRAM_BYTES_MAX = 1400;
/** Largest metadata a member may gossip about itself (memberlist's MetaMaxSize). */
export const META_BYTES_MAX = 512;
/** Longest member name or address, in UTF-16 code units; longer ones are rejected as malformed. */
export const NAME_LENGTH_MAX = 128;
/**
 * Largest push-pull state exchange, msgpack-encoded, in either direction. A member builds its state
 * up to this size and leaves out the members beyond it (gossip still spreads them); a stream
 * transport rejects larger exchanges with a coded error. Realistic entries take about 100 bytes, so
 * this holds the full state of thousands of members; it is below shoal RPC's 16 MiB frame limit.
 */
export const PUSH_PULL_BYTES_MAX = 4 * 1024 * 1024;

export const MemberState = { alive: 0, suspect: 1, dead: 2, left: 3 } as const;
export type MemberState = (typeof MemberState)[keyof typeof MemberState];
export const memberStateNames = ['alive', 'suspect', 'dead', 'left'] as const;
export type MemberStateName = (typeof memberStateNames)[number];

/** What a member knows about one member of the cluster, as handed to callers. */
export interface MemberView {
  readonly name: string;
  /** Opaque transport address ("host:port" for UDP, a node name in the simulator). */
  readonly address: string;
  readonly incarnation: number;
  readonly state: MemberStateName;
  readonly meta: Uint8Array;
}

/** One member's entry in a push-pull state exchange. */
export interface PushPullEntry {
  name: string;
  address: string;
  incarnation: number;
  state: MemberState;
  meta: Uint8Array;
}

export interface PingMessage {
  type: 'ping';
  seq: number;
  /** The name the sender believes lives at the address, so a reused address does not ack. */
  target: string;
  source: string;
  sourceAddress: string;
}
export interface PingReqMessage {
  type: 'pingReq';
  seq: number;
  target: string;
  targetAddress: string;
  source: string;
  sourceAddress: string;
  /** Whether the requester wants a nack when the target does not answer (Lifeguard). */
  nack: boolean;
}
export interface AckMessage {
  type: 'ack';
  seq: number;
}
export interface NackMessage {
  type: 'nack';
  seq: number;
}
export interface AliveMessage {
  type: 'alive';
  name: string;
  address: string;
  incarnation: number;
  meta: Uint8Array;
}
export interface SuspectMessage {
  type: 'suspect';
  name: string;
  incarnation: number;
  from: string;
}
/** A death notice; when `from === name` the member left gracefully. */
export interface DeadMessage {
  type: 'dead';
  name: string;
  incarnation: number;
  from: string;
}
export interface PushPullMessage {
  type: 'pushPull';
  /** Sent by a member joining through a seed. */
  join: boolean;
  /** The sender wants the receiver's full state back. */
  reply: boolean;
  states: PushPullEntry[];
}

export type BroadcastMessage = AliveMessage | SuspectMessage | DeadMessage;
export type Message =
  | PingMessage
  | PingReqMessage
  | AckMessage
  | NackMessage
  | BroadcastMessage
  | PushPullMessage;

/**
 * What the core asks the transport to send. `messages` fit one datagram of `DATAGRAM_BYTES_MAX`
 * bytes (a compound message) unless `stream` is set: push-pull exchanges belong on a stream (TCP in
 * memberlist); a transport without one splits them with `splitPushPull`.
 */
export interface Packet {
  readonly toAddress: string;
  readonly messages: Message[];
  readonly stream: boolean;
}

/**
 * memberlist's TCP fallback ping, as data: the core asks the driver to send `ping` to `toAddress`
 * over a reliable stream and to report the outcome with `Swim.streamPingResult(ping.seq, ...)`
 * within `timeoutMs` (the end of the probe period). A result arriving later is ignored.
 */
export interface StreamPingRequest {
  readonly toAddress: string;
  readonly ping: PingMessage;
  readonly timeoutMs: number;
}

export type MembershipEventType = 'join' | 'update' | 'suspect' | 'alive' | 'dead' | 'left';
export interface MembershipEvent {
  readonly type: MembershipEventType;
  readonly member: MemberView;
  readonly atMs: number;
}

/** Which of Lifeguard's refinements are on (all by default; off only to measure their effect). */
export interface LifeguardOptions {
  /** Local health awareness: the health multiplier, and nacks from indirect probes. */
  readonly localHealthAwareness: boolean;
  /** Suspicion timeouts that start long and shrink as independent members confirm. */
  readonly dynamicSuspicion: boolean;
  /** A suspected member is told so directly in the ping. */
  readonly buddySystem: boolean;
}

export interface SwimConfig {
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly indirectChecks: number;
  readonly suspicionMult: number;
  readonly suspicionMaxTimeoutMult: number;
  readonly retransmitMult: number;
  readonly gossipIntervalMs: number;
  readonly gossipNodes: number;
  /** How long dead members still receive gossip, and stay listed before they are forgotten. */
  readonly gossipToTheDeadMs: number;
  readonly pushPullIntervalMs: number;
  readonly awarenessMaxMultiplier: number;
  readonly datagramBytesMax: number;
  /**
   * When a direct probe times out, also ping the target over a reliable stream (memberlist's TCP
   * fallback ping, on unless DisableTcpPings): a member that answers there is not suspected, so a
   * member whose UDP is blocked but whose TCP works is not declared dead. Only useful when the
   * driver has a stream transport; the UDP-only runtime turns it off.
   */
  readonly fallbackPing: boolean;
  readonly lifeguard: LifeguardOptions;
}

/** memberlist's DefaultLANConfig (with its Lifeguard-era suspicion and awareness settings). */
export function defaultLanConfig(overrides: Partial<SwimConfig> = {}): SwimConfig {
  return {
    probeIntervalMs: 1000,
    probeTimeoutMs: 500,
    indirectChecks: 3,
    suspicionMult: 4,
    suspicionMaxTimeoutMult: 6,
    retransmitMult: 4,
    gossipIntervalMs: 200,
    gossipNodes: 3,
    gossipToTheDeadMs: 30_000,
    pushPullIntervalMs: 30_000,
    awarenessMaxMultiplier: 8,
    datagramBytesMax: DATAGRAM_BYTES_MAX,
    fallbackPing: true,
    lifeguard: { localHealthAwareness: true, dynamicSuspicion: true, buddySystem: true },
    ...overrides,
  };
}

export const lifeguardOff: LifeguardOptions = {
  localHealthAwareness: false,
  dynamicSuspicion: false,
  buddySystem: false,
};
