/**
 * An in-memory IoT Jobs for one thing, with the service's execution semantics ("Job and job
 * execution states", "Jobs device MQTT API operations"): start-next returns the oldest IN_PROGRESS
 * execution or starts the oldest QUEUED one; every update bumps the version; an update with
 * another expectedVersion is refused with VersionMismatch and the current state; a terminal
 * execution refuses updates with InvalidStateTransition. Faults are injected per request.
 */
import { type DeviceSettableStatus, type JobExecutionStatus, TERMINAL_EXECUTION_STATUSES } from '@pifleet/protocol';
import {
  type ExecutionState,
  type JobExecution,
  JobsError,
  JobsRejectedError,
  type JobsService,
  type UpdateExecution,
} from '../../src/jobs/port.js';

interface Record_ {
  jobId: string;
  status: JobExecutionStatus;
  statusDetails: Record<string, string> | undefined;
  versionNumber: number;
  executionNumber: number;
  jobDocument: unknown;
}

export interface AcceptedUpdate {
  readonly jobId: string;
  readonly status: DeviceSettableStatus;
  readonly statusDetails: Record<string, string> | undefined;
}

export class MemoryJobs implements JobsService {
  readonly executions: Record_[] = [];
  /** Updates the service accepted, in order. */
  readonly accepted: AcceptedUpdate[] = [];
  /** Requests seen, by operation. */
  readonly calls: string[] = [];
  /** The next N updates are applied but their answers lost (the client sees a JobsError). */
  loseUpdateAnswers = 0;
  /** The next N requests of any kind fail without reaching the service. */
  failRequests = 0;
  closed = false;
  readonly #next = new Set<(e: JobExecution | undefined) => void>();

  /** Queues an execution; `notify: false` when the device could not receive the notification. */
  queue(jobId: string, jobDocument: unknown, opts: { notify?: boolean } = {}): void {
    this.executions.push({
      jobId,
      status: 'QUEUED',
      statusDetails: undefined,
      versionNumber: 1,
      executionNumber: 1,
      jobDocument,
    });
    if ((opts.notify ?? true) && this.#pendingNext()?.jobId === jobId) this.#notify();
  }

  get(jobId: string): Record_ {
    const e = this.executions.find((x) => x.jobId === jobId);
    if (!e) throw new Error(`no execution ${jobId}`);
    return e;
  }

  /** CancelJobExecution (by the operator): CANCELED, version bumped. */
  cancel(jobId: string): void {
    const e = this.get(jobId);
    e.status = 'CANCELED';
    e.versionNumber += 1;
    this.#notify();
  }

  /** Another writer (the console, a second client) updates the execution: its version moves on. */
  touch(jobId: string): void {
    this.get(jobId).versionNumber += 1;
  }

  #pendingNext(): Record_ | undefined {
    return (
      this.executions.find((e) => e.status === 'IN_PROGRESS') ?? this.executions.find((e) => e.status === 'QUEUED')
    );
  }

  #notify(): void {
    const n = this.#pendingNext();
    for (const l of this.#next) l(n ? this.#view(n) : undefined);
  }

  #view(e: Record_): JobExecution {
    return {
      jobId: e.jobId,
      status: e.status,
      versionNumber: e.versionNumber,
      executionNumber: e.executionNumber,
      ...(e.statusDetails ? { statusDetails: { ...e.statusDetails } } : {}),
      jobDocument: structuredClone(e.jobDocument),
    };
  }

  #state(e: Record_): ExecutionState {
    return {
      status: e.status,
      versionNumber: e.versionNumber,
      ...(e.statusDetails ? { statusDetails: { ...e.statusDetails } } : {}),
    };
  }

  #gate(operation: string): void {
    this.calls.push(operation);
    if (this.closed) throw new JobsError('JOBS_CLOSED', 'closed');
    if (this.failRequests > 0) {
      this.failRequests -= 1;
      throw new JobsError('JOBS_REQUEST_FAILED', `jobs ${operation} lost with the connection`);
    }
  }

  async startNext(): Promise<JobExecution | undefined> {
    this.#gate('start-next');
    const n = this.#pendingNext();
    if (!n) return undefined;
    if (n.status === 'QUEUED') {
      n.status = 'IN_PROGRESS';
      n.versionNumber += 1;
    }
    return this.#view(n);
  }

  async describe(jobId: string): Promise<JobExecution | undefined> {
    this.#gate('describe');
    const e = this.executions.find((x) => x.jobId === jobId);
    return e ? this.#view(e) : undefined;
  }

  async update(jobId: string, request: UpdateExecution): Promise<ExecutionState | undefined> {
    this.#gate('update');
    const e = this.executions.find((x) => x.jobId === jobId);
    if (!e) throw new JobsRejectedError('update', { code: 'ResourceNotFound' });
    if (TERMINAL_EXECUTION_STATUSES.has(e.status)) {
      throw new JobsRejectedError('update', { code: 'InvalidStateTransition', executionState: this.#state(e) });
    }
    if (request.expectedVersion !== undefined && request.expectedVersion !== e.versionNumber) {
      throw new JobsRejectedError('update', { code: 'VersionMismatch', executionState: this.#state(e) });
    }
    e.status = request.status;
    if (request.statusDetails) e.statusDetails = { ...request.statusDetails };
    e.versionNumber += 1;
    this.accepted.push({ jobId, status: request.status, statusDetails: e.statusDetails });
    if (TERMINAL_EXECUTION_STATUSES.has(e.status)) this.#notify();
    if (this.loseUpdateAnswers > 0) {
      this.loseUpdateAnswers -= 1;
      throw new JobsError('JOBS_REQUEST_FAILED', 'jobs update answer lost with the connection');
    }
    return this.#state(e);
  }

  onNextChanged(listener: (e: JobExecution | undefined) => void): () => void {
    this.#next.add(listener);
    return () => this.#next.delete(listener);
  }

  readonly #restored = new Set<() => void>();
  onStreamRestored(listener: () => void): () => void {
    this.#restored.add(listener);
    return () => this.#restored.delete(listener);
  }
  /** The notify-next subscription was granted late: notifications sent before it were missed. */
  restoreStream(): void {
    for (const l of this.#restored) l();
  }

  close(): void {
    this.closed = true;
    this.#next.clear();
  }

  /** Terminal updates accepted for a job (a correct runner reports exactly one). */
  terminal(jobId: string): AcceptedUpdate[] {
    return this.accepted.filter((u) => u.jobId === jobId && u.status !== 'IN_PROGRESS');
  }
}

/** A connection the test connects and drops. */
export class MemoryConnection {
  isConnected = true;
  readonly #listeners = new Set<() => void>();
  on(_event: 'connected', listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  connect(): void {
    this.isConnected = true;
    for (const l of [...this.#listeners]) l();
  }
  drop(): void {
    this.isConnected = false;
  }
}
