import { isValidThingName } from './topics.js';

/**
 * The reserved topics of IoT Jobs for one thing, as the AWS IoT Developer Guide spells them
 * ("Reserved topics", Job topics; "Jobs device MQTT API operations"):
 *
 *   $aws/things/{thing}/jobs/get                      GetPendingJobExecutions
 *   $aws/things/{thing}/jobs/start-next               StartNextPendingJobExecution
 *   $aws/things/{thing}/jobs/{jobId}/get              DescribeJobExecution (`$next`: the next pending one)
 *   $aws/things/{thing}/jobs/{jobId}/update           UpdateJobExecution
 *   each request topic + `/accepted` or `/rejected`   the service's answers
 *   $aws/things/{thing}/jobs/notify                   JobExecutionsChanged
 *   $aws/things/{thing}/jobs/notify-next              NextJobExecutionChanged
 *
 * The four request topics are the only ones a device publishes; the rest are the service's.
 */

/** The jobId of DescribeJobExecution that names the thing's next pending execution. */
export const NEXT_JOB_ID = '$next';

/** The longest job id CreateJob accepts. */
export const MAX_JOB_ID_LENGTH = 64;

const JOB_ID_PATTERN = /^[a-zA-Z0-9_-]+$/;

/** Job ids: 1–64 characters of `[a-zA-Z0-9_-]` (AWS IoT CreateJob). `$next` is not a job id. */
export function isValidJobId(id: unknown): id is string {
  return typeof id === 'string' && id.length >= 1 && id.length <= MAX_JOB_ID_LENGTH && JOB_ID_PATTERN.test(id);
}

/** The four device requests of the jobs MQTT API, by the last level of their topic. */
export type JobsRequestKind = 'get-pending' | 'start-next' | 'describe' | 'update';
export type JobsResponseKind = 'accepted' | 'rejected';

function assertThing(thing: string): string {
  if (!isValidThingName(thing)) {
    throw new TypeError(`invalid thing name ${JSON.stringify(thing)}: use 1-128 characters of a-z A-Z 0-9 : _ -`);
  }
  return thing;
}

function assertJob(jobId: string, allowNext: boolean): string {
  if (isValidJobId(jobId) || (allowNext && jobId === NEXT_JOB_ID)) return jobId;
  throw new TypeError(`invalid job id ${JSON.stringify(jobId)}: use 1-64 characters of a-z A-Z 0-9 _ -`);
}

/** `$aws/things/{thing}/jobs`. */
export function jobsTopicPrefix(thing: string): string {
  return `$aws/things/${assertThing(thing)}/jobs`;
}

/** The request and answer topics of one execution of one thing (`jobId` may be `$next` for describe). */
function executionTopics(prefix: string, jobId: string) {
  const get = `${prefix}/${assertJob(jobId, true)}/get`;
  const update = `${prefix}/${jobId}/update`;
  return {
    get,
    getAccepted: `${get}/accepted`,
    getRejected: `${get}/rejected`,
    update,
    updateAccepted: `${update}/accepted`,
    updateRejected: `${update}/rejected`,
  } as const;
}

/** Every jobs topic of one thing, by name; `execution(jobId)` gives one job's. */
export function jobsTopics(thing: string) {
  const p = jobsTopicPrefix(thing);
  return {
    get: `${p}/get`,
    getAccepted: `${p}/get/accepted`,
    getRejected: `${p}/get/rejected`,
    startNext: `${p}/start-next`,
    startNextAccepted: `${p}/start-next/accepted`,
    startNextRejected: `${p}/start-next/rejected`,
    /**
     * One filter for both answers of a request, as the device SDK subscribes them: nothing else is
     * published under these levels. The execution ones cover every job of the thing (`{jobId}/get/…`,
     * `{jobId}/update/…`), so a device holds the same few subscriptions whatever jobs it runs.
     */
    startNextAnswers: `${p}/start-next/+`,
    executionGetAnswers: `${p}/+/get/+`,
    executionUpdateAnswers: `${p}/+/update/+`,
    notify: `${p}/notify`,
    notifyNext: `${p}/notify-next`,
    execution: (jobId: string) => executionTopics(p, jobId),
  } as const;
}

/** The topic of a request's answer. */
export function jobsResponseTopic(request: JobsRequestTopic, response: JobsResponseKind): string {
  const t = jobsTopics(request.thingName);
  switch (request.kind) {
    case 'get-pending':
      return response === 'accepted' ? t.getAccepted : t.getRejected;
    case 'start-next':
      return response === 'accepted' ? t.startNextAccepted : t.startNextRejected;
    case 'describe': {
      const e = t.execution(request.jobId);
      return response === 'accepted' ? e.getAccepted : e.getRejected;
    }
    case 'update': {
      // An update of `$next` is refused before its topic is parsed (parseJobsTopic), so this is a job id.
      const e = t.execution(request.jobId);
      return response === 'accepted' ? e.updateAccepted : e.updateRejected;
    }
  }
}

/** Topic filters over every thing's jobs topics (the cloud's subscriptions, not a device's). */
export const jobsTopicFilters = {
  /** Every jobs topic of every thing: requests, answers and notifications. */
  all: '$aws/things/+/jobs/#',
} as const;

/**
 * A jobs topic as an IoT policy resource: the thing is a policy variable
 * (`${iot:Connection.Thing.ThingName}`) or a wildcard, so it is not checked as a thing name; the
 * rest is a suffix of the thing's jobs prefix (`get`, `*\/update/*`, ...).
 */
export function jobsTopicResource(thingPattern: string, suffix: string): string {
  return `$aws/things/${thingPattern}/jobs/${suffix}`;
}

/** A request topic, parsed. */
export type JobsRequestTopic =
  | { readonly thingName: string; readonly kind: 'get-pending' | 'start-next' }
  | { readonly thingName: string; readonly kind: 'describe' | 'update'; readonly jobId: string };

export type ParsedJobsTopic =
  | (JobsRequestTopic & { readonly response: JobsResponseKind | undefined })
  | { readonly thingName: string; readonly kind: 'notify' | 'notify-next'; readonly response: undefined };

const RESPONSES: ReadonlySet<string> = new Set(['accepted', 'rejected']);

/** Whether a parsed jobs topic is one of the four requests (not an answer, not a notification). */
export function isJobsRequest(
  parsed: ParsedJobsTopic | undefined,
): parsed is JobsRequestTopic & { response: undefined } {
  return (
    parsed !== undefined && parsed.response === undefined && parsed.kind !== 'notify' && parsed.kind !== 'notify-next'
  );
}

/**
 * Parses a jobs topic: a request (`response` undefined), an answer to one, or a notification.
 * Undefined for anything else, including a jobs-namespace topic that maps to no operation (a job id
 * that is not one, an update of `$next`): see {@link isJobsNamespaceTopic} for those.
 */
export function parseJobsTopic(topic: string): ParsedJobsTopic | undefined {
  const parts = topic.split('/');
  if (parts.length < 5 || parts.length > 7 || parts[0] !== '$aws' || parts[1] !== 'things' || parts[3] !== 'jobs') {
    return undefined;
  }
  const thingName = parts[2];
  if (!isValidThingName(thingName)) return undefined;
  const rest = parts.slice(4);
  const last = rest[rest.length - 1] as string;
  const response = RESPONSES.has(last) ? (last as JobsResponseKind) : undefined;
  const op = response === undefined ? rest : rest.slice(0, -1);
  if (op.length === 1) {
    const [name] = op;
    if (name === 'get') return { thingName, kind: 'get-pending', response };
    if (name === 'start-next') return { thingName, kind: 'start-next', response };
    if (response === undefined && (name === 'notify' || name === 'notify-next')) {
      return { thingName, kind: name, response };
    }
    return undefined;
  }
  if (op.length !== 2) return undefined;
  const [jobId, verb] = op as [string, string];
  if (verb === 'get' && (isValidJobId(jobId) || jobId === NEXT_JOB_ID)) {
    return { thingName, kind: 'describe', jobId, response };
  }
  if (verb === 'update' && isValidJobId(jobId)) return { thingName, kind: 'update', jobId, response };
  return undefined;
}

/**
 * Whether a topic is under some thing's `$aws/things/{thing}/jobs/` (its thing name unchecked):
 * the namespace where IoT Jobs answers a request that maps to no operation with `InvalidTopic`.
 */
export function isJobsNamespaceTopic(topic: string): boolean {
  const parts = topic.split('/');
  return parts.length >= 5 && parts[0] === '$aws' && parts[1] === 'things' && parts[2] !== '' && parts[3] === 'jobs';
}

/**
 * Where IoT Jobs answers a request published to a jobs-namespace topic that maps to no operation
 * (an invalid job id, `$next/update`): the topic with `/rejected` appended, as for every request.
 * Undefined when the topic is not in the namespace, or is itself an answer or a notification.
 */
export function jobsInvalidTopicRejection(topic: string): string | undefined {
  if (!isJobsNamespaceTopic(topic)) return undefined;
  const last = topic.slice(topic.lastIndexOf('/') + 1);
  if (RESPONSES.has(last) || last === 'notify' || last === 'notify-next') return undefined;
  return `${topic}/rejected`;
}
