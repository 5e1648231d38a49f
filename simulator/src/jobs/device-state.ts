import type { AgentRuntimeDeps } from '@pifleet/device-agent';

/** The runner's execution store port, as the runtime takes it (`device-agent/src/jobs/state.ts`). */
export type JobStateStore = NonNullable<NonNullable<AgentRuntimeDeps['jobs']>['store']>;
type PersistedJob = NonNullable<ReturnType<JobStateStore['load']>>;

/**
 * A simulated device's `job-execution.json`: kept by the device, so it outlives each agent
 * process, and seen by each process through its own view. A process that was stopped or lost
 * power writes nothing more (its view goes inert), as a killed process cannot write a file:
 * anything it would still do after its end cannot reach the next process's state.
 */
export interface DeviceJobState {
  /** A view for a new agent process; the previous one goes inert. */
  forProcess(): JobStateStore;
  /** The persisted execution (for the report). */
  peek(): PersistedJob | undefined;
}

export function createDeviceJobState(): DeviceJobState {
  let job: PersistedJob | undefined;
  let generation = 0;
  return {
    forProcess() {
      generation += 1;
      const mine = generation;
      const alive = () => mine === generation;
      return {
        load: () => (alive() ? job : undefined),
        save(next) {
          if (alive()) job = structuredClone(next);
        },
        clear() {
          if (alive()) job = undefined;
        },
      };
    },
    peek: () => job,
  };
}
