import { IoTClient } from '@aws-sdk/client-iot';
import { createAwsIotTemplates, TEMPLATE_API_RATES } from '../adapters/aws-iot-templates.js';
import type { Target } from '../config/target.js';
import { ApiRateLimiter, scaleRates } from '../core/rate-limiter.js';
import type { Logger } from '../logger.js';
import type { ProvisioningTemplates } from '../ports/templates.js';
import type { CliIo, GlobalOptions } from './context.js';

/**
 * The provisioning-template client of a run (`templates …`, `claims create`), on the target the
 * run's other services resolved. Built like `createServices`' control-plane client (one attempt
 * per SDK call, our own retries under IoT's rates) and closed by the command that made it.
 * Unpaced on a local core started with `--limits off`, as the other services are.
 */
export function createTemplatesService(
  io: CliIo,
  opts: GlobalOptions,
  target: Target,
  log: Logger,
): { readonly templates: ProvisioningTemplates; close(): void } {
  const client =
    target.kind === 'local'
      ? new IoTClient({
          maxAttempts: 1,
          region: target.region,
          endpoint: target.httpEndpoint,
          credentials: target.credentials,
        })
      : new IoTClient({
          maxAttempts: 1,
          ...(target.region ? { region: target.region } : {}),
          ...(target.credentials ? { credentials: target.credentials } : {}),
          ...(target.profile ? { profile: target.profile } : {}),
        });
  const unpaced = target.kind === 'local' && target.limits === 'off' && opts.rate === undefined;
  const rates = unpaced ? {} : scaleRates(TEMPLATE_API_RATES, opts.rate ?? 1);
  const templates = createAwsIotTemplates({
    client,
    limiter: new ApiRateLimiter({ rates, clock: io.clock }),
    clock: io.clock,
    ...(io.signal ? { signal: io.signal } : {}),
    ...(io.random ? { random: io.random } : {}),
    onRetry: ({ operation, attempt, delayMs, err }) =>
      log.warn({ operation, attempt, delayMs, errName: (err as { name?: string }).name }, 'retrying'),
  });
  return { templates, close: () => client.destroy() };
}
