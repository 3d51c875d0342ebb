/**
 * shoal's membership layer: SWIM failure detection and gossip with Lifeguard's refinements, in the
 * manner of HashiCorp's memberlist. Raft decides; SWIM knows who is alive.
 *
 * Public API:
 * - `Memberlist` — one member's runtime: `Memberlist.create({ name, host, port, meta, config, rpc:
 *   { server, clients } })`, `join(seeds)`, `leave()`, `shutdown()`, `members()`,
 *   `aliveMembers()`, `updateMeta(bytes)`, `stats` ({ swim, udp, stream }), and
 *   `on('event', (event) => …)` with events `join`, `update`, `suspect`, `alive` (a suspicion was
 *   refuted), `dead` and `left`. With `rpc` (the member's listening peer RpcServer and its
 *   RpcClientPool) push-pull runs over TCP and failed UDP probes are retried over TCP; UDP binds
 *   the RPC server's port number.
 * - `Swim` — the pure, deterministic protocol core (no I/O, no clock): `tick(nowMs)`,
 *   `receive(fromAddress, message, nowMs)`, `drain()` → packets, stream pings and events,
 *   `streamPingResult(seq, acked, nowMs)`, `answerPushPull`, `answerStreamPing`,
 *   `nextDeadlineMs()`. The simulator (src/sim/swim) drives it directly.
 * - `defaultLanConfig(overrides)` — memberlist's LAN defaults (probe 1 s / 500 ms, suspicion mult 4,
 *   suspicion max timeout mult 6, retransmit mult 4, 3 indirect checks, gossip 200 ms to 3 nodes,
 *   push-pull 30 s, awareness max multiplier 8, TCP fallback ping on); `lifeguardOff` turns the
 *   refinements off.
 * - `encodeMemberMeta` / `decodeMemberMeta` — the typed metadata record shoal members gossip.
 * - `UdpTransport`, `encodePacket` / `decodePacket` — the datagram layer (compound msgpack packets
 *   of at most `DATAGRAM_BYTES_MAX` = 1400 bytes).
 * - `StreamTransport` — the interface for the TCP parts (push-pull, fallback ping), implemented on
 *   shoal RPC by `RpcStreamTransport` (the `membership` RPC service, `membershipService`).
 */
export { COMPOUND_MESSAGES_MAX, decodePacket, encodePacket } from './codec.js';
export { createSeededRandom, type RandomSource } from './core/random.js';
export { Swim, type SwimOptions, type SwimOutput, type SwimStats } from './core/swim.js';
export {
  DATAGRAM_BYTES_MAX,
  defaultLanConfig,
  type LifeguardOptions,
  lifeguardOff,
  META_BYTES_MAX,
  type MemberStateName,
  type MembershipEvent,
  type MembershipEventType,
  type MemberView,
  type Message,
  type Packet,
  type PingMessage,
  PUSH_PULL_BYTES_MAX,
  type PushPullMessage,
  type StreamPingRequest,
  type SwimConfig,
} from './core/types.js';
export { parseMessage } from './core/validate.js';
export {
  Memberlist,
  MemberlistError,
  type MemberlistEvents,
  type MemberlistOptions,
  type MemberlistRpc,
  type MemberlistStreamStats,
  type PacketTransport,
  PUSH_PULL_TIMEOUT_MS_DEFAULT,
  STREAM_CALLS_IN_FLIGHT_MAX,
} from './memberlist.js';
export { decodeMemberMeta, encodeMemberMeta, type MemberMeta } from './meta.js';
export {
  membershipService,
  RpcStreamTransport,
  type RpcStreamTransportOptions,
  type StreamPingReply,
  type StreamTransportStats,
} from './rpc-stream-transport.js';
export type { StreamHandlers, StreamTransport } from './stream-transport.js';
export { type PacketHandler, UdpTransport, type UdpTransportStats } from './udp-transport.js';
