/**
 * The replicated member registry: each member's name, peer and client URLs and learner flag, as
 * etcd's MemberList reports them. Raft's configuration only knows ids; the registry is changed by
 * the same committed entries (conf changes carry the member's URLs in their context, publish and
 * update commands carry the rest), so every member holds the same registry at the same index.
 *
 * It is stored apart from the MVCC store, in `<data-dir>/member/registry.json`, written atomically
 * (temporary file, fsync, rename) BEFORE the key-value batch of the same entries is committed. After
 * a crash, entries above the store's applied index are replayed and change the registry again;
 * every change is idempotent (set or delete by id), and `index` lets replays below it be skipped.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface MemberRecord {
  id: number;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

export interface RegistryState {
  /** The raft index of the last entry that changed the registry. */
  index: number;
  clusterId: number;
  members: MemberRecord[];
}

/** Members a registry may hold; a cluster this large is far beyond raft's practical voter count. */
export const REGISTRY_MEMBERS_MAX = 1024;

export class MemberRegistry {
  private members = new Map<number, MemberRecord>();
  index = 0;
  clusterId: number;

  constructor(
    private readonly path: string,
    state: RegistryState,
  ) {
    this.clusterId = state.clusterId;
    this.replace(state);
  }

  /** Loads the registry file, or returns null when the member has none yet (a new data dir). */
  static load(path: string): MemberRegistry | null {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    const state = JSON.parse(text) as RegistryState;
    if (!Array.isArray(state.members) || typeof state.index !== 'number') {
      throw new Error(`${path}: not a member registry`);
    }
    return new MemberRegistry(path, state);
  }

  static create(path: string, state: RegistryState): MemberRegistry {
    mkdirSync(dirname(path), { recursive: true });
    return new MemberRegistry(path, state);
  }

  replace(state: RegistryState): void {
    this.members = new Map(state.members.map((m) => [m.id, { ...m }]));
    this.index = state.index;
    this.clusterId = state.clusterId;
  }

  get(id: number): MemberRecord | undefined {
    return this.members.get(id);
  }

  list(): MemberRecord[] {
    return [...this.members.values()].sort((a, b) => a.id - b.id);
  }

  /** Inserts or merges a member; fields given replace the stored ones. */
  upsert(id: number, fields: Partial<Omit<MemberRecord, 'id'>>): void {
    const current = this.members.get(id) ?? {
      id,
      name: '',
      peerUrls: [],
      clientUrls: [],
      isLearner: false,
    };
    if (!this.members.has(id) && this.members.size >= REGISTRY_MEMBERS_MAX) {
      throw new Error(`member registry is full (${REGISTRY_MEMBERS_MAX} members)`);
    }
    this.members.set(id, { ...current, ...fields, id });
  }

  remove(id: number): void {
    this.members.delete(id);
  }

  state(): RegistryState {
    return { index: this.index, clusterId: this.clusterId, members: this.list() };
  }

  /** Writes the registry durably (temporary file, fsync, rename). */
  async save(): Promise<void> {
    const temporary = `${this.path}.tmp`;
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(JSON.stringify(this.state()));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, this.path);
  }
}
