/**
 * Process exit codes shared by every pifleet command (sysexits.h style).
 * The agent's systemd unit sets `RestartPreventExitStatus=78` so a bad config does not crash-loop.
 */
export const EXIT = {
  ok: 0,
  /** Unexpected failure (a bug, or an error with no better code). */
  unexpected: 1,
  /** Wrong command-line usage. */
  usage: 64,
  /** Input data is malformed (bad JSON, bad name, invalid document). */
  dataError: 65,
  /** A required service (broker, API, local IoT Core) is unavailable, or a port is already in use. */
  unavailable: 69,
  /**
   * Temporary failure, try again later: the resource is held by another process that may release it
   * (the local IoT Core's data directory is locked by another running core).
   */
  tempFail: 75,
  /** Missing or rejected credentials, or a permission problem. */
  noPermission: 77,
  /** Configuration is invalid. */
  config: 78,
  /** Interrupted by SIGINT. */
  interrupted: 130,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
