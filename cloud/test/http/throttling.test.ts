import {
  CreateThingCommand,
  DescribeThingCommand,
  IoTClient,
  type IoTServiceException,
  ListThingsCommand,
  ThrottlingException,
} from '@aws-sdk/client-iot';
import { beforeAll, describe, expect, it } from 'vitest';
import { iotControlPlaneRoutes } from '../../src/http/iot-control-plane.js';
import { thingGroupRoutes } from '../../src/http/thing-groups-routes.js';
import { API_TPS, apiQuotaOf, limitOf, resolveLimits } from '../../src/limits/index.js';
import { type InProcessCore, localProfileCredentials } from '../../src/testing/in-process-core.js';
import { coresWithLimits } from './harness.js';

/**
 * IoT Core's per-operation control-plane rates, through the real @aws-sdk/client-iot: below, at
 * and over a rate, what a throttled request leaves behind (nothing), how the SDK's own retry
 * strategy treats the 429, and `--limits off`.
 */

const start = coresWithLimits('throttling');

/** Settles every promise; returns the fulfilled count and the rejections. */
async function settle<T>(calls: Array<Promise<T>>) {
  const results = await Promise.allSettled(calls);
  const rejected = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as IoTServiceException] : []));
  return { fulfilled: results.length - rejected.length, rejected };
}

describe('the control-plane API rates', () => {
  let core: InProcessCore;
  beforeAll(async () => {
    // Small rates keep the test fast; the bucket holds one second's worth, so 3 go at once.
    core = await start('small', 'aws', { apiCreateThingPerSecond: 3, apiListThingsPerSecond: 0.001 });
  });

  it('serves a burst up to the rate and answers the next request 429 ThrottlingException, creating nothing', async () => {
    const names = ['t-0', 't-1', 't-2', 't-3'];
    const { fulfilled, rejected } = await settle(
      names.map((thingName) => core.iot.send(new CreateThingCommand({ thingName }))),
    );
    expect(fulfilled).toBe(3);
    expect(rejected).toHaveLength(1);
    const err = rejected[0];
    expect(err).toBeInstanceOf(ThrottlingException);
    expect(err?.name).toBe('ThrottlingException');
    expect(err?.$metadata.httpStatusCode).toBe(429);
    expect(err?.message).toBe('Rate exceeded');
    // The throttled CreateThing did nothing: exactly three of the four things exist.
    const existing = await Promise.allSettled(
      names.map((thingName) => core.iot.send(new DescribeThingCommand({ thingName }))),
    );
    expect(existing.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    expect(core.core.services.throttles.snapshot().apiCreateThingPerSecond).toBe(1);
  });

  it('keeps one bucket per operation: DescribeThing is not throttled by CreateThing', async () => {
    await expect(core.iot.send(new CreateThingCommand({ thingName: 't-x' }))).rejects.toBeInstanceOf(
      ThrottlingException,
    );
    await expect(core.iot.send(new DescribeThingCommand({ thingName: 't-0' }))).resolves.toMatchObject({
      thingName: 't-0',
    });
  });

  it("is retried by the SDK's default retry strategy as throttling (every attempt spent when the rate stays exhausted)", async () => {
    // ListThings at 0.001/s: one token, then none for 1000 s. The default strategy (3 attempts)
    // retries a 429 ThrottlingException with backoff and gives up with the last one.
    const client = new IoTClient({
      region: core.info.region,
      endpoint: core.info.http,
      credentials: localProfileCredentials(core.info),
    });
    try {
      await client.send(new ListThingsCommand({}));
      const err = await client.send(new ListThingsCommand({})).then(
        () => undefined,
        (e: unknown) => e as IoTServiceException,
      );
      expect(err).toBeInstanceOf(ThrottlingException);
      expect(err?.$metadata.attempts).toBe(3);
      expect(err?.$metadata.totalRetryDelay).toBeGreaterThan(0);
    } finally {
      client.destroy();
    }
  });
});

describe("the SDK's default retries against a rate that refills", () => {
  it('eventually succeed: every request of a burst over the rate completes, some after a retry', async () => {
    const core = await start('refill', 'aws', { apiCreateThingPerSecond: 10 });
    // The SDK's standard strategy waits a random time in [0, 500·2ⁿ) ms before retry n; with five
    // attempts, four retries all landing inside one 100 ms refill is vanishingly unlikely.
    const client = new IoTClient({
      region: core.info.region,
      endpoint: core.info.http,
      credentials: localProfileCredentials(core.info),
      maxAttempts: 5,
    });
    try {
      const outputs = await Promise.all(
        Array.from({ length: 14 }, (_, i) => client.send(new CreateThingCommand({ thingName: `r-${i}` }))),
      );
      expect(outputs.map((o) => o.thingName).sort()).toEqual(Array.from({ length: 14 }, (_, i) => `r-${i}`).sort());
      expect(outputs.some((o) => (o.$metadata.attempts ?? 1) > 1)).toBe(true);
      expect(core.core.services.throttles.snapshot().apiCreateThingPerSecond).toBeGreaterThanOrEqual(1);
    } finally {
      client.destroy();
    }
  });
});

describe("AWS's default rates, and --limits off", () => {
  it('throttles CreateThing past 15 per second under the aws defaults', async () => {
    const core = await start('aws', 'aws');
    expect(limitOf(core.core.services.limits, 'apiCreateThingPerSecond')).toBe(15);
    const { fulfilled, rejected } = await settle(
      Array.from({ length: 40 }, (_, i) => core.iot.send(new CreateThingCommand({ thingName: `a-${i}` }))),
    );
    // 15 at once, then one more every 66 ms while the 40 requests arrive.
    expect(fulfilled).toBeGreaterThanOrEqual(15);
    expect(rejected.length).toBeGreaterThan(0);
    expect(rejected.every((e) => e instanceof ThrottlingException)).toBe(true);
    expect(core.core.services.throttles.snapshot().apiCreateThingPerSecond).toBe(rejected.length);
  });

  it('lifts every API rate with --limits off', async () => {
    const core = await start('off', 'off');
    const { fulfilled, rejected } = await settle(
      Array.from({ length: 40 }, (_, i) => core.iot.send(new CreateThingCommand({ thingName: `o-${i}` }))),
    );
    expect(rejected).toEqual([]);
    expect(fulfilled).toBe(40);
    expect(core.core.services.throttles.total()).toBe(0);
  });
});

describe('the rate table', () => {
  it('has a published rate for every IoT control-plane operation the core serves', async () => {
    const core = await start('table', 'aws');
    const { registry, ca } = core.core.services;
    const groups = [
      iotControlPlaneRoutes({ registry, ca, endpointAddress: () => 'localhost' }),
      thingGroupRoutes({ registry }),
    ];
    const operations = groups.flatMap((g) => g.routes.map((r) => r.operation));
    expect(operations.length).toBeGreaterThan(20);
    expect(operations.filter((op) => apiQuotaOf(op) === undefined)).toEqual([]);
  });

  it.each([
    ['CreateThing', 15],
    ['DescribeThing', 350],
    ['ListThings', 10],
    ['AttachPolicy', 15],
    ['AttachThingPrincipal', 15],
    ['CreateCertificateFromCsr', 15],
    ['CreatePolicy', 10],
    ['CreateThingType', 15],
    ['CreateThingGroup', 25],
    ['AddThingToThingGroup', 60],
  ] as const)("%s runs at AWS's %d per second", (operation, tps) => {
    expect(API_TPS[operation]).toBe(tps);
    expect(limitOf(resolveLimits('aws'), `api${operation}PerSecond`)).toBe(tps);
    expect(limitOf(resolveLimits('off'), `api${operation}PerSecond`)).toBeUndefined();
  });
});
