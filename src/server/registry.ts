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
 *
 * The registry also holds the raised alarms (etcd's alarm store: NOSPACE with the id of the member
 * that raised it), changed by alarm commands through raft, so they are the same on every member,
 * survive restarts and travel in snapshots with the rest of the registry.
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

/** A raised alarm: which member raised it and what it is (etcd's AlarmType: 1 = NOSPACE). */
export interface AlarmRecord {
  memberId: number;
  alarm: number;
}

export interface RegistryState {
  /** The raft index of the last entry that changed the registry. */
  index: number;
  clusterId: number;
  members: MemberRecord[];
  /** Raised alarms (absent in registries written before alarms were replicated). */
  alarms?: AlarmRecord[];
}

/** etcd's AlarmType.NOSPACE. */
export const ALARM_NOSPACE = 1;

/** Members a registry may hold; a cluster this large is far beyond raft's practical voter count. */
export const REGISTRY_MEMBERS_MAX = 1024;
/**
 * Alarms held at once. An alarm is keyed by member id and type, and etcd has two types that a
 * member raises (NOSPACE, CORRUPT), so this is never reached by members; an ACTIVATE beyond it
 * (ids of members that do not exist) is ignored.
 */
export const ALARMS_MAX = 2 * REGISTRY_MEMBERS_MAX;

export class MemberRegistry {
  private members = new Map<number, MemberRecord>();
  /** Raised alarms keyed by `${memberId}:${alarm}`, kept in the order they were raised. */
  private raised = new Map<string, AlarmRecord>();
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
    this.raised = new Map((state.alarms ?? []).map((a) => [alarmKey(a), { ...a }]));
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

  /** Raises an alarm (idempotent); returns the alarm as held, or undefined when full. */
  activateAlarm(alarm: AlarmRecord): AlarmRecord | undefined {
    const key = alarmKey(alarm);
    const held = this.raised.get(key);
    if (held !== undefined) return held;
    if (this.raised.size >= ALARMS_MAX) return undefined;
    this.raised.set(key, { memberId: alarm.memberId, alarm: alarm.alarm });
    return alarm;
  }

  /** Clears an alarm; returns it if it was raised. */
  deactivateAlarm(alarm: AlarmRecord): AlarmRecord | undefined {
    const key = alarmKey(alarm);
    const held = this.raised.get(key);
    this.raised.delete(key);
    return held;
  }

  /** Raised alarms of one type, or all of them for type 0 (etcd's NONE), as etcd lists them. */
  alarms(type = 0): AlarmRecord[] {
    return [...this.raised.values()].filter((a) => type === 0 || a.alarm === type);
  }

  /** Whether an alarm of `type` (0: any) is raised; asked on every write, so it builds no list. */
  hasAlarm(type = 0): boolean {
    for (const alarm of this.raised.values()) if (type === 0 || alarm.alarm === type) return true;
    return false;
  }

  state(): RegistryState {
    return {
      index: this.index,
      clusterId: this.clusterId,
      members: this.list(),
      alarms: [...this.raised.values()],
    };
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

function alarmKey(alarm: AlarmRecord): string {
  return `${alarm.memberId}:${alarm.alarm}`;
}
