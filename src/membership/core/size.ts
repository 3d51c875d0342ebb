/**
 * The exact msgpack-encoded size of the core's plain-object messages, computed without encoding.
 * The core packs piggybacked broadcasts into a datagram budget, so it must know sizes, but it may
 * not import an encoder (it is pure). The transport's tests check these figures against msgpackr.
 * Supported values: null, booleans, safe integers, other numbers (float64), strings, Uint8Array,
 * arrays and plain objects whose values are never undefined.
 */

function utf8LengthBytes(text: string): number {
  let length = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x80) length += 1;
    else if (code < 0x800) length += 2;
    else if (code >= 0xd800 && code <= 0xdbff && index + 1 < text.length) {
      // A surrogate pair is one code point of four bytes.
      length += 4;
      index++;
    } else length += 3;
  }
  return length;
}

function integerSizeBytes(value: number): number {
  if (value >= 0) {
    if (value < 128) return 1;
    if (value < 256) return 2;
    if (value < 65536) return 3;
    if (value < 4294967296) return 5;
    return 9;
  }
  if (value >= -32) return 1;
  if (value >= -128) return 2;
  if (value >= -32768) return 3;
  if (value >= -2147483648) return 5;
  return 9;
}

function stringSizeBytes(text: string): number {
  const length = utf8LengthBytes(text);
  if (length < 32) return 1 + length;
  if (length < 256) return 2 + length;
  if (length < 65536) return 3 + length;
  return 5 + length;
}

/** The size of a msgpack array or map header holding `count` items. */
export function containerHeaderBytes(count: number): number {
  if (count < 16) return 1;
  if (count < 65536) return 3;
  return 5;
}

export function msgpackSizeBytes(value: unknown): number {
  if (value === null || typeof value === 'boolean') return 1;
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) ? integerSizeBytes(value) : 9;
  }
  if (typeof value === 'string') return stringSizeBytes(value);
  if (value instanceof Uint8Array) {
    const length = value.byteLength;
    return length + (length < 256 ? 2 : length < 65536 ? 3 : 5);
  }
  if (Array.isArray(value)) {
    let total = containerHeaderBytes(value.length);
    for (const item of value) total += msgpackSizeBytes(item);
    return total;
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    let total = containerHeaderBytes(entries.length);
    for (const [key, item] of entries) total += stringSizeBytes(key) + msgpackSizeBytes(item);
    return total;
  }
  throw new Error(`msgpackSizeBytes: unsupported value of type ${typeof value}`);
}
