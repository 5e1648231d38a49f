import { IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { type AwsIotJobsDeps, createAwsIotJobs } from '../adapters/aws-iot-jobs.js';
import { createAwsIotRegistry } from '../adapters/aws-iot-registry.js';
import { createAwsShadowClient } from '../adapters/aws-iot-shadows.js';
import { createAwsIotTemplates, TEMPLATE_API_RATES } from '../adapters/aws-iot-templates.js';
import { readBundle, removeBundle, writeBundleFile } from '../adapters/bundle-files.js';
import { resolveTarget, type Target } from '../config/target.js';
import { AMAZON_ROOT_CA_1_PEM } from '../core/amazon-root-ca.js';
import type { ErrorContext } from '../core/error-map.js';
import { type HintCommands, hintCommands, type Invocation } from '../core/hints.js';
import { ApiRateLimiter, AWS_CONTROL_PLANE_RATES, scaleRates } from '../core/rate-limiter.js';
import type { Logger } from '../logger.js';
import type { ArtifactStore } from '../ports/artifacts.js';
import type { Clock } from '../ports/clock.js';
import type { JobsControl } from '../ports/jobs.js';
import type { DeviceRegistry } from '../ports/registry.js';
import type { ShadowClient } from '../ports/shadows.js';
import type { ProvisioningTemplates } from '../ports/templates.js';
import { createProvisioner, type Provisioner } from './provisioner.js';

/** A text sink (process.stdout, or a buffer in tests). */
export interface TextSink {
  write(chunk: string): unknown;
}

/** What a command run gets from its caller: streams, environment, working directory, clock, abort. */
export interface CliIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly clock: Clock;
  /** Aborting stops bulk runs between things (SIGINT in the bin; tests abort after K things). */
  readonly signal?: AbortSignal;
  /** stderr is a terminal: draw a progress bar instead of lines. */
  readonly isTTY: boolean;
  /** Randomness for backoff jitter (tests pass a fixed one). */
  readonly random?: () => number;
  /** How this CLI was started, so hints print commands that run here. */
  readonly invocation: Invocation;
}

/** Options every command accepts. */
export interface GlobalOptions {
  readonly json: boolean;
  readonly local?: string | boolean;
  readonly region?: string;
  readonly profile?: string;
  readonly verbose: boolean;
  /** Multiplies the client-side control-plane rates (AWS defaults, or unlimited locally). */
  readonly rate?: number;
}

export interface Services {
  readonly target: Target;
  readonly registry: DeviceRegistry;
  readonly shadows: ShadowClient;
  /** IoT Jobs' control plane (`jobs …`). */
  readonly jobs: JobsControl;
  /** Fleet provisioning templates (`templates …`, `claims create`). */
  readonly templates: ProvisioningTemplates;
  /** The object store of release artifacts (`release upload`): made on first use. */
  artifacts(): Promise<ArtifactStore>;
  readonly provisioner: Provisioner;
  readonly errorContext: ErrorContext;
  close(): void;
}

/** The hint commands of a run: its invocation with its target options. */
export function hintsFor(io: CliIo, opts: GlobalOptions): HintCommands {
  return hintCommands(io.invocation, opts);
}

/**
 * Rates on the local core when `--rate` is not given. It enforces IoT Core's API rates unless it
 * runs with `--limits off`, so a bulk run paces itself as against AWS: unpaced, `fleet create`
 * at its default concurrency was throttled past its retries after about 200 things (measured:
 * 201 of 300 created, then ThrottlingException stopped the run).
 */
function localDefaultRates(target: { readonly limits?: 'aws' | 'off' }): Readonly<Record<string, number>> {
  return target.limits === 'off' ? {} : AWS_CONTROL_PLANE_RATES;
}

/** Builds the SDK clients and the provisioner for a target. Does no network I/O. */
export async function createServices(io: CliIo, opts: GlobalOptions, log: Logger): Promise<Services> {
  const target = await resolveTarget({
    ...(opts.local !== undefined ? { local: opts.local } : {}),
    ...(opts.region !== undefined ? { region: opts.region } : {}),
    ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
    env: io.env,
    cwd: io.cwd,
    localCoreCommand: io.invocation.localCore,
  });
  const hints = hintsFor(io, opts);
  const common = { maxAttempts: 1 } as const;
  const iot =
    target.kind === 'local'
      ? new IoTClient({
          ...common,
          region: target.region,
          endpoint: target.httpEndpoint,
          credentials: target.credentials,
        })
      : new IoTClient({
          ...common,
          ...(target.region ? { region: target.region } : {}),
          ...(target.credentials ? { credentials: target.credentials } : {}),
          ...(target.profile ? { profile: target.profile } : {}),
        });
  const rates =
    target.kind === 'local'
      ? opts.rate !== undefined
        ? scaleRates(AWS_CONTROL_PLANE_RATES, opts.rate)
        : localDefaultRates(target)
      : scaleRates(AWS_CONTROL_PLANE_RATES, opts.rate ?? 1);
  const limiter = new ApiRateLimiter({ rates, clock: io.clock });
  // One rate limiter and retry policy for every control-plane call, registry and jobs alike.
  const controlPlane: AwsIotJobsDeps = {
    client: iot,
    limiter,
    clock: io.clock,
    ...(io.signal ? { signal: io.signal } : {}),
    ...(io.random ? { random: io.random } : {}),
    onRetry: ({ operation, attempt, delayMs, err }) =>
      log.warn({ operation, attempt, delayMs, errName: (err as { name?: string }).name }, 'retrying'),
  };
  const registry = createAwsIotRegistry(controlPlane);
  const jobs = createAwsIotJobs(controlPlane);
  // The same client and retries; the template operations' own rates (unpaced where the registry's are).
  const templates = createAwsIotTemplates({
    ...controlPlane,
    limiter: new ApiRateLimiter({
      rates: Object.keys(rates).length === 0 ? {} : scaleRates(TEMPLATE_API_RATES, opts.rate ?? 1),
      clock: io.clock,
    }),
  });

  let dataClient: Promise<IoTDataPlaneClient> | undefined;
  const makeDataClient = () => {
    dataClient ??= (async () => {
      if (target.kind === 'local') {
        return new IoTDataPlaneClient({
          region: target.region,
          endpoint: target.httpEndpoint,
          credentials: target.credentials,
        });
      }
      const address = await registry.describeEndpoint('iot:Data-ATS');
      return new IoTDataPlaneClient({
        endpoint: `https://${address}`,
        ...(target.region ? { region: target.region } : {}),
        ...(target.credentials ? { credentials: target.credentials } : {}),
        ...(target.profile ? { profile: target.profile } : {}),
      });
    })();
    return dataClient;
  };
  // client-s3 is loaded only by the commands that upload: the others start without it.
  let s3: Promise<{ store: ArtifactStore; destroy(): void }> | undefined;
  const makeArtifacts = () => {
    s3 ??= (async () => {
      const [{ S3Client }, { createAwsS3Artifacts }] = await Promise.all([
        import('@aws-sdk/client-s3'),
        import('../adapters/aws-s3-artifacts.js'),
      ]);
      const client =
        target.kind === 'local'
          ? // The local core's S3 subset is path-style on its own HTTP listener.
            new S3Client({
              ...common,
              region: target.region,
              endpoint: target.httpEndpoint,
              credentials: target.credentials,
              forcePathStyle: true,
            })
          : new S3Client({
              ...common,
              ...(target.region ? { region: target.region } : {}),
              ...(target.credentials ? { credentials: target.credentials } : {}),
              ...(target.profile ? { profile: target.profile } : {}),
            });
      const store = createAwsS3Artifacts({
        client,
        clock: io.clock,
        ...(io.signal ? { signal: io.signal } : {}),
        ...(io.random ? { random: io.random } : {}),
        ...(controlPlane.onRetry ? { onRetry: controlPlane.onRetry } : {}),
      });
      return { store, destroy: () => client.destroy() };
    })();
    return s3.then((a) => a.store);
  };
  const shadows = createAwsShadowClient({ client: makeDataClient, ...(io.signal ? { signal: io.signal } : {}) });
  const provisioner = createProvisioner({
    registry,
    shadows,
    target: {
      kind: target.kind,
      caPem: target.kind === 'local' ? target.caPem : AMAZON_ROOT_CA_1_PEM,
      ...(target.kind === 'local' && target.mqtt ? { mqtt: target.mqtt } : {}),
    },
    files: { readBundle, writeBundleFile, removeBundle },
    clock: io.clock,
    log,
    hints,
  });
  return {
    target,
    registry,
    shadows,
    jobs,
    templates,
    artifacts: makeArtifacts,
    provisioner,
    errorContext:
      target.kind === 'local' ? { target: 'local', dataDir: target.dataDir, hints } : { target: 'aws', hints },
    close() {
      iot.destroy();
      void dataClient?.then((c) => c.destroy()).catch(() => undefined);
      void s3?.then((a) => a.destroy()).catch(() => undefined);
    },
  };
}
