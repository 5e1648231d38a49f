import { Readable } from 'node:stream';
import type { AedesPersistence } from './aedes-internals.js';

/** The parts of a retained packet the index and the broker read; the packet is returned as stored. */
export interface RetainedPacket {
  readonly topic: string;
  readonly payload: Uint8Array | string;
  readonly qos?: 0 | 1 | 2;
}

interface Node<P> {
  children: Map<string, Node<P>> | undefined;
  packet: P | undefined;
}

/**
 * Retained messages by topic level, so a SUBSCRIBE finds its retained messages in time
 * proportional to what it matches instead of the number of retained topics.
 *
 * aedes's in-memory persistence answers every subscription by testing every retained topic
 * against the filter. With one retained status message per device, each device's connect then
 * costs O(fleet): at 3,000 devices this scan was the largest single item in the local core's
 * profile during a ramp (4 % self, 15 % with its stream plumbing). A filter without wildcards
 * is one lookup per level here; `+` and `#` walk only the branches they cover.
 *
 * Matching follows MQTT 3.1.1 §4.7: `+` is one level, `#` (last) is this level and every one
 * below it (`a/#` matches `a`), and a filter that starts with a wildcard does not match topics
 * that start with `$` (§4.7.2, as aedes does for live messages).
 */
export class RetainedIndex<P extends RetainedPacket> {
  readonly #root: Node<P> = { children: undefined, packet: undefined };
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Stores a retained packet; an empty payload deletes the topic's retained message. */
  put(packet: P): void {
    const levels = packet.topic.split('/');
    if (packet.payload.length === 0) {
      this.#delete(this.#root, levels, 0);
      return;
    }
    let node = this.#root;
    for (const level of levels) {
      node.children ??= new Map();
      let next = node.children.get(level);
      if (!next) {
        next = { children: undefined, packet: undefined };
        node.children.set(level, next);
      }
      node = next;
    }
    if (!node.packet) this.#size += 1;
    node.packet = packet;
  }

  get(topic: string): P | undefined {
    let node: Node<P> | undefined = this.#root;
    for (const level of topic.split('/')) {
      node = node.children?.get(level);
      if (!node) return undefined;
    }
    return node.packet;
  }

  /** The retained packets whose topics match one topic filter. */
  match(filter: string): P[] {
    const out: P[] = [];
    const levels = filter.split('/');
    this.#walk(this.#root, levels, 0, out);
    return out;
  }

  /** Whether the node is empty after the deletion (so the caller drops it). */
  #delete(node: Node<P>, levels: readonly string[], i: number): boolean {
    if (i === levels.length) {
      if (node.packet) {
        node.packet = undefined;
        this.#size -= 1;
      }
    } else {
      const child = node.children?.get(levels[i] as string);
      if (child && this.#delete(child, levels, i + 1)) {
        node.children?.delete(levels[i] as string);
        if (node.children?.size === 0) node.children = undefined;
      }
    }
    return node.packet === undefined && node.children === undefined;
  }

  #walk(node: Node<P>, levels: readonly string[], i: number, out: P[]): void {
    if (i === levels.length) {
      if (node.packet) out.push(node.packet);
      return;
    }
    const level = levels[i] as string;
    if (level === '#') {
      if (node.packet && i > 0) out.push(node.packet);
      this.#collect(node, i === 0, out);
      return;
    }
    if (!node.children) return;
    if (level === '+') {
      for (const [name, child] of node.children) {
        if (i === 0 && name.startsWith('$')) continue;
        this.#walk(child, levels, i + 1, out);
      }
      return;
    }
    const child = node.children.get(level);
    if (child) this.#walk(child, levels, i + 1, out);
  }

  /** Every packet below `node` (not its own). */
  #collect(node: Node<P>, skipDollar: boolean, out: P[]): void {
    if (!node.children) return;
    for (const [name, child] of node.children) {
      if (skipDollar && name.startsWith('$')) continue;
      if (child.packet) out.push(child.packet);
      this.#collect(child, false, out);
    }
  }
}

/**
 * An aedes persistence whose retained messages are looked up in `index`: `storeRetained` puts
 * the packet in the index and still stores it in `persistence` (so anything else that reads the
 * persistence stays correct); `createRetainedStream` and `createRetainedStreamCombi` answer from
 * the index. Every other method is the persistence's own (a proxy forwards it: aedes-persistence
 * exports a factory, not its class, so there is no class to extend). Given to aedes as its
 * `persistence` option, so the index sees every retained message from the first.
 */
export function withRetainedIndex<T extends AedesPersistence>(persistence: T, index: RetainedIndex<RetainedPacket>): T {
  const retained: Pick<AedesPersistence, 'storeRetained' | 'createRetainedStream' | 'createRetainedStreamCombi'> = {
    storeRetained(packet: never, cb?: never) {
      // The index keeps a copy: the publishing path may reuse the packet object.
      index.put({ ...(packet as RetainedPacket) });
      return persistence.storeRetained(packet, cb);
    },
    createRetainedStream: (pattern) => Readable.from(index.match(pattern)),
    createRetainedStreamCombi: (patterns) => Readable.from(patterns.flatMap((p) => index.match(p))),
  };
  return new Proxy(persistence, {
    get: (target, key, receiver) =>
      Object.hasOwn(retained, key) ? retained[key as keyof typeof retained] : Reflect.get(target, key, receiver),
  });
}
