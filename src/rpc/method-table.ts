/**
 * The server's registered methods, found straight from the method-name bytes of a frame. Decoding
 * the name into a string for every call and one-way message showed up at about 4% of a one-way
 * profile; hashing the bytes and comparing them against the registered name costs no allocation.
 */
import type { CallContext, MethodKind, Validator } from './service.js';

/** A method as the server runs it: the typed handler, erased to one calling convention. */
export interface RegisteredMethod {
  readonly path: string;
  readonly kind: MethodKind;
  readonly handler: (input: unknown, context: CallContext) => unknown;
  readonly validate: Validator<unknown> | undefined;
}

interface Entry {
  readonly bytes: Buffer;
  readonly method: RegisteredMethod;
}

/** FNV-1a over `length` bytes of `source`: cheap, and good enough to spread method names. */
function hashBytes(source: Uint8Array, length: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < length; i++) hash = Math.imul(hash ^ source[i]!, 0x01000193);
  return hash >>> 0;
}

export class MethodTable {
  private readonly byPath = new Map<string, RegisteredMethod>();
  private readonly byHash = new Map<number, Entry[]>();

  has(path: string): boolean {
    return this.byPath.has(path);
  }

  add(method: RegisteredMethod): void {
    if (this.byPath.has(method.path))
      throw new Error(`method ${method.path} is already registered`);
    this.byPath.set(method.path, method);
    const bytes = Buffer.from(method.path, 'utf8');
    const hash = hashBytes(bytes, bytes.length);
    const entries = this.byHash.get(hash) ?? [];
    entries.push({ bytes, method });
    this.byHash.set(hash, entries);
  }

  /** The method whose UTF-8 name is the first `length` bytes of `source`, if registered. */
  lookup(source: Buffer, length: number): RegisteredMethod | undefined {
    const entries = this.byHash.get(hashBytes(source, length));
    if (entries === undefined) return undefined;
    for (const entry of entries) {
      if (entry.bytes.length === length && sameBytes(entry.bytes, source, length))
        return entry.method;
    }
    return undefined;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array, length: number): boolean {
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return false;
  return true;
}
