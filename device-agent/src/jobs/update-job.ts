import type { AgentUpdateDocument } from '@pifleet/protocol';
import type { JobContext, JobHandler, JobOutcome } from './handler.js';

/** How an updater step ended. `RESTARTING`: the new agent was switched in and systemd restarts the service. */
export type UpdaterResult =
  | { readonly status: 'SUCCEEDED' | 'FAILED' | 'REJECTED'; readonly step: string; readonly detail?: string }
  | { readonly status: 'RESTARTING'; readonly step: string };

/** What an updater knows at start about an update of an earlier run. */
export type UpdaterResume =
  /** The new agent runs and must prove healthy (connected, shadow synced, sensors read) before its deadline. */
  | { readonly state: 'awaiting-health'; readonly step: string }
  /** The update ended (rolled back, or confirmed) while no job report could be made. */
  | { readonly state: 'ended'; readonly result: Exclude<UpdaterResult, { status: 'RESTARTING' }> }
  /** The updater knows of no update in progress. */
  | { readonly state: 'none' };

/**
 * The on-device updater (`device-agent/src/update/`): download, verify (SHA-256, signature with the
 * configured keys), unpack side by side, switch the `current` link, restart; after the restart,
 * confirm health or roll back. The jobs side only delegates and reports.
 */
export interface AgentUpdater {
  install(
    job: { readonly jobId: string; readonly document: AgentUpdateDocument },
    progress: (step: string, detail?: string) => Promise<void>,
  ): Promise<UpdaterResult>;
  /** What to report for an update in progress after a restart. */
  onStart(jobId: string): Promise<UpdaterResume>;
  /** The new agent is healthy: makes the release permanent. */
  confirmHealthy(jobId: string): Promise<Exclude<UpdaterResult, { status: 'RESTARTING' }>>;
}

export interface UpdateHandlerDeps {
  /** Absent where the agent cannot update itself (a simulated fleet without an updater): jobs are REJECTED. */
  readonly updater?: AgentUpdater;
  /** `update.publicKeys` of the config: none means no release can be trusted. */
  readonly publicKeys: readonly string[];
  /** Resolves once the agent is connected, its shadow synced and its sensors read (the runtime detects it). */
  readonly healthy: () => Promise<void>;
  /**
   * Stops the agent gracefully and ends the process, so that systemd starts the agent the updater
   * switched to (`Restart=always`); absent where nothing restarts it (tests, simulated devices).
   */
  readonly restart?: (reason: string) => void;
}

/**
 * `pifleet.agent-update`: REJECTED when this agent has no updater or trusts no key; otherwise the
 * updater installs (reporting its steps) and the job waits for the restart; after it, once the
 * new agent is healthy, the updater confirms and the job SUCCEEDS, or, when the updater rolled back
 * meanwhile, FAILS with its reason.
 */
export function createUpdateHandler(deps: UpdateHandlerDeps): JobHandler<AgentUpdateDocument> {
  return {
    async run(ctx: JobContext<AgentUpdateDocument>): Promise<JobOutcome> {
      const version = ctx.document.version;
      const { updater } = deps;
      if (!updater) {
        return {
          status: 'REJECTED',
          step: 'validate',
          detail:
            'this agent cannot update itself: it is not installed for updates (no updater; the systemd unit with selfUpdate runs <stateDir>/current)',
          version,
        };
      }
      if (ctx.resumedStep !== undefined) {
        const resume = await updater.onStart(ctx.jobId);
        if (resume.state === 'ended') return { ...resume.result, version };
        if (resume.state === 'awaiting-health') {
          await ctx.progress(resume.step, { detail: 'waiting for the new agent to be healthy', version });
          await deps.healthy();
          return { ...(await updater.confirmHealthy(ctx.jobId)), version };
        }
        // The updater knows nothing of it: the install never got far enough to matter; start over.
      }
      if (deps.publicKeys.length === 0) {
        return {
          status: 'REJECTED',
          step: 'validate',
          detail: 'no release signing key is configured (update.publicKeys): no release can be verified',
          version,
        };
      }
      const result = await updater.install({ jobId: ctx.jobId, document: ctx.document }, (step, detail) =>
        ctx.progress(step, { ...(detail === undefined ? {} : { detail }), version }),
      );
      if (result.status === 'RESTARTING') {
        deps.restart?.(`agent update to ${version}`);
        return { status: 'PENDING', step: result.step };
      }
      return { ...result, version };
    },
  };
}
