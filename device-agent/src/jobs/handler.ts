import type { AgentUpdateDocument, ConfigDocument, JobOperation, RebootDocument } from '@pifleet/protocol';
import type { Logger } from '../logger.js';

/** What a handler is given for one execution. */
export interface JobContext<D> {
  readonly jobId: string;
  readonly document: D;
  /**
   * The step an earlier run of this execution persisted (the agent crashed, was restarted or the
   * device rebooted), or undefined on the first run. A handler resumes from it and never redoes a
   * step whose effect it cannot repeat safely.
   */
  readonly resumedStep: string | undefined;
  /** What the handler persisted with that step. */
  readonly data: Readonly<Record<string, string>>;
  /**
   * Persists the step (and its data) before anything else, then reports it as the execution's
   * IN_PROGRESS statusDetails (best effort: a failed report is retried by the next one).
   */
  progress(step: string, options?: ProgressOptions): Promise<void>;
  readonly log: Logger;
}

export interface ProgressOptions {
  readonly detail?: string;
  readonly version?: string;
  readonly data?: Readonly<Record<string, string>>;
}

/**
 * How a handler ends: a terminal status with the step it ended on and what to say, or `PENDING`
 * when the work goes on outside this process (the device reboots, systemd restarts a new agent):
 * the execution stays persisted and the next run resumes it.
 */
export type JobOutcome =
  | {
      readonly status: 'SUCCEEDED' | 'FAILED' | 'REJECTED';
      readonly step: string;
      readonly detail?: string;
      readonly version?: string;
      readonly changed?: string;
      readonly rejected?: string;
    }
  | { readonly status: 'PENDING'; readonly step: string };

export interface JobHandler<D> {
  run(ctx: JobContext<D>): Promise<JobOutcome>;
}

/** One handler per job operation. */
export interface JobHandlers {
  readonly 'pifleet.agent-update': JobHandler<AgentUpdateDocument>;
  readonly 'pifleet.config': JobHandler<ConfigDocument>;
  readonly 'pifleet.reboot': JobHandler<RebootDocument>;
}

export type HandlerFor<K extends JobOperation> = JobHandlers[K];
