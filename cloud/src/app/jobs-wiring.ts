import { jobsTopicFilters } from '@pifleet/protocol';
import type { Broker, BusMessage } from '../broker/index.js';
import { CloudError } from '../errors.js';
import type { RouteGroup } from '../http/server.js';
import { jobsDataPlaneRoutes } from '../jobs/data-plane-routes.js';
import { type JobsDeviceApi, JobsDeviceError, type JobsNotifications } from '../jobs/device-api.js';
import { createJobsMqtt, type JobsMqtt } from '../jobs/mqtt.js';
import { type Logger, silentLogger } from '../logger.js';
import { RegistryError } from '../registry/errors.js';

/**
 * The device side of the local core's jobs service: an in-process broker subscription that feeds
 * `$aws/things/{thing}/jobs/…` requests to the MQTT adapter (answers and notifications go back
 * through the broker, so every delivery is still checked against the receiver's iot:Receive, as
 * the shadow wiring does), and the HTTP jobs data-plane route group (SigV4 service
 * `iot-jobs-data`). The service itself is given: the core creates, starts and stops it.
 */

/** The jobs service as its device transports need it: the device API and a notifications sink. */
export interface DeviceJobsService extends JobsDeviceApi {
  setNotifications(sink: JobsNotifications | undefined): void;
}

export interface LocalJobsTransportsDeps {
  readonly broker: Broker;
  readonly service: DeviceJobsService;
  /**
   * Whether a thing is registered. A request whose thing is not is refused with ResourceNotFound
   * on both transports ("The JobExecution specified by the request topic does not exist"): a
   * device whose policy lets it name any thing learns nothing of names that are not things.
   */
  readonly thingExists: (thingName: string) => boolean;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  readonly logger?: Logger;
}

export interface LocalJobsTransports {
  /** Subscribes to the jobs topics and sets the service's notifications sink. */
  start(): Promise<void>;
  /** Unsubscribes, clears the sink, and waits for the answers in flight. */
  stop(): Promise<void>;
  /** The `iot-jobs-data` route group; answers 503 ServiceUnavailableException until started. */
  readonly routes: RouteGroup;
}

/**
 * The device API limited to registered things: the four operations refuse any other thing name
 * before the service sees it.
 */
export function registeredThingsOnly(api: JobsDeviceApi, thingExists: (thingName: string) => boolean): JobsDeviceApi {
  const check = (thingName: string) => {
    if (!thingExists(thingName)) throw new JobsDeviceError('ResourceNotFound', `Thing ${thingName} does not exist.`);
  };
  return {
    async getPending(thingName) {
      check(thingName);
      return api.getPending(thingName);
    },
    async startNext(thingName, request) {
      check(thingName);
      return api.startNext(thingName, request);
    },
    async describe(thingName, jobId, request) {
      check(thingName);
      return api.describe(thingName, jobId, request);
    },
    async update(thingName, jobId, request) {
      check(thingName);
      return api.update(thingName, jobId, request);
    },
  };
}

/** `thingExists` over the registry: DescribeThing's ResourceNotFoundException is false, any other failure is thrown. */
export function registeredIn(registry: { describeThing(thingName: string): unknown }): (thingName: string) => boolean {
  return (thingName) => {
    try {
      registry.describeThing(thingName);
      return true;
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'ResourceNotFoundException') return false;
      throw err;
    }
  };
}

export function createLocalJobsTransports(deps: LocalJobsTransportsDeps): LocalJobsTransports {
  const log = (deps.logger ?? silentLogger()).child({ component: 'jobs-wiring' });
  const api = registeredThingsOnly(deps.service, deps.thingExists);
  let mqtt: JobsMqtt | undefined;
  let unsubscribe: (() => Promise<void>) | undefined;

  function onMessage(message: BusMessage): void {
    // Not awaited: the bus would otherwise serialize every thing's requests behind each other.
    // The adapter runs one thing's requests in order and tracks them for stop().
    void mqtt?.handle(message);
  }

  return {
    routes: jobsDataPlaneRoutes({ api: () => (mqtt === undefined ? undefined : api) }),

    async start() {
      if (mqtt !== undefined)
        throw new CloudError('JOBS_TRANSPORTS_ALREADY_STARTED', 'the jobs transports are started');
      const { broker } = deps;
      const created = createJobsMqtt({
        api,
        // QoS 1: a device with a persistent session that is offline when a job is queued finds
        // the notification waiting when it reconnects.
        publish: (topic, payload) => broker.bus.publish(topic, payload, { qos: 1 }),
        now: deps.now,
        logger: deps.logger ?? silentLogger(),
      });
      unsubscribe = await broker.bus.subscribe(jobsTopicFilters.all, onMessage);
      mqtt = created;
      deps.service.setNotifications(created.notifications);
      log.info('jobs device transports started');
    },

    async stop() {
      const running = mqtt;
      const stopUnsubscribe = unsubscribe;
      unsubscribe = undefined;
      deps.service.setNotifications(undefined);
      try {
        await stopUnsubscribe?.();
      } catch (err) {
        log.warn({ err }, 'jobs subscription not removed');
      }
      mqtt = undefined;
      await running?.idle();
    },
  };
}
