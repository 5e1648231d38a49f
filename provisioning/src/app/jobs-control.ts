import { IoTClient } from '@aws-sdk/client-iot';
import { createAwsIotJobs } from '../adapters/aws-iot-jobs.js';
import { systemClock } from '../adapters/system-clock.js';
import { ApiRateLimiter, AWS_CONTROL_PLANE_RATES } from '../core/rate-limiter.js';
import type { JobsControl } from '../ports/jobs.js';

export interface JobsControlTarget {
  readonly region: string;
  /** The IoT control plane's endpoint (the local core's HTTP listener); absent: AWS's for the region. */
  readonly endpoint?: string;
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly profile?: string;
  readonly signal?: AbortSignal;
}

/**
 * IoT Jobs' control plane for another package (the simulator's `fleet --job` rollout): the same
 * `@aws-sdk/client-iot` adapter, rate limiter and retries as the `pifleet jobs` commands, so the
 * simulator creates and follows jobs exactly as an operator does, against AWS or the local core.
 */
export function createJobsControl(target: JobsControlTarget): JobsControl & { close(): void } {
  const client = new IoTClient({
    maxAttempts: 1,
    region: target.region,
    ...(target.endpoint ? { endpoint: target.endpoint } : {}),
    ...(target.credentials ? { credentials: target.credentials } : {}),
    ...(target.profile ? { profile: target.profile } : {}),
  });
  const jobs = createAwsIotJobs({
    client,
    limiter: new ApiRateLimiter({ rates: AWS_CONTROL_PLANE_RATES, clock: systemClock }),
    clock: systemClock,
    ...(target.signal ? { signal: target.signal } : {}),
  });
  return { ...jobs, close: () => client.destroy() };
}
