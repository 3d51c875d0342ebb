/**
 * A small typed record for the metadata shoal members gossip about themselves (role, URLs, free
 * disk), encoded as msgpack into SWIM's opaque meta bytes. Versioning comes from SWIM: a member
 * that changes its metadata gossips it with a new incarnation, and newer incarnations win.
 */
import { Packr } from 'msgpackr';
import { META_BYTES_MAX } from './core/types.js';

export interface MemberMeta {
  /** e.g. "voter", "learner". */
  readonly role: string;
  readonly clientUrls: readonly string[];
  readonly peerUrls: readonly string[];
  /** Free bytes on the data disk; a safe integer (up to 8 PiB). */
  readonly freeDiskBytes: number;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

export function encodeMemberMeta(meta: MemberMeta): Uint8Array {
  if (!Number.isSafeInteger(meta.freeDiskBytes) || meta.freeDiskBytes < 0) {
    throw Object.assign(new Error('freeDiskBytes must be a non-negative safe integer'), {
      code: 'INVALID_META',
    });
  }
  const bytes = packr.pack({
    role: meta.role,
    clientUrls: [...meta.clientUrls],
    peerUrls: [...meta.peerUrls],
    freeDiskBytes: meta.freeDiskBytes,
  });
  if (bytes.byteLength > META_BYTES_MAX) {
    throw Object.assign(new Error(`member metadata exceeds ${META_BYTES_MAX} bytes`), {
      code: 'META_TOO_LARGE',
    });
  }
  return bytes;
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/** The record in `bytes`, or null when they are not a valid `MemberMeta` (e.g. empty meta). */
export function decodeMemberMeta(bytes: Uint8Array): MemberMeta | null {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const f = value as Record<string, unknown>;
  if (typeof f.role !== 'string' || !isStringList(f.clientUrls) || !isStringList(f.peerUrls)) {
    return null;
  }
  if (typeof f.freeDiskBytes !== 'number' || !Number.isSafeInteger(f.freeDiskBytes)) return null;
  return {
    role: f.role,
    clientUrls: f.clientUrls,
    peerUrls: f.peerUrls,
    freeDiskBytes: f.freeDiskBytes,
  };
}
