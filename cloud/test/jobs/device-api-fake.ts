import {
  type DescribeRequest,
  type DeviceJobExecution,
  type JobExecutionSummary,
  type JobsDeviceApi,
  JobsDeviceError,
  type StartNextRequest,
  type UpdateRequest,
} from '../../src/jobs/device-api.js';

/**
 * A small in-memory implementation of the jobs service's device API for the transport adapters'
 * unit tests: executions per thing with versions, the next pending one, expectedVersion, terminal
 * states. It records every request as the adapter handed it, so a test can see what a payload
 * became. Job semantics are only as deep as the adapters need; the service has its own tests.
 */

export type FakeCall =
  | { readonly op: 'getPending'; readonly thingName: string }
  | { readonly op: 'startNext'; readonly thingName: string; readonly request: StartNextRequest }
  | { readonly op: 'describe'; readonly thingName: string; readonly jobId: string; readonly request: DescribeRequest }
  | { readonly op: 'update'; readonly thingName: string; readonly jobId: string; readonly request: UpdateRequest };

export interface FakeDeviceApi extends JobsDeviceApi {
  readonly calls: FakeCall[];
  /** Queues an execution of `jobId` for `thingName` (ms times from `at`). */
  queue(thingName: string, jobId: string, document: string, at: number): DeviceJobExecution;
  /** The next call throws this (once). */
  failNext(err: unknown): void;
  /** Holds every call until the returned function is called. */
  hold(): () => void;
}

const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'REJECTED', 'TIMED_OUT', 'CANCELED', 'REMOVED']);

export function fakeDeviceApi(now: () => number): FakeDeviceApi {
  const executions = new Map<string, DeviceJobExecution[]>();
  const calls: FakeCall[] = [];
  let failure: { err: unknown } | undefined;
  let gate: Promise<void> | undefined;

  const of = (thingName: string) => executions.get(thingName) ?? [];
  const pending = (thingName: string) => of(thingName).filter((e) => !TERMINAL.has(e.status));
  const summary = (e: DeviceJobExecution): JobExecutionSummary => ({
    jobId: e.jobId,
    queuedAt: e.queuedAt,
    ...(e.startedAt === undefined ? {} : { startedAt: e.startedAt }),
    lastUpdatedAt: e.lastUpdatedAt,
    versionNumber: e.versionNumber,
    executionNumber: e.executionNumber,
  });
  const next = (thingName: string) =>
    pending(thingName).find((e) => e.status === 'IN_PROGRESS') ?? pending(thingName)[0];
  const replace = (e: DeviceJobExecution) => {
    executions.set(
      e.thingName,
      of(e.thingName).map((x) => (x.jobId === e.jobId ? e : x)),
    );
    return e;
  };
  const stateOf = (e: DeviceJobExecution) => ({
    status: e.status,
    ...(e.statusDetails === undefined ? {} : { statusDetails: e.statusDetails }),
    versionNumber: e.versionNumber,
  });
  const withoutDocument = ({ jobDocument: _, ...rest }: DeviceJobExecution): DeviceJobExecution => rest;

  async function enter(call: FakeCall): Promise<void> {
    calls.push(call);
    if (gate !== undefined) await gate;
    if (failure !== undefined) {
      const { err } = failure;
      failure = undefined;
      throw err;
    }
  }

  return {
    calls,
    queue(thingName, jobId, document, at) {
      const e: DeviceJobExecution = {
        jobId,
        thingName,
        status: 'QUEUED',
        queuedAt: at,
        lastUpdatedAt: at,
        versionNumber: 1,
        executionNumber: 1,
        jobDocument: document,
      };
      executions.set(thingName, [...of(thingName), e]);
      return e;
    },
    failNext(err) {
      failure = { err };
    },
    hold() {
      let release!: () => void;
      gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      return () => {
        gate = undefined;
        release();
      };
    },

    async getPending(thingName) {
      await enter({ op: 'getPending', thingName });
      return {
        inProgressJobs: pending(thingName)
          .filter((e) => e.status === 'IN_PROGRESS')
          .map(summary),
        queuedJobs: pending(thingName)
          .filter((e) => e.status === 'QUEUED')
          .map(summary),
      };
    },

    async startNext(thingName, request) {
      await enter({ op: 'startNext', thingName, request });
      const e = next(thingName);
      if (e === undefined) return undefined;
      if (e.status === 'IN_PROGRESS') return e;
      const at = now();
      return replace({
        ...e,
        status: 'IN_PROGRESS',
        startedAt: at,
        lastUpdatedAt: at,
        versionNumber: e.versionNumber + 1,
        ...(request.statusDetails === undefined ? {} : { statusDetails: request.statusDetails }),
        ...(request.stepTimeoutInMinutes === undefined
          ? {}
          : { approximateSecondsBeforeTimedOut: request.stepTimeoutInMinutes * 60 }),
      });
    },

    async describe(thingName, jobId, request) {
      await enter({ op: 'describe', thingName, jobId, request });
      const e = jobId === '$next' ? next(thingName) : of(thingName).find((x) => x.jobId === jobId);
      if (e === undefined) {
        if (jobId === '$next') return undefined;
        throw new JobsDeviceError('ResourceNotFound', `Job execution ${jobId} of ${thingName} not found.`);
      }
      return request.includeJobDocument === false ? withoutDocument(e) : e;
    },

    async update(thingName, jobId, request) {
      await enter({ op: 'update', thingName, jobId, request });
      const e = of(thingName).find((x) => x.jobId === jobId);
      if (e === undefined) {
        throw new JobsDeviceError('ResourceNotFound', `Job execution ${jobId} of ${thingName} not found.`);
      }
      if (request.expectedVersion !== undefined && request.expectedVersion !== e.versionNumber) {
        throw new JobsDeviceError('VersionMismatch', 'The expected version does not match.', stateOf(e));
      }
      if (TERMINAL.has(e.status)) {
        throw new JobsDeviceError('InvalidStateTransition', `The execution is ${e.status}.`, stateOf(e));
      }
      const at = now();
      const updated = replace({
        ...e,
        status: request.status,
        lastUpdatedAt: at,
        versionNumber: e.versionNumber + 1,
        ...(e.startedAt === undefined && request.status === 'IN_PROGRESS' ? { startedAt: at } : {}),
        ...(request.statusDetails === undefined ? {} : { statusDetails: request.statusDetails }),
      });
      return {
        ...(request.includeJobExecutionState ? { executionState: stateOf(updated) } : {}),
        ...(request.includeJobDocument && updated.jobDocument !== undefined
          ? { jobDocument: updated.jobDocument }
          : {}),
      };
    },
  };
}
