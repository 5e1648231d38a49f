import { TokenBucket } from '@pifleet/protocol';
import type { Clock } from '../ports/clock.js';

/**
 * Client-side limits on AWS control-plane API calls: one token bucket per operation name, created
 * on first use from a rate table. Each caller reserves its slot synchronously, so concurrent callers
 * are served in order and never exceed the rate together.
 */
export class ApiRateLimiter {
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #rates: Readonly<Record<string, number>>;
  readonly #defaultRate: number | undefined;
  readonly #clock: Clock;

  /** `rates` per operation (per second); operations not in the table use `defaultRate`, or are not limited. */
  constructor(options: { rates: Readonly<Record<string, number>>; defaultRate?: number; clock: Clock }) {
    this.#rates = options.rates;
    this.#defaultRate = options.defaultRate;
    this.#clock = options.clock;
  }

  async take(operation: string, signal?: AbortSignal): Promise<void> {
    let bucket = this.#buckets.get(operation);
    if (!bucket) {
      const rate = this.#rates[operation] ?? this.#defaultRate;
      if (rate === undefined) return;
      // A burst of one second's worth (at least 1) lets the first calls go at once.
      bucket = new TokenBucket({ ratePerSecond: rate, burst: Math.max(1, Math.floor(rate)) });
      this.#buckets.set(operation, bucket);
    }
    const wait = bucket.reserve(this.#clock.now());
    if (wait > 0) await this.#clock.sleep(wait, signal);
  }
}

/**
 * Default client-side rates (requests per second) for the AWS IoT control-plane operations the
 * CLI calls. They sit below AWS IoT Core's default per-account API rates ("AWS IoT Core
 * endpoints and quotas", API throttling limits: CreateThing, DeleteThing and the attach/detach
 * APIs 15 TPS, UpdateThing and most certificate and list APIs 10, DescribeThing 350; the local
 * core enforces the same table, cloud/src/limits/api-quotas.ts) so a bulk run leaves headroom for
 * other callers; `--rate` scales them.
 */
export const AWS_CONTROL_PLANE_RATES: Readonly<Record<string, number>> = {
  CreateThing: 12,
  DescribeThing: 100,
  UpdateThing: 8,
  DeleteThing: 12,
  ListThings: 8,
  ListThingPrincipals: 8,
  AttachThingPrincipal: 12,
  DetachThingPrincipal: 12,
  CreateKeysAndCertificate: 8,
  CreateCertificateFromCsr: 12,
  DescribeCertificate: 8,
  UpdateCertificate: 8,
  DeleteCertificate: 8,
  AttachPolicy: 12,
  DetachPolicy: 12,
  ListAttachedPolicies: 12,
  GetPolicy: 8,
  CreatePolicy: 8,
  DescribeEndpoint: 8,
  // Thing types and groups: pifleet calls them once per command, or once per thing in a fleet run
  // (AddThingToThingGroup, ListThingGroupsForThing); kept at the thing APIs' order for the per-thing
  // calls and low for the rest, as the other rates here.
  DescribeThingType: 8,
  CreateThingType: 8,
  DescribeThingGroup: 8,
  CreateThingGroup: 8,
  ListThingGroups: 8,
  DeleteThingGroup: 8,
  AddThingToThingGroup: 50,
  RemoveThingFromThingGroup: 12,
  ListThingsInThingGroup: 8,
  ListThingGroupsForThing: 8,
  // IoT Jobs (`jobs …`): AWS IoT Device Management's API rates (10 TPS each, the table the local
  // core enforces, cloud/src/limits/api-quotas.ts); one call per command, the watch one per poll.
  CreateJob: 8,
  DescribeJob: 8,
  ListJobs: 8,
  CancelJob: 8,
  ListJobExecutionsForJob: 8,
  DescribeJobExecution: 8,
};

/** Scales a rate table (`--rate 0.5` halves every rate). */
export function scaleRates(rates: Readonly<Record<string, number>>, factor: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(rates)) out[k] = v * factor;
  return out;
}
