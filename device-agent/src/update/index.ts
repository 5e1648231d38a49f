export { DownloadError, downloadRelease } from './download.js';
export { type GuardDeps, type GuardResult, runBootGuard } from './guard.js';
export { AGENT_LAUNCHER, nodeFs, type UpdateFs, type UpdateLayout, updateLayout } from './layout.js';
export { readUpdateState, type UpdatePhase, type UpdateReason, type UpdateState } from './state.js';
export {
  checkReleaseTarball,
  DEFAULT_UNPACK_LIMITS,
  ReleaseTarballError,
  type UnpackLimits,
  unpackReleaseTarball,
} from './unpack.js';
export {
  createUpdater,
  type FinalUpdaterResult,
  resultOf,
  UPDATE_STEP_POINTS,
  type UpdateJob,
  type Updater,
  type UpdaterDeps,
  type UpdaterResult,
  type UpdaterResume,
} from './updater.js';
