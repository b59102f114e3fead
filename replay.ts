// replay.ts: the replay buffer: event ids, and the last events by id for streams that resume
// with Last-Event-ID (docs/protocol.md, "Resume"). It never writes to a stream and knows no
// status semantics: an entry is a frame, its sequence number and its event type.

import { randomBytes } from 'node:crypto';

/** The event type of a snapshot: an unnamed event, which EventSource dispatches as "message". */
export const SNAPSHOT_TYPE = 'message';

/** The event types a stream receives: `null` = every type; `message` = snapshots. */
export type EventFilter = ReadonlySet<string> | null;

/** One event, as the hub wrote it to every stream. */
export interface ReplayEntry {
  readonly seq: number;
  /** SNAPSHOT_TYPE for a snapshot, else the event's name (its `event:` field). */
  readonly type: string;
  /** The whole frame, id included; empty in the ring for a snapshot a newer one replaced. */
  readonly frame: Buffer;
}

// What the ring keeps of a snapshot once a newer one exists: a replay never sends it, so its frame
// (213 KiB with 1,000 checks) is not kept; the entry stays, as the ring is indexed by sequence.
const REPLACED = Buffer.alloc(0);

/** What a resuming stream gets instead of the live stream's past. */
export interface CollapsedReplay {
  /** In id order: the newest snapshot after the client's id, and every named event after it. */
  readonly entries: readonly ReplayEntry[];
  /** The sum of their frames' lengths. */
  readonly bytes: number;
}

// An id is "<boot id>-<sequence>": 16 hex + "-" + at most 16 digits. Anything longer is not ours.
const MAX_EVENT_ID_LENGTH = 40;
const SEQUENCE = /^[1-9]\d{0,15}$/;

/**
 * Assigns ids and keeps the last `capacity` events, oldest first, in a ring: an id's lookup
 * is arithmetic, and adding an event never moves the others. Of the snapshots only the
 * newest keeps its frame: a collapsed replay sends no other (bench/README.md, "Check load").
 */
export class ReplayBuffer {
  /** Unique per process start, so that an id from another process or run is never taken as ours. */
  readonly bootId: string;
  readonly capacity: number;
  readonly #ring: Array<ReplayEntry | undefined>;
  /** The sequence number of the newest event; 0 before the first. */
  #lastSeq = 0;
  /** How many of the newest events the ring holds (at most capacity). */
  #held = 0;
  /** The sequence number of the newest snapshot; 0 before the first. */
  #newestSnapshot = 0;

  constructor(capacity: number, bootId: string = randomBytes(8).toString('hex')) {
    if (!Number.isSafeInteger(capacity) || capacity < 0) {
      throw new RangeError(`replay: capacity must be a non-negative integer, got ${String(capacity)}`);
    }
    this.capacity = capacity;
    this.bootId = bootId;
    this.#ring = new Array<ReplayEntry | undefined>(capacity);
  }

  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** How many events are held now. */
  get size(): number {
    return this.#held;
  }

  /** The bytes of the frames held now. */
  get bytes(): number {
    let total = 0;
    for (let k = 0; k < this.#held; k++) total += this.#at(this.#lastSeq - k).frame.length;
    return total;
  }

  idOf(seq: number): string {
    return `${this.bootId}-${seq}`;
  }

  /**
   * Gives the next event its sequence number and id, has `frameFor` build its frame with that
   * id, and keeps it (dropping the oldest when full).
   */
  record(type: string, frameFor: (id: string) => Buffer): ReplayEntry {
    const seq = this.#lastSeq + 1;
    const entry: ReplayEntry = { seq, type, frame: frameFor(this.idOf(seq)) };
    this.#lastSeq = seq;
    if (this.capacity > 0) {
      if (type === SNAPSHOT_TYPE) {
        const older = this.#newestSnapshot;
        if (older > 0 && older > seq - this.capacity) {
          this.#ring[older % this.capacity] = { seq: older, type, frame: REPLACED };
        }
        this.#newestSnapshot = seq;
      }
      this.#ring[seq % this.capacity] = entry;
      if (this.#held < this.capacity) this.#held++;
    }
    return entry;
  }

  /**
   * The sequence number in `id` when it names an event of this process that the buffer can
   * replay from: held, the one just before the oldest held, or the newest. Null for anything
   * else: empty, over-long, foreign, malformed, not yet published, or evicted.
   */
  seqOf(id: string | null): number | null {
    if (!id || id.length > MAX_EVENT_ID_LENGTH) return null;
    const dash = id.lastIndexOf('-');
    if (dash !== this.bootId.length || !id.startsWith(this.bootId)) return null;
    const digits = id.slice(dash + 1);
    if (!SEQUENCE.test(digits)) return null;
    const seq = Number(digits);
    // The client has `seq`, so it misses seq + 1 onwards: all of that must still be held.
    if (seq > this.#lastSeq || seq < this.#lastSeq - this.#held) return null;
    return seq;
  }

  /**
   * The events after `id` that a stream with `filter` receives, collapsed: snapshots are
   * whole states, so only the newest one is sent; named events are facts, so every one is.
   * Null when `id` is not one seqOf() accepts.
   */
  collapsedAfter(id: string | null, filter: EventFilter): CollapsedReplay | null {
    const after = this.seqOf(id);
    if (after === null) return null;
    const wantsSnapshots = filter === null || filter.has(SNAPSHOT_TYPE);
    // The newest snapshot is the only one with a frame; it is sent when it came after the client's id.
    const newestSnapshot = wantsSnapshots && this.#newestSnapshot > after ? this.#newestSnapshot : 0;
    const entries: ReplayEntry[] = [];
    let bytes = 0;
    for (let seq = after + 1; seq <= this.#lastSeq; seq++) {
      const entry = this.#at(seq);
      const wanted = entry.type === SNAPSHOT_TYPE ? seq === newestSnapshot : filter === null || filter.has(entry.type);
      if (!wanted) continue;
      entries.push(entry);
      bytes += entry.frame.length;
    }
    return { entries, bytes };
  }

  #at(seq: number): ReplayEntry {
    return this.#ring[seq % this.capacity] as ReplayEntry;
  }
}
