import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLocalIotCore } from '../../src/app/local-core.js';
import { LOCAL_CORE_DEFAULTS } from '../../src/config/local-core.js';
import {
  createThrottleCounters,
  KeyedRateLimiter,
  limitOf,
  parseLimitOverrides,
  QUOTA_NAMES,
  QUOTAS,
  resolveLimits,
} from '../../src/limits/index.js';
import { removeDir, tempDir } from '../../src/testing/in-process-core.js';
import { logSink } from '../log-sink.js';

describe('resolveLimits', () => {
  it("uses AWS's published defaults in aws mode", () => {
    const limits = resolveLimits('aws');
    expect(limitOf(limits, 'publishesPerSecondPerConnection')).toBe(100);
    expect(limitOf(limits, 'publishBytesPerSecondPerConnection')).toBe(512 * 1024);
    expect(limitOf(limits, 'connectsPerSecondPerClientId')).toBe(1);
    expect(limitOf(limits, 'topicFiltersPerSubscribe')).toBe(8);
    expect(limitOf(limits, 'subscriptionsPerConnection')).toBe(50);
    expect(limitOf(limits, 'shadowRequestsPerSecondPerThing')).toBe(20);
    expect(limitOf(limits, 'shadowInFlightPerThing')).toBe(10);
    expect(limitOf(limits, 'messageBytes')).toBe(131_072);
    expect(limits.changed).toEqual({});
    expect(Object.isFrozen(limits.values)).toBe(true);
  });

  it('lifts every rate and count in off mode and keeps the sizes', () => {
    const limits = resolveLimits('off');
    for (const name of QUOTA_NAMES) {
      const spec = QUOTAS[name];
      expect(limitOf(limits, name), name).toBe(spec.kind === 'size' ? spec.aws : undefined);
    }
    expect(limits.changed.publishesPerSecondPerConnection).toBeNull();
    expect(limits.changed.messageBytes).toBeUndefined();
  });

  it('applies single values over either mode, null meaning not enforced', () => {
    const aws = resolveLimits('aws', { publishesPerSecondPerConnection: 5, subscriptionsPerConnection: null });
    expect(limitOf(aws, 'publishesPerSecondPerConnection')).toBe(5);
    expect(limitOf(aws, 'subscriptionsPerConnection')).toBeUndefined();
    expect(aws.changed).toEqual({ publishesPerSecondPerConnection: 5, subscriptionsPerConnection: null });
    const off = resolveLimits('off', { connectsPerSecondPerClientId: 1 });
    expect(limitOf(off, 'connectsPerSecondPerClientId')).toBe(1);
    expect(limitOf(off, 'publishesPerSecondPerConnection')).toBeUndefined();
  });
});

describe('parseLimitOverrides', () => {
  it('reads quota names to numbers or null', () => {
    expect(parseLimitOverrides('{"publishesPerSecondPerConnection": 50, "retainedMessagesPerAccount": null}')).toEqual({
      ok: true,
      value: { publishesPerSecondPerConnection: 50, retainedMessagesPerAccount: null },
    });
    expect(parseLimitOverrides('{}')).toEqual({ ok: true, value: {} });
  });

  it('reports every problem at once, with a hint for a near miss', () => {
    const result = parseLimitOverrides(
      '{"PublishesPerSecondPerConnection": 1, "nope": 2, "topicBytes": -1, "shadowDepth": "6", "messageBytes": 0}',
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toHaveLength(5);
    expect(result.problems[0]).toContain('did you mean "publishesPerSecondPerConnection"');
    expect(result.problems[1]).toMatch(/unknown quota "nope" \(known: connectsPerSecondPerAccount, /);
    expect(result.problems[2]).toBe('topicBytes: must be a positive number or null (not enforced), got -1');
    expect(result.problems[3]).toContain('got "6"');
    expect(result.problems[4]).toContain('got 0');
  });

  it('refuses what is not a JSON object, prototype keys and too-deep JSON', () => {
    for (const text of ['', '[]', 'null', '7', '{"a":', `${'['.repeat(10_000)}${']'.repeat(10_000)}`]) {
      const result = parseLimitOverrides(text);
      expect(result.ok, text.slice(0, 20)).toBe(false);
    }
    const proto = parseLimitOverrides('{"__proto__": {"publishesPerSecondPerConnection": 1}, "constructor": 1}');
    expect(proto.ok).toBe(false);
    if (!proto.ok)
      expect(proto.problems.map((p) => p.slice(0, 30))).toEqual([
        'unknown quota "__proto__" (kno',
        'unknown quota "constructor" (k',
      ]);
    expect(({} as Record<string, unknown>).publishesPerSecondPerConnection).toBeUndefined();
  });
});

describe('createThrottleCounters', () => {
  afterEach(() => vi.useRealTimers());

  it('counts every breach, logs the first at once and sums the rest per interval', () => {
    vi.useFakeTimers();
    const { logger, lines } = logSink();
    const counters = createThrottleCounters({ logger, logIntervalMs: 1000 });
    counters.hit('publishesPerSecondPerConnection', 'dev-1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ quota: 'publishesPerSecondPerConnection', subject: 'dev-1', total: 1 });
    for (let i = 0; i < 50; i++) counters.hit('publishesPerSecondPerConnection', `dev-${i % 7}`);
    counters.hit('connectsPerSecondPerClientId', 'dev-9');
    expect(lines).toHaveLength(2);
    vi.advanceTimersByTime(1000);
    expect(lines).toHaveLength(3);
    const summary = lines[2] as { throttled: number; total: number; subjects: string[] };
    expect(summary).toMatchObject({ quota: 'publishesPerSecondPerConnection', throttled: 50, total: 51 });
    expect(summary.subjects).toHaveLength(5);
    expect(counters.snapshot()).toMatchObject({ publishesPerSecondPerConnection: 51, connectsPerSecondPerClientId: 1 });
    expect(counters.snapshot().shadowInFlightPerThing).toBe(0);
    expect(counters.total()).toBe(52);
    counters.hit('publishesPerSecondPerConnection');
    counters.close();
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatchObject({ throttled: 1, total: 52 });
  });
});

describe('KeyedRateLimiter', () => {
  it('gives each key its own second of burst, then the rate', () => {
    const limiter = new KeyedRateLimiter({ ratePerSecond: 100 });
    let granted = 0;
    for (let i = 0; i < 150; i++) if (limiter.tryTake('a', 1000)) granted++;
    expect(granted).toBe(100);
    expect(limiter.tryTake('b', 1000)).toBe(true);
    expect(limiter.tryTake('a', 1010)).toBe(true);
    expect(limiter.tryTake('a', 1010)).toBe(false);
  });

  it('takes a cost in one piece or not at all', () => {
    const limiter = new KeyedRateLimiter({ ratePerSecond: 1000 });
    expect(limiter.tryTake('a', 0, 600)).toBe(true);
    expect(limiter.tryTake('a', 0, 500)).toBe(false);
    expect(limiter.tryTake('a', 0, 400)).toBe(true);
    expect(limiter.tryTake('a', 0, 1)).toBe(false);
  });

  it('forgets keys idle for longer than idleMs', () => {
    const limiter = new KeyedRateLimiter({ ratePerSecond: 1, idleMs: 1000 });
    limiter.tryTake('a', 0);
    limiter.tryTake('b', 900);
    expect(limiter.size).toBe(2);
    limiter.tryTake('c', 1500);
    expect(limiter.size).toBe(2);
    limiter.delete('b');
    expect(limiter.size).toBe(1);
  });
});

describe('the local core with a limits file', () => {
  it('starts with the changed values in its ready line, and refuses a bad file with every problem', async () => {
    const dir = tempDir('limits');
    try {
      const file = join(dir, 'limits.json');
      writeFileSync(file, '{"publishesPerSecondPerConnection": 10, "retainedMessagesPerAccount": null}');
      const config = { ...LOCAL_CORE_DEFAULTS, dataDir: join(dir, 'core'), mqttPort: 0, httpPort: 0, limitsFile: file };
      const core = createLocalIotCore({ config });
      const info = await core.start();
      try {
        expect(info.limits).toEqual({
          mode: 'aws',
          changed: { publishesPerSecondPerConnection: 10, retainedMessagesPerAccount: null },
        });
        expect(limitOf(core.services.limits, 'publishesPerSecondPerConnection')).toBe(10);
        expect(core.services.throttles.total()).toBe(0);
      } finally {
        await core.stop();
      }

      writeFileSync(file, '{"publishesPerSecond": 10, "topicBytes": 0}');
      await expect(createLocalIotCore({ config }).start()).rejects.toMatchObject({
        name: 'ConfigError',
        problems: [
          expect.stringContaining(`--limits-file ${file}: unknown quota "publishesPerSecond"`),
          expect.stringContaining('topicBytes: must be a positive number'),
        ],
      });
      await expect(
        createLocalIotCore({ config: { ...config, limitsFile: join(dir, 'missing.json') } }).start(),
      ).rejects.toThrow(/--limits-file: cannot read .*missing\.json \(ENOENT\)/);
    } finally {
      removeDir(dir);
    }
  });
});
