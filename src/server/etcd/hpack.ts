/**
 * A small HPACK (RFC 7541) decoder and a literal-only encoder, enough for shoal's HTTP/2 server
 * (http2.ts) to read the header blocks a client sends and write its own answers. The decoder keeps
 * the connection's dynamic table exactly as the client's encoder does; the encoder never indexes,
 * so what it writes leaves the client's decoding table untouched.
 * Header names and values are kept as latin1 strings, which map bytes one to one.
 */

/** One decoded header field. */
export interface HeaderField {
  name: string;
  value: string;
}

/** A malformed header block: the connection cannot go on (HTTP/2 COMPRESSION_ERROR). */
export class HpackError extends Error {
  override readonly name = 'HpackError';
}

/**
 * The largest dynamic table a client may ask for with a size update: the server's
 * SETTINGS_HEADER_TABLE_SIZE, which it leaves at the protocol's default (RFC 7541 §4.2 makes a
 * larger update a decoding error).
 */
export const dynamicTableBytesMax = 4096;
/** Longest string literal accepted, well above any real header (nghttp2 caps pairs at 64 KiB). */
export const stringBytesMax = 64 * 1024;

/** RFC 7541 Appendix A: the static table, index 1 to 61. */
const staticTable: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/**
 * RFC 7541 Appendix B gives a canonical Huffman code: codes are assigned in order of length and,
 * within one length, in symbol order. So the bit length of each of the 257 symbols (256 is EOS)
 * determines the whole code; these are the bit lengths, symbol 0 first.
 */
const huffmanLengths: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
  28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5,
  6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6,
  7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23,
  23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22,
  22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22,
  23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27,
  27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25,
  24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/** Decoding tree: node i has children at tree[2i] (bit 0) and tree[2i+1] (bit 1). */
interface HuffmanTree {
  /** Child node index, or -(symbol + 1) for a leaf, or 0 when the branch is unused. */
  next: Int32Array;
}

function buildHuffmanTree(): HuffmanTree {
  const lengths = huffmanLengths;
  if (lengths.length !== 257) throw new Error('HPACK Huffman table must have 257 symbols');
  const symbols = [...lengths.keys()].sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  // Canonical assignment: each code is the previous one plus one, shifted left on a longer length.
  const next = new Int32Array(2 * 600);
  let nodes = 1;
  let code = 0;
  let previousLength = lengths[symbols[0]!]!;
  for (const [rank, symbol] of symbols.entries()) {
    const length = lengths[symbol]!;
    if (rank > 0) code = (code + 1) * 2 ** (length - previousLength);
    previousLength = length;
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const slot = 2 * node + (Math.floor(code / 2 ** bit) % 2);
      if (bit === 0) {
        if (next[slot] !== 0) throw new Error('HPACK Huffman table is not prefix-free');
        next[slot] = -(symbol + 1);
      } else {
        if (next[slot]! < 0) throw new Error('HPACK Huffman table is not prefix-free');
        if (next[slot] === 0) next[slot] = nodes++;
        node = next[slot]!;
      }
    }
  }
  return { next };
}

const huffmanTree = buildHuffmanTree();
const eosSymbol = 256;

/**
 * Decodes a Huffman-coded string. Per RFC 7541 §5.2 the padding after the last symbol must be
 * shorter than 8 bits and all ones (a prefix of EOS), and EOS itself must never appear.
 */
export function huffmanDecode(input: Uint8Array): string {
  const out: number[] = [];
  const tree = huffmanTree.next;
  let node = 0;
  let bitsSinceSymbol = 0;
  let onesOnly = true;
  for (const byte of input) {
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >> bit) & 1;
      const child = tree[2 * node + one]!;
      bitsSinceSymbol++;
      onesOnly &&= one === 1;
      if (child < 0) {
        const symbol = -child - 1;
        if (symbol === eosSymbol) throw new HpackError('Huffman string contains EOS');
        out.push(symbol);
        node = 0;
        bitsSinceSymbol = 0;
        onesOnly = true;
      } else if (child === 0) {
        throw new HpackError('invalid Huffman code');
      } else {
        node = child;
      }
    }
  }
  if (bitsSinceSymbol > 7 || !onesOnly) throw new HpackError('invalid Huffman padding');
  return String.fromCharCode(...out);
}

/** Decodes header blocks in order, keeping the dynamic table (RFC 7541 §2.3.2, §4). */
export class HpackDecoder {
  /** Newest entry first, as indices count them. */
  readonly #dynamic: HeaderField[] = [];
  #tableBytes = 0;
  #tableBytesMax = 4096;

  /** Decodes one complete header block (all of HEADERS plus CONTINUATION fragments). */
  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    const reader = { offset: 0 };
    while (reader.offset < block.length) {
      const first = block[reader.offset]!;
      if (first & 0x80) {
        fields.push(this.#field(readInteger(block, reader, 7)));
      } else if (first & 0x40) {
        const field = this.#literal(block, reader, 6);
        this.#insert(field);
        fields.push(field);
      } else if (first & 0x20) {
        if (fields.length > 0) throw new HpackError('table size update after a header field');
        this.#resize(readInteger(block, reader, 5));
      } else {
        // Literal without indexing (0000) or never indexed (0001): nothing is inserted.
        fields.push(this.#literal(block, reader, 4));
      }
    }
    return fields;
  }

  #literal(block: Uint8Array, reader: { offset: number }, prefixBits: number): HeaderField {
    const index = readInteger(block, reader, prefixBits);
    const name = index === 0 ? readString(block, reader) : this.#field(index).name;
    return { name, value: readString(block, reader) };
  }

  #field(index: number): HeaderField {
    if (index >= 1 && index <= staticTable.length) {
      const [name, value] = staticTable[index - 1]!;
      return { name, value };
    }
    const field = this.#dynamic[index - staticTable.length - 1];
    if (!field) throw new HpackError(`header table index ${index} is out of range`);
    return field;
  }

  #insert(field: HeaderField): void {
    this.#dynamic.unshift(field);
    this.#tableBytes += entryBytes(field);
    this.#evict();
  }

  #resize(bytes: number): void {
    if (bytes > dynamicTableBytesMax) throw new HpackError(`table size ${bytes} is too large`);
    this.#tableBytesMax = bytes;
    this.#evict();
  }

  #evict(): void {
    while (this.#tableBytes > this.#tableBytesMax) {
      this.#tableBytes -= entryBytes(this.#dynamic.pop()!);
    }
  }
}

/** RFC 7541 §4.1: an entry's size is its name and value lengths plus 32. */
function entryBytes(field: HeaderField): number {
  return field.name.length + field.value.length + 32;
}

/** RFC 7541 §5.1: an integer in an N-bit prefix, continued in 7-bit groups. */
function readInteger(block: Uint8Array, reader: { offset: number }, prefixBits: number): number {
  if (reader.offset >= block.length) throw new HpackError('header block ends inside an integer');
  const mask = (1 << prefixBits) - 1;
  let value = block[reader.offset++]! & mask;
  if (value < mask) return value;
  // Four continuation bytes carry 28 bits: more than any table index or string length needs.
  for (let shift = 0; shift <= 21; shift += 7) {
    if (reader.offset >= block.length) throw new HpackError('header block ends inside an integer');
    const byte = block[reader.offset++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return value;
  }
  throw new HpackError('integer is too large');
}

function readString(block: Uint8Array, reader: { offset: number }): string {
  if (reader.offset >= block.length) throw new HpackError('header block ends inside a string');
  const huffman = (block[reader.offset]! & 0x80) !== 0;
  const length = readInteger(block, reader, 7);
  if (length > stringBytesMax) throw new HpackError(`string of ${length} bytes is too long`);
  const end = reader.offset + length;
  if (end > block.length) throw new HpackError('header block ends inside a string');
  const bytes = block.subarray(reader.offset, end);
  reader.offset = end;
  return huffman ? huffmanDecode(bytes) : Buffer.from(bytes).toString('latin1');
}

/**
 * Encodes fields as "literal without indexing, new name" with plain (not Huffman) strings: the
 * simplest form, which every decoder accepts and which leaves the decoder's dynamic table as it is.
 */
export function encodeLiteralBlock(fields: readonly HeaderField[]): Buffer {
  const parts: Buffer[] = [];
  for (const field of fields) {
    parts.push(Buffer.of(0x00), encodeString(field.name), encodeString(field.value));
  }
  return Buffer.concat(parts);
}

/**
 * An encoder that indexes: a field is sent the first time as a literal added to the peer's
 * dynamic table (RFC 7541 §6.2.1), and after that as that table's index (§6.1), as gRPC clients
 * send their request headers. The encoder mirrors the peer decoder's table, evicting as it does.
 * A block for the same fields is reused while the table is unchanged.
 */
export class HpackIndexingEncoder {
  /** Newest entry first, as indices count them. */
  readonly #table: HeaderField[] = [];
  #tableBytes = 0;
  #tableBytesMax: number;
  /** A size update owed at the start of the next block, after the peer lowered its table. */
  #sizeUpdate: number | null = null;
  /** Bumped whenever the table changes, so a cached block is known to be stale. */
  #version = 0;
  readonly #cache = new Map<readonly HeaderField[], { version: number; block: Buffer }>();

  constructor(tableBytesMax = dynamicTableBytesMax) {
    this.#tableBytesMax = tableBytesMax;
  }

  /** The peer's SETTINGS_HEADER_TABLE_SIZE: the encoder's table never grows past it. */
  setPeerTableBytesMax(bytes: number): void {
    const size = Math.min(bytes, dynamicTableBytesMax);
    if (size === this.#tableBytesMax) return;
    this.#tableBytesMax = size;
    this.#sizeUpdate = size;
    this.#evict();
  }

  /** Encodes `fields` (the same array each time for the same request, for the cache). */
  encode(fields: readonly HeaderField[]): Buffer {
    const cached = this.#cache.get(fields);
    if (cached !== undefined && cached.version === this.#version && this.#sizeUpdate === null) {
      return cached.block;
    }
    const parts: Buffer[] = [];
    // Only a block that changes nothing in the peer's table may be sent again as it is.
    let reusable = true;
    if (this.#sizeUpdate !== null) {
      parts.push(encodeInteger(this.#sizeUpdate, 5, 0x20));
      this.#sizeUpdate = null;
      reusable = false;
    }
    for (const field of fields) {
      const position = this.#table.findIndex(
        (entry) => entry.name === field.name && entry.value === field.value,
      );
      if (position >= 0) {
        parts.push(encodeInteger(staticTable.length + 1 + position, 7, 0x80));
      } else if (entryBytes(field) <= this.#tableBytesMax) {
        parts.push(Buffer.of(0x40), encodeString(field.name), encodeString(field.value));
        reusable = false;
        this.#table.unshift(field);
        this.#tableBytes += entryBytes(field);
        this.#evict();
      } else {
        parts.push(Buffer.of(0x00), encodeString(field.name), encodeString(field.value));
      }
    }
    const block = Buffer.concat(parts);
    if (reusable) this.#cache.set(fields, { version: this.#version, block });
    return block;
  }

  #evict(): void {
    this.#version++;
    while (this.#tableBytes > this.#tableBytesMax) {
      this.#tableBytes -= entryBytes(this.#table.pop()!);
    }
  }
}

function encodeString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  return Buffer.concat([encodeInteger(bytes.length, 7, 0x00), bytes]);
}

function encodeInteger(value: number, prefixBits: number, flags: number): Buffer {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) return Buffer.of(flags | value);
  const out = [flags | mask];
  let rest = value - mask;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return Buffer.from(out);
}
