export { createJobsControl, type JobsControlTarget } from './app/jobs-control.js';
export { CLI_VERSION, type RunCliOptions, runCli } from './cli.js';
export { DEFAULT_LOCAL_DATA_DIR, resolveTarget, type Target } from './config/target.js';
export { fleetThingNames } from './core/args.js';
export { BUNDLE_FILES, buildAgentConfig, splitEndpoint } from './core/bundle.js';
export * from './errors.js';
export * from './logger.js';
export type { CreateJobInput, JobExecutionRecord, JobRecord, JobsControl } from './ports/jobs.js';
