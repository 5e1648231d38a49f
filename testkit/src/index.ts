/**
 * @pifleet/testkit: what the suites of every package (and the benchmarks) share — the local IoT
 * Core in-process with real AWS SDK clients, provisioned devices, shadows through the data plane,
 * launched bins, a network that can be cut, and waiting on conditions.
 *
 * The generic parts live lower, where every layer can reach them, and are re-exported here:
 * `until` in @pifleet/protocol (device-agent's behaviour suites poll with it too), `launchBin`
 * and the in-process core in cloud's testing entry (cloud's own suites may not import this kit,
 * which depends on cloud).
 */
export {
  type BinExit,
  CORE_BIN,
  type InProcessCore,
  killLaunched,
  type LaunchedBin,
  type LaunchOptions,
  launchBin,
  launchCoreProcess,
  localProfileCredentials,
  type ProvisionedThing,
  provisionThing,
  type RunningCoreProcess,
  removeDir,
  sdkClients,
  tempDir,
} from '@pifleet/cloud';
export { type UntilOptions, UntilTimeoutError, until } from '@pifleet/protocol';
export { portsOf, type RunningCore, type StartCoreOptions, startCore, storedReadings, waitForStored } from './core.js';
export { type DeviceFiles, provisionDevice } from './devices.js';
export { drive, driveUntil, type SteppedClock } from './drive.js';
export { BINS, type JsonLog, jsonLog, type LogLine, launchSimAgent, REPO, type SimAgent } from './processes.js';
export { type NetworkCut, startRelay } from './relay.js';
export { desire, getShadow, part, type ShadowDoc, waitForShadow } from './shadow.js';
export { TelemetryLog } from './telemetry-log.js';
