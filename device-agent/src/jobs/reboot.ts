import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { RebootDocument } from '@pifleet/protocol';
import { AgentError } from '../errors.js';
import type { JobContext, JobHandler, JobOutcome } from './handler.js';

/** Reboots the device. */
export interface RebootPort {
  /** Asks the system to reboot; resolves once asked (the process is stopped by the reboot), rejects when refused. */
  reboot(): Promise<void>;
  /** The kernel's id of this boot (`/proc/sys/kernel/random/boot_id`), or undefined where there is none. */
  bootId(): string | undefined;
}

/**
 * `systemctl reboot` as the agent's own unprivileged user: systemctl asks logind over D-Bus, and
 * polkit decides (action `org.freedesktop.login1.reboot`; the README's rule allows it for the
 * service user). No setuid program runs, so the unit's `NoNewPrivileges=yes` does not stand in
 * the way, and AF_UNIX (D-Bus) is among its `RestrictAddressFamilies`.
 */
export function createSystemReboot(
  options: { readonly command?: readonly string[]; readonly bootIdFile?: string } = {},
): RebootPort {
  const [file, ...args] = options.command ?? ['systemctl', 'reboot'];
  const bootIdFile = options.bootIdFile ?? '/proc/sys/kernel/random/boot_id';
  return {
    reboot: () =>
      new Promise((resolve, reject) => {
        execFile(file as string, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
          if (err) {
            const said = String(stderr).trim().split('\n')[0] ?? '';
            reject(
              new AgentError('REBOOT_REFUSED', `${[file, ...args].join(' ')} failed: ${said || err.message}`, {
                cause: err,
              }),
            );
          } else resolve();
        });
      }),
    bootId() {
      try {
        return readFileSync(bootIdFile, 'utf8').trim() || undefined;
      } catch {
        return undefined;
      }
    },
  };
}

export interface RebootHandlerDeps {
  /** `jobs.allowReboot` of the agent's config. */
  readonly allowReboot: boolean;
  readonly port: RebootPort;
}

const STEP_REBOOTING = 'rebooting';

/**
 * `pifleet.reboot`: REJECTED unless the config allows it; otherwise the step `rebooting` (with the
 * current boot id) is persisted and reported first, then the reboot is asked for, and the job
 * waits for the restart. Resumed after it: SUCCEEDED when the boot id changed (the device did
 * reboot), FAILED when it did not (the agent restarted without a reboot), so a job never loops.
 */
export function createRebootHandler(deps: RebootHandlerDeps): JobHandler<RebootDocument> {
  return {
    async run(ctx: JobContext<RebootDocument>): Promise<JobOutcome> {
      if (ctx.resumedStep === STEP_REBOOTING) {
        const before = ctx.data.bootId;
        const now = deps.port.bootId();
        if (before !== undefined && now !== undefined && before === now) {
          return {
            status: 'FAILED',
            step: STEP_REBOOTING,
            detail: 'the reboot was asked for but the device did not reboot (same boot id); the agent restarted',
          };
        }
        return { status: 'SUCCEEDED', step: 'rebooted', detail: 'the device rebooted and the agent is running again' };
      }
      if (!deps.allowReboot) {
        return {
          status: 'REJECTED',
          step: 'validate',
          detail: 'reboot jobs are not allowed on this device: set jobs.allowReboot to true in its config',
        };
      }
      const bootId = deps.port.bootId();
      await ctx.progress(STEP_REBOOTING, {
        detail: ctx.document.reason ?? 'rebooting',
        ...(bootId ? { data: { bootId } } : {}),
      });
      try {
        await deps.port.reboot();
      } catch (err) {
        return { status: 'FAILED', step: STEP_REBOOTING, detail: (err as Error).message };
      }
      ctx.log.warn('reboot asked for; the job ends after the restart');
      return { status: 'PENDING', step: STEP_REBOOTING };
    },
  };
}
