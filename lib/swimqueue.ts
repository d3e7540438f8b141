// memberlist's TransmitLimitedQueue for its own broadcasts (alive, suspect, dead): each message
// is piggy-backed on outgoing packets until it has gone out RetransmitMult × ceil(log10(n+1))
// times, messages sent fewer times go first, and a newer message about a node replaces the
// queued one about the same node (memberlist's broadcasts are NamedBroadcasts keyed by node).
//
// Order within GetBroadcasts (queue.go, v0.2.2, the btree version): fewest transmits first, then
// larger messages, then newer ones (higher id). Within a transmit level the largest message that
// still fits the remaining space is taken, the space shrinks, and the scan goes on; taken
// messages are re-queued with one more transmit after the pass, or finished at the limit.
//
// Not here: serf's own queues (serf keeps them and hands them out through the delegate),
// encoding, packet budgets (the caller passes overhead and limit).
//
// Invariants: at most one queued message per name; the queue never holds more than
// BROADCASTS_QUEUED_MAX messages (the ones sent most are pruned first, as queue.go Prune does);
// every message leaves the queue through exactly one onFinished call (sent enough, replaced, pruned
// or reset).
//
// References: hashicorp/memberlist queue.go, broadcast.go, util.go retransmitLimit (v0.2.2).

import assert from 'node:assert/strict';

// ---------------------------------------------------------------------------------------------
// Exported types

/** What a queued broadcast reports when it leaves the queue. */
export type BroadcastFinished = () => void;

// ---------------------------------------------------------------------------------------------
// Limits

/** Queued memberlist broadcasts (one per node name at most); beyond this the most-sent go. */
export const BROADCASTS_QUEUED_MAX = 65536;

// ---------------------------------------------------------------------------------------------
// Exported API

/** memberlist retransmitLimit: RetransmitMult × ceil(log10(n + 1)); e.g. 4 × 1 for n ≤ 9. */
export function retransmitLimit(retransmitMult: number, n: number): number {
  return retransmitMult * Math.ceil(Math.log10(n + 1));
}

/** A transmit-limited queue of named broadcasts (memberlist TransmitLimitedQueue + memberlistBroadcast). */
export class BroadcastQueue {
  // Invariant: byName holds every queued item, keyed by its name; ids are unique while queued.
  private readonly byName = new Map<string, QueuedItem>();
  private idGen = 0;

  constructor(private readonly retransmitMult: number) {
    assert(retransmitMult >= 1, 'RetransmitMult is at least 1');
  }

  /** Number of queued broadcasts (memberlist NumQueued). */
  get size(): number {
    return this.byName.size;
  }

  /**
   * Queues `message` about `name`, finishing (and dropping) any queued message with the same name,
   * since memberlist's broadcasts about a node invalidate older ones about it.
   */
  queue(name: string, message: Uint8Array, onFinished?: BroadcastFinished): void {
    this.idGen = this.idGen >= Number.MAX_SAFE_INTEGER ? 1 : this.idGen + 1;
    const id = this.idGen;
    const old = this.byName.get(name);
    if (old !== undefined) this.remove(old);
    old?.onFinished?.();
    this.byName.set(name, { name, message, transmits: 0, id, onFinished });
    if (this.byName.size > BROADCASTS_QUEUED_MAX) this.prune(BROADCASTS_QUEUED_MAX);
  }

  /**
   * Takes messages to piggy-back: each costs `overheadBytes` plus its length against
   * `limitBytes`. `numNodes` sets the retransmit limit. Messages that reach it are finished.
   */
  getBroadcasts(overheadBytes: number, limitBytes: number, numNodes: number): Uint8Array[] {
    if (this.byName.size === 0) return [];
    const transmitLimit = retransmitLimit(this.retransmitMult, numNodes);
    const ordered = [...this.byName.values()].sort(compareItems);
    const toSend: Uint8Array[] = [];
    const reinsert: QueuedItem[] = [];
    let bytesUsed = 0;
    for (const item of ordered) {
      const free = limitBytes - bytesUsed - overheadBytes;
      if (free <= 0) break;
      if (item.message.length > free) continue;
      bytesUsed += overheadBytes + item.message.length;
      toSend.push(item.message);
      this.remove(item);
      if (item.transmits + 1 >= transmitLimit) item.onFinished?.();
      else reinsert.push({ ...item, transmits: item.transmits + 1 });
    }
    for (const item of reinsert) this.byName.set(item.name, item);
    assert(bytesUsed <= Math.max(limitBytes, 0), 'broadcasts fit the space given');
    return toSend;
  }

  /** The queued items' transmit counts by name (tests and metrics). */
  transmitsByName(): Map<string, number> {
    return new Map([...this.byName.values()].map((item) => [item.name, item.transmits]));
  }

  /** Finishes and drops everything (memberlist Reset). */
  reset(): void {
    const items = [...this.byName.values()];
    this.byName.clear();
    this.idGen = 0;
    for (const item of items) item.onFinished?.();
  }

  /** Drops the most-transmitted (then smallest, oldest) messages until at most `maxRetain` remain (memberlist Prune). */
  prune(maxRetain: number): void {
    const ordered = [...this.byName.values()].sort(compareItems);
    for (let i = ordered.length - 1; i >= 0 && this.byName.size > maxRetain; i--) {
      const item = ordered[i];
      if (item === undefined) continue;
      this.remove(item);
      item.onFinished?.();
    }
  }

  private remove(item: QueuedItem): void {
    this.byName.delete(item.name);
    // queue.go deleteItem: an emptied queue restarts its ids.
    if (this.byName.size === 0) this.idGen = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

interface QueuedItem {
  readonly name: string;
  readonly message: Uint8Array;
  readonly transmits: number;
  readonly id: number;
  readonly onFinished: BroadcastFinished | undefined;
}

/** queue.go limitedBroadcast.Less: fewer transmits, then longer message, then newer id. */
function compareItems(a: QueuedItem, b: QueuedItem): number {
  if (a.transmits !== b.transmits) return a.transmits - b.transmits;
  if (a.message.length !== b.message.length) return b.message.length - a.message.length;
  return b.id - a.id;
}
