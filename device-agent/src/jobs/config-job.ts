import type { ConfigDocument, DesiredState, RejectedDesired } from '@pifleet/protocol';
import type { JobContext, JobHandler, JobOutcome } from './handler.js';

/** What a config job changes: the agent's settings, through the same path as the shadow's desired state. */
export interface SettingsTarget {
  /**
   * Checks settings by the shadow's rules (`splitDesired` and the reconciler, which knows this
   * device's sensors and outputs) and, when every key is valid, applies them. Nothing is applied
   * when any key is invalid.
   */
  applySettings(settings: unknown): Promise<SettingsResult>;
}

export interface SettingsResult {
  /** Every invalid key, with its reason (nothing applied when there is any). */
  readonly rejected: readonly RejectedDesired[];
  /** Desired paths whose value changed. */
  readonly changed: readonly string[];
  /** Changes that were valid but could not be applied (an output that would not switch). */
  readonly failed: readonly RejectedDesired[];
  /** The valid settings, as a desired state. */
  readonly accepted: DesiredState;
}

/** Where applied settings are kept so that a restart keeps them (the config overlay in the state directory). */
export interface SettingsOverlay {
  /** Merges settings into the overlay, durably. */
  merge(settings: DesiredState): void;
}

const list = (paths: readonly string[]) => (paths.length > 0 ? paths.join(', ') : 'nothing (already in effect)');
const reasons = (rejected: readonly RejectedDesired[]) => rejected.map((r) => `${r.path}: ${r.reason}`).join('; ');

/**
 * `pifleet.config`: the settings are checked by the shadow's rules; any invalid key REJECTS the
 * job with every invalid key and its reason, and nothing is applied (a job is one change, not a
 * best effort). Valid settings are applied, kept in the overlay (the config directory is read-only
 * under systemd), and the job SUCCEEDS naming what changed. Applying is idempotent, so a job
 * resumed after a crash simply applies again (what it then reports as changed is what was not yet
 * in effect).
 */
export function createConfigHandler(deps: {
  readonly target: SettingsTarget;
  readonly overlay: SettingsOverlay;
}): JobHandler<ConfigDocument> {
  return {
    async run(ctx: JobContext<ConfigDocument>): Promise<JobOutcome> {
      const result = await deps.target.applySettings(ctx.document.config);
      if (result.rejected.length > 0) {
        return {
          status: 'REJECTED',
          step: 'validate',
          detail: `invalid settings, nothing applied: ${reasons(result.rejected)}`,
          rejected: result.rejected.map((r) => r.path).join(', '),
        };
      }
      const changed = list(result.changed);
      if (result.failed.length > 0) {
        return {
          status: 'FAILED',
          step: 'apply',
          detail: `could not apply: ${reasons(result.failed)}`,
          changed,
        };
      }
      try {
        deps.overlay.merge(result.accepted);
      } catch (err) {
        return {
          status: 'FAILED',
          step: 'persist',
          detail: `applied but not kept for the next start: ${(err as Error).message}`,
          changed,
        };
      }
      return { status: 'SUCCEEDED', step: 'applied', detail: 'settings applied and kept', changed };
    },
  };
}
