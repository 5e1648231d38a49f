import { AGENT_INSTALL_PATHS } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { createAgent } from '../../src/app/agent.js';
import { createMemoryJobState } from '../../src/jobs/state.js';
import type { AgentUpdater } from '../../src/jobs/update-job.js';
import { createAgentJobs, selfUpdateLayout } from '../../src/jobs/wiring.js';
import { silentLogger } from '../../src/logger.js';
import { openOutbox } from '../../src/outbox/outbox.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';
import { agentConfig, MemoryTransport } from '../app/fakes.js';

describe('selfUpdateLayout', () => {
  const config = agentConfig({ outbox: { path: '/var/lib/pifleet/outbox.db' } });

  it('is the state directory of an agent the self-update unit runs (<stateDir>/current)', () => {
    expect(selfUpdateLayout(config, '/var/lib/pifleet/current/bin/pifleet-agent.js')).toEqual({
      stateDir: '/var/lib/pifleet',
      factoryDir: AGENT_INSTALL_PATHS.agentDir,
      runningDir: '/var/lib/pifleet/current',
    });
  });

  it.each([
    ['the factory install', AGENT_INSTALL_PATHS.agentBin],
    ['a checkout', '/home/pi/pifleet/device-agent/bin/pifleet-agent.js'],
    ['no launcher', undefined],
  ])('is undefined for %s', (_name, launcher) => {
    expect(selfUpdateLayout(config, launcher)).toBeUndefined();
  });

  it('is undefined for an in-memory outbox', () => {
    expect(selfUpdateLayout(agentConfig({ outbox: { path: ':memory:' } }), '/x/current/bin/pifleet-agent.js')).toBe(
      undefined,
    );
  });
});

describe('createAgentJobs', () => {
  it('arms the updater’s health deadline at start, before any connection', async () => {
    const clock = createVirtualClock();
    const transport = new MemoryTransport();
    transport.startConnected = false;
    const config = agentConfig({ outbox: { path: ':memory:' } });
    const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
    const agent = createAgent({ config, transport, outbox, sensors: [], outputs: [], clock });
    await agent.start();
    const started: string[] = [];
    const updater: AgentUpdater = {
      install: () => Promise.reject(new Error('not called')),
      async onStart(jobId) {
        started.push(jobId);
        return { state: 'awaiting-health', step: 'health' };
      },
      confirmHealthy: () => Promise.reject(new Error('not called')),
    };
    const store = createMemoryJobState({
      jobId: 'upd-1',
      executionNumber: 1,
      operation: 'pifleet.agent-update',
      step: 'restart',
      versionNumber: 4,
    });
    const jobs = createAgentJobs({
      config,
      agent,
      transport,
      crt: undefined,
      clock,
      logger: silentLogger(),
      store,
      updater,
    });
    jobs.start();
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual(['upd-1']);
    expect(transport.sent.map((s) => s.topic).filter((t) => t.includes('/jobs/'))).toEqual([]);
    jobs.stop();
    await agent.stop();
  });
});
