/**
 * Splits a byte stream of concatenated JSON objects or arrays (whitespace between them optional,
 * as Go's json.Decoder reads them) into one buffer per value, as the bytes arrive. The JSON
 * gateway's streaming routes read their request bodies with it: one HTTP request can carry many
 * watch or keep-alive requests over time, like etcd's grpc-gateway. Only the structure is
 * tracked (nesting depth, strings and escapes, all ASCII so UTF-8 is safe to scan bytewise);
 * JSON.parse validates each value. A value still incomplete after `valueBytesMax` bytes, or a
 * value that does not start with `{` or `[`, is an error.
 */

export class JsonStreamError extends Error {
  constructor(
    message: string,
    /** True when a value went over the byte limit (the rest is malformed JSON). */
    readonly tooLarge = false,
  ) {
    super(message);
  }
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

export class JsonValueSplitter {
  /** Bytes of the value being read, from earlier chunks. */
  #parts: Buffer[] = [];
  #partBytes = 0;
  /** Nesting depth of the value being read; 0 between values. */
  #depth = 0;
  #inString = false;
  #escaped = false;

  constructor(private readonly valueBytesMax: number) {}

  /** Takes the next chunk; returns the values it completed, in order. Throws JsonStreamError. */
  push(chunk: Buffer): Buffer[] {
    const values: Buffer[] = [];
    let start = this.#depth > 0 ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (this.#depth === 0) {
        if (isWhitespace(byte)) continue;
        if (byte !== OPEN_BRACE && byte !== OPEN_BRACKET) {
          throw new JsonStreamError(
            `invalid character '${String.fromCharCode(byte)}' looking for beginning of value`,
          );
        }
        start = i;
        this.#depth = 1;
        continue;
      }
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (byte === BACKSLASH) this.#escaped = true;
        else if (byte === QUOTE) this.#inString = false;
        continue;
      }
      if (byte === QUOTE) this.#inString = true;
      else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) this.#depth++;
      else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
        this.#depth--;
        if (this.#depth === 0) {
          values.push(this.#take(chunk.subarray(start, i + 1)));
          start = -1;
        }
      }
    }
    if (this.#depth > 0 && start >= 0) {
      const rest = chunk.subarray(start);
      this.#partBytes += rest.length;
      this.#parts.push(Buffer.from(rest));
    }
    if (this.#partBytes > this.valueBytesMax) {
      throw new JsonStreamError(`a request is over ${this.valueBytesMax} bytes`, true);
    }
    return values;
  }

  /** The body ended: throws if a value was left incomplete. */
  end(): void {
    if (this.#depth > 0) throw new JsonStreamError('unexpected EOF');
  }

  #take(last: Buffer): Buffer {
    const length = this.#partBytes + last.length;
    if (length > this.valueBytesMax) {
      throw new JsonStreamError(`a request is over ${this.valueBytesMax} bytes`, true);
    }
    const value =
      this.#parts.length === 0 ? Buffer.from(last) : Buffer.concat([...this.#parts, last]);
    this.#parts = [];
    this.#partBytes = 0;
    return value;
  }
}
