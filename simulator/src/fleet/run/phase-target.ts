import type { ApiReadback } from '../api-readback.js';
import type { CommandApiTarget } from '../command-load.js';
import type { FleetFault } from '../options.js';
import { type CoreThrottles, readCoreQuotas } from '../quotas-readback.js';
import type { PhaseResult } from '../result.js';
import type { StoreReadback } from '../store-readback.js';
import type { BareBrokerTarget, LocalTarget } from '../target.js';
import type { RolloutTarget } from './rollout.js';

/** What one phase runs against: where devices connect, where commands go, how stored readings are read back. */
export interface PhaseTarget {
  readonly name: PhaseResult['name'];
  readonly endpoint: string;
  readonly port: number;
  readonly caFile: string;
  /** Devices keep a shadow (not against the bare broker, which has no shadow service). */
  readonly shadow: boolean;
  /** The in-process core: the restart and drop-connections faults need it. */
  readonly local?: LocalTarget;
  readonly bare?: BareBrokerTarget;
  readonly command?: CommandApiTarget;
  /** Reads back what the SQLite telemetry store holds for the run, with every reading's latency for `latencyThings` (local/external core). */
  readonly readStore?: (latencyThings: readonly string[]) => StoreReadback | undefined;
  /** Counts the stored readings of these things through the store's own interface. */
  readonly countStored?: (things: readonly string[]) => Promise<number>;
  /** Reads back through the telemetry query API (AWS: API Gateway → DynamoDB). */
  readonly readBackApi?: () => Promise<ApiReadback>;
  readonly faults: readonly FleetFault[];
  /** The core's quota breaches by quota (local: in process; external: `GET /quotas`); absent: not available. */
  readonly readThrottles?: () => Promise<CoreThrottles>;
  /** `--job`: the job rolled out after the ramp (the devices run jobs with a simulated updater). */
  readonly rollout?: RolloutTarget;
}

type ReadStore = NonNullable<PhaseTarget['readStore']>;

/** The in-process local IoT Core: the faults, the command API and the store's own count. */
export function localCoreTarget(local: LocalTarget, readStore: ReadStore, faults: readonly FleetFault[]): PhaseTarget {
  const info = local.info;
  return {
    name: 'local-core',
    endpoint: info.mqtt.host,
    port: info.mqtt.port,
    caFile: info.caFile,
    shadow: true,
    local,
    command: { baseUrl: `${info.http}/api`, region: info.region, credentials: local.services.credentials },
    readStore,
    countStored: async (things) => {
      let n = 0;
      // `local.services` again at each call: a restart fault replaces the core's services.
      for (const t of things) n += await local.services.telemetry.countReadings(t);
      return n;
    },
    readThrottles: async () => local.throttles(),
    faults,
  };
}

/** The bare-broker baseline: same TLS, nothing behind it; no faults. */
export function bareBrokerTarget(bare: BareBrokerTarget): PhaseTarget {
  return {
    name: 'bare-broker',
    endpoint: bare.host,
    port: bare.port,
    caFile: bare.caFile,
    shadow: false,
    bare,
    faults: [],
  };
}

/** A local IoT Core running in another process: its MQTT port, its store file, its command API when its credentials are readable. */
export function externalCoreTarget(opts: {
  readonly host: string;
  readonly port: number;
  readonly caFile: string;
  readonly command: CommandApiTarget | undefined;
  readonly readStore: ReadStore;
  readonly faults: readonly FleetFault[];
  /** The core's HTTP base, where `GET /quotas` is (read with the command API's key pair). */
  readonly http?: string;
}): PhaseTarget {
  const { command, http } = opts;
  return {
    name: 'external-core',
    endpoint: opts.host,
    port: opts.port,
    caFile: opts.caFile,
    shadow: true,
    readStore: opts.readStore,
    ...(opts.command ? { command: opts.command } : {}),
    ...(command && http ? { readThrottles: () => readCoreQuotas(http, command) } : {}),
    faults: opts.faults,
  };
}
