import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { shadowTopics } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { createAgentRuntime } from '../../src/app/runtime.js';
import { loadConfig } from '../../src/config/load.js';
import type { AgentConfig } from '../../src/config/schema.js';
import { HardwareError } from '../../src/hardware/errors.js';
import { type Outbox, openOutbox } from '../../src/outbox/outbox.js';
import type { Transport } from '../../src/ports/transport.js';
import type { ShadowService } from '../../src/shadow/port.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';
import { MemoryTransport } from './fakes.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'agent-runtime-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = (extra: Record<string, unknown> = {}): AgentConfig => {
  const r = loadConfig({
    fileText: JSON.stringify({
      thingName: 'pi-rt',
      endpoint: 'localhost',
      certFile: 'c',
      keyFile: 'k',
      hardware: 'none',
      ...extra,
    }),
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.value;
};

const topics = shadowTopics('pi-rt');

/**
 * Answers the topic shadow's requests on the memory transport as IoT Core would (no shadow yet,
 * every update accepted), each as soon as it is published, until stopped.
 */
function answerShadow(transport: MemoryTransport) {
  let version = 0;
  let running = true;
  const answer = () => {
    if (!running) return;
    for (const s of transport.sent.splice(0)) {
      if (s.topic !== topics.get && s.topic !== topics.update) continue;
      const { clientToken } = JSON.parse(s.payload) as { clientToken: string };
      if (s.topic === topics.get) {
        transport.deliver(topics.getRejected, JSON.stringify({ code: 404, message: 'No shadow', clientToken }));
      } else {
        version += 1;
        transport.deliver(topics.updateAccepted, JSON.stringify({ version, clientToken }));
      }
    }
    setImmediate(answer);
  };
  answer();
  return () => {
    running = false;
  };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('createAgentRuntime', () => {
  it('does no I/O before start(); then opens the outbox in a directory it makes, and runs the agent on the given transport', async () => {
    const outboxPath = path.join(dir, 'new', 'dir', 'outbox.db');
    const transport = new MemoryTransport();
    const seen: Transport[] = [];
    const runtime = createAgentRuntime({
      config: config({ outbox: { path: outboxPath } }),
      clock: createVirtualClock({ start: 1_700_000_000_000 }),
      bootId: 'boot-rt',
      transport,
      onTransport: (t) => seen.push(t),
    });
    expect(existsSync(path.dirname(outboxPath))).toBe(false);
    expect(runtime.agent).toBeUndefined();
    expect(runtime.transport).toBeUndefined();
    expect(() => runtime.status()).toThrow(/after start/);

    await runtime.start();
    expect(existsSync(outboxPath)).toBe(true);
    expect(seen).toEqual([transport]);
    expect(runtime.transport).toBe(transport);
    expect(runtime.outboxRecovery).toBeUndefined();
    await settle();
    expect(runtime.status()).toMatchObject({ bootId: 'boot-rt', connected: true });
    await runtime.stop('test');
    await runtime.stop('again');
    expect(transport.isConnected).toBe(false);
  });

  it('syncs the shadow over the reserved topics of a ready transport, through the observer it is given', async () => {
    const transport = new MemoryTransport();
    const reports: object[] = [];
    const runtime = createAgentRuntime({
      config: config({ outbox: { path: ':memory:' } }),
      clock: createVirtualClock(),
      transport,
      observeShadow: (inner): ShadowService => ({
        ...inner,
        get: () => inner.get(),
        onDelta: (l) => inner.onDelta(l),
        onStreamRestored: (l) => inner.onStreamRestored(l),
        close: () => inner.close(),
        async updateReported(reported) {
          const r = await inner.updateReported(reported);
          reports.push(reported);
          return r;
        },
      }),
    });
    const stopAnswering = answerShadow(transport);
    await runtime.start();
    await settle();
    // The sync on connect (get: 404, then a report), then this one: two reports.
    await runtime.agent?.syncShadow();
    stopAnswering();
    expect(reports).toHaveLength(2);
    expect(reports[0]).toMatchObject({ agent: { version: '0.1.0', bootId: runtime.bootId } });
    expect([...transport.subscriptions.keys()]).toEqual(
      expect.arrayContaining([`${topics.get}/+`, topics.updateAccepted, topics.updateRejected]),
    );
    await runtime.stop();
  });

  it('reports a damaged outbox file it moved aside', async () => {
    const outboxPath = path.join(dir, 'damaged.db');
    writeFileSync(outboxPath, 'this is not a SQLite database, but it is long enough to look like one '.repeat(20));
    const runtime = createAgentRuntime({
      config: config({ outbox: { path: outboxPath } }),
      clock: createVirtualClock(),
      transport: new MemoryTransport(),
    });
    await runtime.start();
    expect(runtime.outboxRecovery?.movedTo).toMatch(/damaged\.db\.corrupt-\d+$/);
    await runtime.stop();
  });

  it('closes the outbox again and rejects when the hardware cannot start, and starts only once', async () => {
    const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
    let closed = 0;
    const watched: Outbox = {
      ...outbox,
      close() {
        closed += 1;
        outbox.close();
      },
    };
    const transport = new MemoryTransport();
    const runtime = createAgentRuntime({
      // Simulated hardware without the simulator's ports.
      config: config({ hardware: 'simulated', outputs: [{ id: 'relay', line: 17 }] }),
      clock: createVirtualClock(),
      transport,
      outbox: watched,
    });
    await expect(runtime.start()).rejects.toBeInstanceOf(HardwareError);
    expect(closed).toBe(1);
    expect(runtime.agent).toBeUndefined();
    await runtime.start();
    expect(runtime.agent).toBeUndefined();
    await runtime.stop();
  });
  // mkdirSync(…, { recursive: true }) never returned here (procfs answers ENOENT below /proc): the
  // agent spun at full CPU before its first log line, deaf to SIGTERM.
  it.runIf(existsSync('/proc/self'))(
    'rejects an outbox under /proc with ENOENT instead of never returning',
    async () => {
      const runtime = createAgentRuntime({
        config: config({ outbox: { path: `/proc/pifleet-${process.pid}/agent/outbox.db` } }),
        clock: createVirtualClock(),
        transport: new MemoryTransport(),
      });
      await expect(runtime.start()).rejects.toMatchObject({ code: 'ENOENT', syscall: 'mkdir' });
      expect(runtime.agent).toBeUndefined();
    },
  );
});
