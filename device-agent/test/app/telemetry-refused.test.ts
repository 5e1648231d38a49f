/**
 * The agent when the broker refuses its telemetry (MQTT 5 PUBACK reason codes), with the port fakes
 * and the virtual clock: a refused topic is a configuration problem (one error that says what to
 * fix, the shadow says why, batches kept, a slow probe, delivery resumes by itself once fixed); a
 * batch refused by itself does not hold up the ones behind it; a passing refusal is retried as
 * any failed publish.
 */
import { MQTT5_REASON, validateReportedState } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { brokerDisconnect } from '../../src/adapters/transport-kit.js';
import { createAgent } from '../../src/app/agent.js';
import { ShadowRejectedError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { openOutbox } from '../../src/outbox/outbox.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';
import { agentConfig, countingSensor, MemoryShadow, MemoryTransport } from './fakes.js';

const TOPIC = 'pifleet/pi-01/telemetry';

function setup(publish: Record<string, unknown> = {}) {
  const config = agentConfig({
    sensors: [{ id: 'env', driver: 'bme280', intervalMs: 1000 }],
    // One batch every 2 s.
    batch: { maxReadings: 2, maxAgeMs: 60_000 },
    publish: { maxInFlight: 4, maxPerSecond: 20, refusedRetryMs: 60_000, ...publish },
    shadow: { reportIntervalMs: 3_600_000 },
    // No health reports either: the cases count on knowing which report comes next.
    health: { intervalSeconds: 0 },
  });
  const clock = createVirtualClock({ start: 1_700_000_000_000 });
  const transport = new MemoryTransport();
  const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
  const shadow = new MemoryShadow();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const agent = createAgent({
    config,
    transport,
    outbox,
    sensors: [countingSensor('env')],
    outputs: [],
    clock,
    logger,
    bootId: 'boot-refused',
    createShadow: () => shadow,
  });
  const telemetrySeqs = () => transport.telemetry().map((s) => JSON.parse(s.payload).seq as number);
  return { clock, transport, outbox, shadow, agent, lines, telemetrySeqs };
}

const settle = () => new Promise((r) => setImmediate(r));
const errorsOf = (lines: Record<string, unknown>[]) => lines.filter((l) => l.level === 50);

describe('the broker refuses the telemetry topic (NOT_AUTHORIZED): a configuration problem', () => {
  it('logs one error that says what to fix, reports it in the shadow, keeps every batch, probes slowly, and resumes once the policy allows it', async () => {
    const { clock, transport, shadow, agent, lines, telemetrySeqs } = setup();
    transport.refuseTelemetry = MQTT5_REASON.NOT_AUTHORIZED;
    await agent.start();
    await settle();
    const startedAt = clock.now();
    // Ten minutes of refusals: 300 batches sealed.
    for (let i = 0; i < 600; i++) await clock.advance(1_000);
    await settle();

    // Not resent at the normal 1 s delay (that would be ~600 publishes): the first refusal, the
    // batches in flight with it, then one probe a minute.
    const publishes = transport.telemetry().length;
    expect(publishes).toBeGreaterThanOrEqual(10);
    expect(publishes).toBeLessThanOrEqual(15);
    const status = agent.status();
    expect(status.outbox.depth).toBe(status.sealedBatches);
    expect(status.outbox.depth).toBeGreaterThanOrEqual(295);
    // The probe is always the oldest batch: nothing behind it overtakes it while refused.
    expect(new Set(telemetrySeqs().slice(4))).toEqual(new Set([1]));

    const errors = errorsOf(lines);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      component: 'publisher',
      topic: TOPIC,
      reasonCode: 0x87,
      reason: 'NOT_AUTHORIZED',
      retryEveryMs: 60_000,
    });
    expect(errors[0]?.fix).toMatch(/policy .* must allow iot:Publish on the telemetry topic pifleet\/pi-01\/telemetry/);
    expect(errors[0]?.msg).toMatch(/configuration problem/);

    const reported = shadow.reported as { telemetry?: unknown };
    expect(reported.telemetry).toEqual({
      blocked: 'NOT_AUTHORIZED',
      reasonCode: 0x87,
      topic: TOPIC,
      since: startedAt + 2_000,
      fix: expect.stringMatching(/iot:Publish/),
    });
    // What the agent reports is a valid reported document.
    const last = shadow.updates.at(-1);
    expect(validateReportedState(last).ok).toBe(true);

    // The policy is fixed: the next probe is accepted, and everything kept follows, in order, once.
    transport.refuseTelemetry = undefined;
    const beforeFix = transport.telemetry().length;
    for (let i = 0; i < 120 && agent.status().outbox.depth > 0; i++) await clock.advance(1_000);
    await settle();
    expect(agent.status().outbox.depth).toBe(0);
    const delivered = telemetrySeqs().slice(beforeFix);
    expect(new Set(delivered).size).toBe(delivered.length);
    expect(Math.min(...delivered)).toBe(1);
    expect(lines.find((l) => l.msg === 'broker accepts telemetry again; sending the kept batches')).toMatchObject({
      level: 30,
      reason: 'NOT_AUTHORIZED',
    });
    // The shadow no longer says it is blocked: the agent sent `telemetry: null` (a merge deletes it).
    expect(shadow.updates.some((u) => u.telemetry === null)).toBe(true);
    expect((shadow.reported as { telemetry?: unknown }).telemetry).toBeUndefined();
    // Once cleared, later reports leave the key out.
    const updates = shadow.updates.length;
    await agent.syncShadow();
    expect(shadow.updates.length).toBe(updates + 1);
    expect(shadow.updates.at(-1)).not.toHaveProperty('telemetry');
  });

  it('TOPIC_NAME_INVALID (0x90) is a configuration problem too; the fix names thingName', async () => {
    const { clock, transport, shadow, agent, lines } = setup();
    transport.refuseTelemetry = MQTT5_REASON.TOPIC_NAME_INVALID;
    await agent.start();
    for (let i = 0; i < 120; i++) await clock.advance(1_000);
    await settle();
    expect(transport.telemetry().length).toBeLessThanOrEqual(8);
    expect(errorsOf(lines)).toHaveLength(1);
    expect(errorsOf(lines)[0]?.fix).toMatch(/thingName/);
    expect((shadow.reported as { telemetry?: { blocked?: string } }).telemetry?.blocked).toBe('TOPIC_NAME_INVALID');
  });
});

describe('other refusals', () => {
  it('a batch refused by itself (PACKET_TOO_LARGE) is held back and kept; the batches behind it are sent; it is offered again later', async () => {
    const { clock, transport, shadow, agent, lines, telemetrySeqs } = setup({ refusedRetryMs: 10_000 });
    let refuseFirst = true;
    transport.refuseTelemetry = (payload) =>
      refuseFirst && JSON.parse(payload).seq === 1 ? MQTT5_REASON.PACKET_TOO_LARGE : undefined;
    await agent.start();
    for (let i = 0; i < 8; i++) await clock.advance(1_000);
    await settle();
    // Batches 2..4 went while 1 was held; 1 is still in the outbox.
    expect(telemetrySeqs().filter((s) => s !== 1)).toEqual([2, 3, 4]);
    expect(agent.status().outbox.depth).toBe(1);
    const errors = errorsOf(lines);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ seq: 1, reasonCode: 0x95, reason: 'PACKET_TOO_LARGE' });
    // Not a topic problem: the shadow does not say telemetry is blocked.
    expect((shadow.reported as { telemetry?: unknown }).telemetry).toBeUndefined();
    // Offered again once per interval while refused, logged once.
    for (let i = 0; i < 30; i++) await clock.advance(1_000);
    await settle();
    expect(telemetrySeqs().filter((s) => s === 1)).toHaveLength(4);
    expect(errorsOf(lines)).toHaveLength(1);
    expect(agent.status().outbox.depth).toBe(1);
    // Held for the interval, then offered again (here accepted).
    refuseFirst = false;
    for (let i = 0; i < 12; i++) await clock.advance(1_000);
    await settle();
    expect(telemetrySeqs().filter((s) => s === 1)).toHaveLength(5);
    expect(agent.status().outbox.depth).toBe(0);
  });

  it.each([
    ['QUOTA_EXCEEDED', MQTT5_REASON.QUOTA_EXCEEDED],
    ['MESSAGE_RATE_TOO_HIGH', MQTT5_REASON.MESSAGE_RATE_TOO_HIGH],
  ])(
    'a publish throttled for a quota (%s) is kept, backed off with a growing delay, counted and reported; never blocked, never dropped',
    async (reason, code) => {
      const { clock, transport, shadow, agent, lines, telemetrySeqs } = setup();
      transport.refuseTelemetry = code;
      await agent.start();
      for (let i = 0; i < 60; i++) await clock.advance(1_000);
      await settle();
      // A minute of throttling: the backoff grows (1 s, 2 s, 4 s, … with jitter), so far fewer
      // attempts than the 1-a-second retry of a failed publish (~60) and the pacer's 20/s.
      const attempts = transport.telemetry().length;
      expect(attempts).toBeGreaterThanOrEqual(5);
      expect(attempts).toBeLessThan(30);
      expect(errorsOf(lines)).toHaveLength(0);
      // One warning with the reason code when it starts; the rest are debug.
      const warnings = lines.filter(
        (l) => l.msg === 'publish throttled by the broker (quota); batch kept, backing off',
      );
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ level: 40, reasonCode: code, reason });
      // Not a blocked topic; counted in the status and the shadow.
      const status = agent.status();
      expect(status.throttled).toEqual({ publishes: attempts, unacknowledged: 0, connects: 0, shadow: 0 });
      expect(status.outbox.depth).toBe(status.sealedBatches);
      await agent.syncShadow();
      const reported = shadow.reported as { telemetry?: unknown; throttled?: unknown };
      expect(reported.telemetry).toBeUndefined();
      expect(reported.throttled).toEqual({ publishes: attempts, unacknowledged: 0, connects: 0, shadow: 0 });
      expect(validateReportedState(shadow.updates.at(-1)).ok).toBe(true);

      // The quota clears: everything kept is delivered, each batch acknowledged once.
      transport.refuseTelemetry = undefined;
      for (let i = 0; i < 90 && agent.status().outbox.depth > 0; i++) await clock.advance(1_000);
      await settle();
      expect(agent.status().outbox.depth).toBe(0);
      const accepted = transport
        .telemetry()
        .slice(attempts)
        .map((s) => JSON.parse(s.payload).seq as number);
      expect(new Set(accepted).size).toBe(accepted.length);
      expect(new Set(telemetrySeqs())).toEqual(
        new Set(Array.from({ length: agent.status().sealedBatches }, (_, i) => i + 1)),
      );
      expect(
        lines.find((l) => l.msg === 'broker acknowledges publishes again after throttling or timeouts'),
      ).toMatchObject({
        level: 30,
        throttled: attempts,
      });
    },
  );

  it('a publish never acknowledged (MQTT 3.1.1: IoT Core sends no PUBACK for a throttled publish) is resent after a backoff, counted, and stored once', async () => {
    const { clock, transport, agent, lines } = setup({ ackTimeoutMs: 5_000 });
    transport.autoAck = false;
    await agent.start();
    for (let i = 0; i < 40; i++) await clock.advance(1_000);
    await settle();
    const unacked = agent.status().throttled.unacknowledged;
    expect(unacked).toBeGreaterThanOrEqual(4);
    // Backed off between rounds: not the 20/s the pacer allows.
    expect(transport.telemetry().length).toBeLessThan(40);
    expect(lines.filter((l) => l.msg === 'publish not acknowledged in time; will resend').at(-1)).toMatchObject({
      level: 40,
      unacknowledged: unacked,
    });
    // The broker acknowledges again: every batch acknowledged; the duplicates are what storage drops by (bootId, seq).
    transport.autoAck = true;
    for (let i = 0; i < 120 && agent.status().outbox.depth > 0; i++) await clock.advance(1_000);
    await settle();
    expect(agent.status().outbox.depth).toBe(0);
    const ids = new Set(transport.telemetry().map((s) => JSON.parse(s.payload).seq as number));
    expect(ids.size).toBe(agent.status().sealedBatches);
  });
});

describe('the broker ends the connection with a reason', () => {
  it('SESSION_TAKEN_OVER (0x8e) is an error that suspects a second device with this bundle; other reasons are a warning that names them', async () => {
    const { clock, transport, agent, lines } = setup();
    await agent.start();
    await settle();
    transport.drop(brokerDisconnect('disconnect', MQTT5_REASON.SESSION_TAKEN_OVER, new Error('socket closed')));
    expect(errorsOf(lines)).toEqual([
      expect.objectContaining({
        reasonCode: 0x8e,
        reason: 'SESSION_TAKEN_OVER',
        clientId: 'memory',
        msg: expect.stringMatching(/took over the connection .*second device/),
      }),
    ]);
    transport.connect();
    await clock.advance(1_000);
    transport.drop(brokerDisconnect('disconnect', MQTT5_REASON.SERVER_SHUTTING_DOWN, new Error('socket closed')));
    expect(lines.at(-1)).toMatchObject({
      level: 40,
      msg: 'connection lost; telemetry stays in the outbox',
      reasonCode: 0x8b,
      reason: 'SERVER_SHUTTING_DOWN',
    });
    expect(errorsOf(lines)).toHaveLength(1);
  });
});

describe('the broker refuses or ends the connection for a quota', () => {
  it.each([
    ['CONNECTION_RATE_EXCEEDED', MQTT5_REASON.CONNECTION_RATE_EXCEEDED],
    ['QUOTA_EXCEEDED', MQTT5_REASON.QUOTA_EXCEEDED],
    ['MESSAGE_RATE_TOO_HIGH', MQTT5_REASON.MESSAGE_RATE_TOO_HIGH],
  ])('a DISCONNECT %s is counted in the status and the shadow; other reasons are not', async (_name, code) => {
    const { clock, transport, shadow, agent, lines } = setup();
    await agent.start();
    await settle();
    transport.drop(brokerDisconnect('disconnect', MQTT5_REASON.SERVER_SHUTTING_DOWN, new Error('socket closed')));
    transport.connect();
    await clock.advance(1_000);
    expect(agent.status().throttled.connects).toBe(0);
    transport.drop(brokerDisconnect('disconnect', code, new Error('socket closed')));
    expect(lines.at(-1)).toMatchObject({ level: 40, reasonCode: code, connectsThrottled: 1 });
    transport.connect();
    await clock.advance(1_000);
    await settle();
    expect(agent.status().throttled).toEqual({ publishes: 0, unacknowledged: 0, connects: 1, shadow: 0 });
    await agent.syncShadow();
    expect((shadow.reported as { throttled?: unknown }).throttled).toEqual({
      publishes: 0,
      unacknowledged: 0,
      connects: 1,
      shadow: 0,
    });
  });
});

describe('the shadow service throttles (429)', () => {
  it('a report answered 429 is retried after a backoff, counted in the status and reported', async () => {
    const { clock, shadow, agent, lines } = setup();
    await agent.start();
    await settle();
    const update = shadow.updateReported.bind(shadow);
    let refuse = 2;
    shadow.updateReported = async (reported: object) => {
      if (refuse > 0) {
        refuse -= 1;
        throw new ShadowRejectedError('update', { code: 429, message: 'Too Many Requests', clientToken: 't' });
      }
      return update(reported);
    };
    const before = shadow.updates.length;
    const synced = agent.syncShadow();
    for (let i = 0; i < 20 && shadow.updates.length === before; i++) await clock.advance(500);
    await synced;
    expect(shadow.updates.length).toBe(before + 1);
    expect(agent.status().throttled.shadow).toBe(2);
    expect(lines.filter((l) => l.msg === 'shadow request throttled (429); retrying')).toHaveLength(2);
    // The next report carries the count.
    await agent.syncShadow();
    expect((shadow.reported as { throttled?: { shadow?: number } }).throttled?.shadow).toBe(2);
  });
});

describe('clearing the shadow report', () => {
  it('a report that would clear `telemetry` and fails is retried with `telemetry: null` at the next report', async () => {
    const { clock, transport, shadow, agent } = setup();
    transport.refuseTelemetry = MQTT5_REASON.NOT_AUTHORIZED;
    await agent.start();
    for (let i = 0; i < 5; i++) await clock.advance(1_000);
    await settle();
    expect((shadow.reported as { telemetry?: unknown }).telemetry).toMatchObject({ blocked: 'NOT_AUTHORIZED' });
    // The next update fails (the shadow service answers nothing, say).
    const update = shadow.updateReported.bind(shadow);
    let failNext = true;
    shadow.updateReported = async (reported: object) => {
      if (failNext) {
        failNext = false;
        throw new Error('shadow update timed out');
      }
      return update(reported);
    };
    transport.refuseTelemetry = undefined;
    for (let i = 0; i < 65 && agent.status().outbox.depth > 0; i++) await clock.advance(1_000);
    await settle();
    expect(agent.status().outbox.depth).toBe(0);
    expect(failNext).toBe(false);
    // The clearing report was lost: the shadow still says blocked until the next report carries null.
    expect((shadow.reported as { telemetry?: unknown }).telemetry).toMatchObject({ blocked: 'NOT_AUTHORIZED' });
    await agent.syncShadow();
    expect(shadow.updates.at(-1)).toHaveProperty('telemetry', null);
    expect((shadow.reported as { telemetry?: unknown }).telemetry).toBeUndefined();
  });
});
