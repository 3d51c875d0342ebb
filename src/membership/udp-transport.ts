/**
 * SWIM's datagram transport over UDP (node:dgram). It sends compound packets of at most
 * `DATAGRAM_BYTES_MAX` bytes and hands decoded, validated packets to its handler. Oversized or
 * malformed datagrams are dropped and counted, never thrown: anything may arrive on a UDP port.
 */
import { createSocket, type Socket } from 'node:dgram';
import { decodePacket, encodePacket } from './codec.js';
import { DATAGRAM_BYTES_MAX, type Message } from './core/types.js';

/** Longest `close()` waits for datagrams already queued on the socket. */
export const CLOSE_DRAIN_MS = 1000;

export interface UdpTransportStats {
  datagramsSent: number;
  datagramsReceived: number;
  /** Received datagrams larger than DATAGRAM_BYTES_MAX. */
  droppedOversized: number;
  /** Received datagrams that did not decode to a valid compound packet. */
  droppedMalformed: number;
  /** Packets not sent because they encoded larger than DATAGRAM_BYTES_MAX (a bug in the caller). */
  droppedOversizedSend: number;
  /** Packets not sent because the address (gossiped by others, so untrusted) is not host:port. */
  droppedBadAddress: number;
  sendErrors: number;
}

export type PacketHandler = (fromAddress: string, messages: Message[]) => void;

/** Formats a host and port as the "host:port" addresses SWIM gossips (IPv6 hosts in brackets). */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function parseAddress(address: string): { host: string; port: number } {
  const separator = address.lastIndexOf(':');
  const port = Number(address.slice(separator + 1));
  let host = address.slice(0, separator);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (separator <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw Object.assign(new Error(`invalid address "${address}" (want host:port)`), {
      code: 'INVALID_ADDRESS',
    });
  }
  return { host, port };
}

export class UdpTransport {
  readonly stats: UdpTransportStats = {
    datagramsSent: 0,
    datagramsReceived: 0,
    droppedOversized: 0,
    droppedMalformed: 0,
    droppedOversizedSend: 0,
    droppedBadAddress: 0,
    sendErrors: 0,
  };
  private handler: PacketHandler = () => {};
  /** Sends handed to the socket whose callback has not run yet (the socket resolves addresses). */
  private sendsInFlight = 0;
  private onSendsDrained: (() => void) | null = null;

  private constructor(
    private readonly socket: Socket,
    /** The "host:port" this transport receives on. */
    readonly address: string,
  ) {
    socket.on('message', (bytes, remote) => this.onDatagram(bytes, remote.address, remote.port));
    // Errors on a UDP socket (e.g. ICMP port unreachable on some systems) are not fatal.
    socket.on('error', () => {
      this.stats.sendErrors++;
    });
  }

  /** Binds a UDP socket on `host:port` (port 0 picks a free one). */
  static bind(host: string, port: number): Promise<UdpTransport> {
    const type = host.includes(':') ? 'udp6' : 'udp4';
    const socket = createSocket({ type, recvBufferSize: 1 << 20 });
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        const bound = socket.address();
        resolve(new UdpTransport(socket, formatAddress(host, bound.port)));
      });
    });
  }

  onPacket(handler: PacketHandler): void {
    this.handler = handler;
  }

  /** Encodes and sends one compound packet; oversized packets are dropped and counted. */
  send(toAddress: string, messages: readonly Message[]): void {
    const bytes = encodePacket(messages);
    if (bytes.byteLength > DATAGRAM_BYTES_MAX) {
      this.stats.droppedOversizedSend++;
      return;
    }
    this.sendRaw(toAddress, bytes);
  }

  /** Sends raw bytes (for tests that must put garbage on the wire, and for `send`). */
  sendRaw(toAddress: string, bytes: Uint8Array): void {
    let host: string;
    let port: number;
    try {
      ({ host, port } = parseAddress(toAddress));
    } catch {
      this.stats.droppedBadAddress++;
      return;
    }
    this.stats.datagramsSent++;
    this.sendsInFlight++;
    this.socket.send(bytes, port, host, (error) => {
      if (error) this.stats.sendErrors++;
      this.sendsInFlight--;
      if (this.sendsInFlight === 0) this.onSendsDrained?.();
    });
  }

  /**
   * Closes the socket once the datagrams already handed to it are out (so a leave notice sent just
   * before closing is not lost), waiting at most `CLOSE_DRAIN_MS`.
   */
  async close(): Promise<void> {
    if (this.sendsInFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_DRAIN_MS);
        this.onSendsDrained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private onDatagram(bytes: Buffer, host: string, port: number): void {
    this.stats.datagramsReceived++;
    if (bytes.byteLength > DATAGRAM_BYTES_MAX) {
      this.stats.droppedOversized++;
      return;
    }
    const messages = decodePacket(bytes);
    if (messages === null) {
      this.stats.droppedMalformed++;
      return;
    }
    this.handler(formatAddress(host, port), messages);
  }
}
