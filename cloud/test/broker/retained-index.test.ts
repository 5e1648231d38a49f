import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { memoryPersistence } from '../../src/broker/aedes-internals.js';
import { RetainedIndex, type RetainedPacket, withRetainedIndex } from '../../src/broker/retained-index.js';
import { startBareAedes, within } from './fixtures.js';

/** MQTT 3.1.1 §4.7 matching, written the slow and obvious way. */
function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if ((f[0] === '#' || f[0] === '+') && topic.startsWith('$')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

const pkt = (topic: string, payload = 'x'): RetainedPacket => ({ topic, payload: Buffer.from(payload) });
const topics = (ps: readonly RetainedPacket[]) => ps.map((p) => p.topic).sort();

describe('RetainedIndex', () => {
  it('answers exact filters, + and # per MQTT 3.1.1', () => {
    const ix = new RetainedIndex<RetainedPacket>();
    for (const t of ['a', 'a/b', 'a/b/c', 'a/x/c', 'b', '$aws/things/t1/status', '/lead', 'a//c']) ix.put(pkt(t));
    expect(topics(ix.match('a/b'))).toEqual(['a/b']);
    expect(topics(ix.match('a/+/c'))).toEqual(['a//c', 'a/b/c', 'a/x/c']);
    expect(topics(ix.match('a/#'))).toEqual(['a', 'a//c', 'a/b', 'a/b/c', 'a/x/c']);
    expect(topics(ix.match('#'))).toEqual(['/lead', 'a', 'a//c', 'a/b', 'a/b/c', 'a/x/c', 'b']);
    expect(topics(ix.match('+'))).toEqual(['a', 'b']);
    expect(topics(ix.match('+/lead'))).toEqual(['/lead']);
    expect(topics(ix.match('$aws/things/+/status'))).toEqual(['$aws/things/t1/status']);
    expect(topics(ix.match('$aws/#'))).toEqual(['$aws/things/t1/status']);
    expect(ix.match('a/b/c/d')).toEqual([]);
    expect(ix.match('nothing/#')).toEqual([]);
  });

  it('replaces a topic and deletes it on an empty payload, pruning empty branches', () => {
    const ix = new RetainedIndex<RetainedPacket>();
    ix.put(pkt('s/t1', 'online'));
    ix.put(pkt('s/t1', 'offline'));
    expect(ix.size).toBe(1);
    expect(String(ix.get('s/t1')?.payload)).toBe('offline');
    ix.put(pkt('s/t1/deep', 'y'));
    ix.put(pkt('s/t1', ''));
    expect(ix.get('s/t1')).toBeUndefined();
    expect(topics(ix.match('s/#'))).toEqual(['s/t1/deep']);
    ix.put(pkt('s/t1/deep', ''));
    expect(ix.size).toBe(0);
    expect(ix.match('#')).toEqual([]);
    // Deleting what is not there changes nothing.
    ix.put(pkt('never/there', ''));
    expect(ix.size).toBe(0);
  });

  it('agrees with a brute-force matcher on random topics and filters', () => {
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const words = ['a', 'b', 'c', '', '$aws', 'things'];
    const topic = () => Array.from({ length: 1 + rnd(4) }, () => words[rnd(words.length)] as string).join('/') || 'z';
    const ix = new RetainedIndex<RetainedPacket>();
    const all = new Map<string, RetainedPacket>();
    for (let i = 0; i < 400; i++) {
      const t = topic();
      const del = rnd(5) === 0;
      const p = pkt(t, del ? '' : `v${i}`);
      ix.put(p);
      if (del) all.delete(t);
      else all.set(t, p);
    }
    expect(ix.size).toBe(all.size);
    for (let i = 0; i < 400; i++) {
      const levels = Array.from({ length: 1 + rnd(4) }, () => {
        const r = rnd(8);
        return r === 0 ? '+' : (words[rnd(words.length)] as string);
      });
      if (rnd(3) === 0) levels.push('#');
      const filter = levels.join('/');
      const expected = [...all.values()].filter((p) => matches(filter, p.topic));
      expect(topics(ix.match(filter)), filter).toEqual(topics(expected));
    }
  });

  it("fronts aedes's memory persistence: stores go through, lookups come from the index", async () => {
    const inner = memoryPersistence();
    const innerStore = inner.storeRetained.bind(inner) as (packet: RetainedPacket) => Promise<void>;
    const stored: RetainedPacket[] = [];
    const spy = new Proxy(inner, {
      get: (target, key, receiver) =>
        key === 'storeRetained'
          ? (packet: RetainedPacket) => {
              stored.push(packet);
              return innerStore(packet);
            }
          : Reflect.get(target, key, receiver),
    });
    const ix = new RetainedIndex<RetainedPacket>();
    const persistence = withRetainedIndex(spy, ix);
    const original = pkt('$aws/things/t1/status', 'online');
    await (persistence.storeRetained as (p: RetainedPacket) => Promise<void>)(original);
    expect(stored).toEqual([original]);
    expect(ix.size).toBe(1);
    const read = async (r: Readable) => {
      const out: RetainedPacket[] = [];
      for await (const p of r) out.push(p as RetainedPacket);
      return out;
    };
    expect(topics(await read(persistence.createRetainedStream('$aws/things/+/status')))).toEqual([
      '$aws/things/t1/status',
    ]);
    expect(
      topics(await read(persistence.createRetainedStreamCombi(['$aws/things/t1/status', '$aws/things/t2/status']))),
    ).toEqual(['$aws/things/t1/status']);
    // The store went through: the memory persistence answers the same from its own scan.
    expect(topics(await read(inner.createRetainedStream('$aws/things/+/status')))).toEqual(['$aws/things/t1/status']);
    // The index holds its own copy: a caller that later mutates its packet does not change it.
    (original as { topic: string }).topic = 'mutated';
    expect(ix.get('$aws/things/t1/status')).toBeDefined();
    // Nothing else of the persistence changed: the wrapped one is untouched, setup is still aedes's async one.
    expect(inner.createRetainedStream).not.toBe(persistence.createRetainedStream);
    expect(persistence.setup).toBe(inner.setup);
  });

  it("is a live aedes's persistence: a later subscriber gets the retained messages the index holds", async () => {
    const ix = new RetainedIndex<RetainedPacket>();
    const bare = await startBareAedes({ persistence: withRetainedIndex(memoryPersistence(), ix) });
    try {
      const publisher = await bare.connect({ clientId: 'publisher' });
      await publisher.publishAsync('s/t1/status', 'online', { qos: 1, retain: true });
      await publisher.publishAsync('s/t2/status', 'offline', { qos: 1, retain: true });
      await publisher.publishAsync('s/t2/status', '', { qos: 1, retain: true });
      expect(topics(ix.match('#'))).toEqual(['s/t1/status']);

      const subscriber = await bare.connect({ clientId: 'subscriber' });
      const received = new Promise<[string, string]>((resolve) =>
        subscriber.on('message', (topic, payload, packet) => {
          if (packet.retain) resolve([topic, payload.toString()]);
        }),
      );
      await subscriber.subscribeAsync('s/+/status', { qos: 1 });
      expect(await within(received, 5_000, 'retained message')).toEqual(['s/t1/status', 'online']);
    } finally {
      await bare.close();
    }
  });
});
