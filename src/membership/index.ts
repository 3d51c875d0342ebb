/**
 * shoal's membership layer: SWIM failure detection and gossip with Lifeguard's refinements, in the
 * manner of HashiCorp's memberlist. Raft decides; SWIM knows who is alive.
 *
 * Public API:
 * - `Memberlist` — one member's runtime on UDP: `Memberlist.create({ name, host, port, meta,
 *   config })`, `join(seeds)`, `leave()`, `shutdown()`, `members()`, `aliveMembers()`,
 *   `updateMeta(bytes)`, `stats`, and `on('event', (event) => …)` with events `join`, `update`,
 *   `suspect`, `alive` (a suspicion was refuted), `dead` and `left`.
 * - `Swim` — the pure, deterministic protocol core (no I/O, no clock): `tick(nowMs)`,
 *   `receive(fromAddress, message, nowMs)`, `drain()` → packets and events, `nextDeadlineMs()`.
 *   The simulator (src/sim/swim) drives it directly.
 * - `defaultLanConfig(overrides)` — memberlist's LAN defaults (probe 1 s / 500 ms, suspicion mult 4,
 *   suspicion max timeout mult 6, retransmit mult 4, 3 indirect checks, gossip 200 ms to 3 nodes,
 *   push-pull 30 s, awareness max multiplier 8); `lifeguardOff` turns the refinements off.
 * - `encodeMemberMeta` / `decodeMemberMeta` — the typed metadata record shoal members gossip.
 * - `UdpTransport`, `encodePacket` / `decodePacket` — the datagram layer (compound msgpack packets
 *   of at most `DATAGRAM_BYTES_MAX` = 1400 bytes).
 * - `StreamTransport` — the interface for the TCP parts (push-pull, fallback ping), to be
 *   implemented on shoal RPC; see its module comment.
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
  type SwimConfig,
} from './core/types.js';
export { parseMessage } from './core/validate.js';
export {
  Memberlist,
  MemberlistError,
  type MemberlistEvents,
  type MemberlistOptions,
} from './memberlist.js';
export { decodeMemberMeta, encodeMemberMeta, type MemberMeta } from './meta.js';
export type { StreamTransport } from './stream-transport.js';
export { UdpTransport, type UdpTransportStats } from './udp-transport.js';
