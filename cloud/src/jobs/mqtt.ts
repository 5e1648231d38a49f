import {
  isJobsRequest,
  type JobsRequestTopic,
  type JsonObject,
  jobsInvalidTopicRejection,
  jobsResponseTopic,
  jobsTopics,
  parseJobsTopic,
} from '@pifleet/protocol';
import { type Logger, silentLogger } from '../logger.js';
import {
  type DeviceJobExecution,
  type JobExecutionSummary,
  type JobsDeviceApi,
  JobsDeviceError,
  type JobsNotifications,
} from './device-api.js';
import {
  describeRequest,
  documentBody,
  epochSeconds,
  executionBody,
  internalError,
  parseRequestPayload,
  startNextRequest,
  stateBody,
  summaryBody,
  updateRequest,
} from './device-requests.js';

/**
 * The jobs service over MQTT ("Jobs device MQTT API operations"): a request published to
 * `$aws/things/{thing}/jobs/get | start-next | {jobId}/get | {jobId}/update` is answered on the
 * request topic + `/accepted` or `/rejected`, and the service's notifications go out on
 * `…/jobs/notify` and `…/jobs/notify-next`. An adapter: topics and payloads are translated here,
 * job semantics are the service's ({@link JobsDeviceApi}).
 *
 * Everything is published through `publish` (the broker bus), so each delivery is checked against
 * the receiver's iot:Receive, as the shadow service's answers are. MQTT 5 requests are answered on
 * the documented topics only: AWS documents no use of a request's response topic or correlation
 * data by IoT Jobs (the device SDK correlates by `clientToken`), so neither is read.
 */

export interface JobsMqttDeps {
  readonly api: JobsDeviceApi;
  /** Publishes an answer or a notification (QoS 1) into the broker. */
  readonly publish: (topic: string, payload: string) => Promise<void>;
  /** Milliseconds since the epoch (the answers' `timestamp`). */
  readonly now: () => number;
  readonly logger?: Logger;
  /**
   * Requests of one thing queued or running at once; past it, `RequestThrottled`. AWS documents no
   * such bound for jobs; the local core keeps a flooding device from queueing without end, as
   * its shadow service does (10, IoT's shadow in-flight quota).
   */
  readonly maxQueuedPerThing?: number;
}

export const DEFAULT_JOBS_QUEUED_PER_THING = 10;

/** One PUBLISH the adapter is handed (from the broker bus). */
export interface JobsMqttMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  /** A client's last will: not a request (see handle). */
  readonly lastWill?: boolean;
  readonly clientId?: string | undefined;
}

export interface JobsMqtt {
  /**
   * Answers a request on a jobs topic; ignores answers, notifications, last wills and every other
   * topic. Resolves once the answer is published (never rejects).
   */
  handle(message: JobsMqttMessage): Promise<void>;
  /** Publishes the service's notifications on `notify` and `notify-next`. */
  readonly notifications: JobsNotifications;
  /** Resolves once every request and notification handed in so far is published. */
  idle(): Promise<void>;
}

interface Lane {
  queued: number;
  tail: Promise<void>;
}

export function createJobsMqtt(deps: JobsMqttDeps): JobsMqtt {
  const log = (deps.logger ?? silentLogger()).child({ component: 'jobs-mqtt' });
  const maxQueued = deps.maxQueuedPerThing ?? DEFAULT_JOBS_QUEUED_PER_THING;
  const lanes = new Map<string, Lane>();
  const pending = new Set<Promise<void>>();

  function track(task: Promise<void>): Promise<void> {
    const tracked = task.finally(() => pending.delete(tracked));
    pending.add(tracked);
    return tracked;
  }

  async function send(topic: string, body: JsonObject): Promise<void> {
    try {
      await deps.publish(topic, JSON.stringify(body));
    } catch (err) {
      // The broker is stopping or refused the message: the device times out and asks again.
      log.warn({ err, topic }, 'jobs message not published');
    }
  }

  function rejection(error: JobsDeviceError, clientToken: string | undefined): JsonObject {
    return {
      code: error.code,
      message: error.message,
      ...(clientToken === undefined ? {} : { clientToken }),
      timestamp: epochSeconds(deps.now()),
      // "included only when the code field has the value InvalidStateTransition or VersionMismatch"
      ...(error.executionState !== undefined &&
      (error.code === 'InvalidStateTransition' || error.code === 'VersionMismatch')
        ? { executionState: stateBody(error.executionState) }
        : {}),
    };
  }

  function accepted(body: JsonObject, clientToken: string | undefined): JsonObject {
    return { ...body, timestamp: epochSeconds(deps.now()), ...(clientToken === undefined ? {} : { clientToken }) };
  }

  /** The accepted body of one request (without timestamp and clientToken). */
  async function perform(request: JobsRequestTopic, doc: JsonObject): Promise<JsonObject> {
    const { api } = deps;
    switch (request.kind) {
      case 'get-pending': {
        const lists = await api.getPending(request.thingName);
        return { inProgressJobs: lists.inProgressJobs.map(summaryBody), queuedJobs: lists.queuedJobs.map(summaryBody) };
      }
      case 'start-next': {
        const execution = await api.startNext(request.thingName, startNextRequest(doc));
        // "If no job executions are pending, the response does not include the execution field."
        return execution === undefined ? {} : { execution: executionBody(execution, 'object') };
      }
      case 'describe': {
        const execution = await api.describe(request.thingName, request.jobId, describeRequest(doc));
        return execution === undefined ? {} : { execution: executionBody(execution, 'object') };
      }
      case 'update': {
        const result = await api.update(request.thingName, request.jobId, updateRequest(doc));
        const out: JsonObject = {};
        if (result.executionState !== undefined) out.executionState = stateBody(result.executionState);
        if (result.jobDocument !== undefined) out.jobDocument = documentBody(result.jobDocument, 'object');
        return out;
      }
    }
  }

  async function answer(request: JobsRequestTopic, payload: Uint8Array, clientId: string | undefined): Promise<void> {
    const parsed = parseRequestPayload(payload);
    const clientToken = parsed.clientToken;
    let body: JsonObject;
    let outcome: 'accepted' | 'rejected';
    if (!parsed.ok) {
      body = rejection(parsed.error, clientToken);
      outcome = 'rejected';
    } else {
      try {
        body = accepted(await perform(request, parsed.doc), clientToken);
        outcome = 'accepted';
      } catch (err) {
        let error: JobsDeviceError;
        if (err instanceof JobsDeviceError) error = err;
        else {
          log.error({ err, thingName: request.thingName, kind: request.kind }, 'jobs request failed');
          error = internalError();
        }
        body = rejection(error, clientToken);
        outcome = 'rejected';
      }
    }
    if (outcome === 'rejected') {
      log.debug(
        { thingName: request.thingName, kind: request.kind, code: body.code, clientId },
        'jobs request rejected',
      );
    }
    await send(jobsResponseTopic(request, outcome), body);
  }

  /** Runs the thing's requests one after another, in the order they arrived; undefined past the bound. */
  function enqueue(thingName: string, task: () => Promise<void>): Promise<void> | undefined {
    let lane = lanes.get(thingName);
    if (lane === undefined) {
      lane = { queued: 0, tail: Promise.resolve() };
      lanes.set(thingName, lane);
    }
    if (lane.queued >= maxQueued) return undefined;
    const current = lane;
    current.queued++;
    const run = current.tail.then(task).finally(() => {
      current.queued--;
      if (current.queued === 0 && lanes.get(thingName) === current) lanes.delete(thingName);
    });
    current.tail = run;
    return run;
  }

  function handle(message: JobsMqttMessage): Promise<void> {
    const parsed = parseJobsTopic(message.topic);
    if (!isJobsRequest(parsed)) {
      if (parsed === undefined && !message.lastWill) return track(invalidTopic(message));
      return Promise.resolve();
    }
    // AWS does not say that IoT Jobs acts on a last will; the shadow service ignores them, and so
    // does this one: a will is the broker's message, not the device's request.
    if (message.lastWill) {
      log.debug({ topic: message.topic }, 'last-will message on a jobs topic ignored');
      return Promise.resolve();
    }
    const request: JobsRequestTopic = parsed;
    const run = enqueue(request.thingName, () => answer(request, message.payload, message.clientId));
    if (run === undefined) {
      log.debug({ thingName: request.thingName, clientId: message.clientId }, 'jobs requests queued over the bound');
      const token = parseRequestPayload(message.payload).clientToken;
      return track(
        send(
          jobsResponseTopic(request, 'rejected'),
          rejection(new JobsDeviceError('RequestThrottled', 'Too many requests for this thing.'), token),
        ),
      );
    }
    return track(run);
  }

  /** A request on a jobs-namespace topic that maps to no operation: InvalidTopic, if it has a rejection topic. */
  async function invalidTopic(message: JobsMqttMessage): Promise<void> {
    const topic = jobsInvalidTopicRejection(message.topic);
    if (topic === undefined) return;
    const token = parseRequestPayload(message.payload).clientToken;
    const error = new JobsDeviceError('InvalidTopic', 'The request topic does not map to any jobs operation.');
    await send(topic, rejection(error, token));
  }

  const notifications: JobsNotifications = {
    executionsChanged(thingName, jobs, at) {
      const lists: JsonObject = {};
      // Only the non-empty statuses are keys, IN_PROGRESS first ("Jobs notifications").
      for (const status of ['IN_PROGRESS', 'QUEUED'] as const) {
        const list: readonly JobExecutionSummary[] | undefined = jobs[status];
        if (list !== undefined && list.length > 0) lists[status] = list.map(summaryBody);
      }
      void track(send(jobsTopics(thingName).notify, { timestamp: epochSeconds(at), jobs: lists }));
    },
    nextChanged(thingName, execution: DeviceJobExecution | undefined, at) {
      // None left: `{"timestamp": …}` alone, as AWS's example of an emptied queue shows.
      const body: JsonObject = { timestamp: epochSeconds(at) };
      if (execution !== undefined) {
        // AWS's notify-next examples carry no thingName (the topic names the thing).
        const { thingName: _, ...rest } = executionBody(execution, 'object');
        body.execution = rest;
      }
      void track(send(jobsTopics(thingName).notifyNext, body));
    },
  };

  return {
    handle,
    notifications,
    async idle() {
      while (pending.size > 0) await Promise.all([...pending]);
    },
  };
}
