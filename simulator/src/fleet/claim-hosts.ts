import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type ClaimDeviceOutcome, type ClaimDeviceSpec, provisionClaimDevice } from './claim-device.js';
import { lowerPriority } from './pool.js';

export type ClaimHostRequest =
  | { readonly op: 'init'; readonly spec: ClaimDeviceSpec }
  | { readonly op: 'provision'; readonly id: number; readonly index: number; readonly thingName: string };

export interface ClaimHostReply {
  readonly id: number;
  readonly outcome: ClaimDeviceOutcome;
}

/** Where a device's provisioning runs: `host` picks one of the hosts (any number; taken modulo). */
export interface ClaimHosts {
  readonly mode: 'inline' | 'child-processes';
  readonly hosts: number;
  provision(host: number, index: number, thingName: string): Promise<ClaimDeviceOutcome>;
  close(): void;
}

/**
 * The devices' side of `--provision claim`: in this process (`workers` 0), or in `workers` child
 * processes like the fleet's device hosts (and at their lower priority), so that the devices' TLS,
 * key pairs and CSRs do not share the core's thread. The parent keeps the queue and the pacing.
 */
export function createClaimHosts(spec: ClaimDeviceSpec, workers: number): ClaimHosts {
  const k = Math.max(0, Math.floor(workers));
  if (k === 0) {
    return {
      mode: 'inline',
      hosts: 1,
      provision: (_host, index, thingName) => provisionClaimDevice(spec, index, thingName),
      close() {},
    };
  }
  let nextId = 0;
  const pending = new Map<number, { resolve(o: ClaimDeviceOutcome): void; child: ChildProcess }>();
  const children = Array.from({ length: k }, () => {
    const child = forkClaimHost();
    child.send({ op: 'init', spec } satisfies ClaimHostRequest);
    child.on('message', (msg: ClaimHostReply) => {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      p?.resolve(msg.outcome);
    });
    const lost = (why: string) => {
      for (const [id, p] of pending) {
        if (p.child !== child) continue;
        pending.delete(id);
        p.resolve({ ok: false, code: 'FLEET_HOST_EXITED', message: `the device host ${why}`, retries: 0 });
      }
    };
    child.on('exit', (code, signal) => lost(`exited (${signal ?? `code ${code}`})`));
    child.on('error', (err) => lost(`failed: ${err.message}`));
    return child;
  });
  return {
    mode: 'child-processes',
    hosts: k,
    provision(host, index, thingName) {
      const child = children[host % k] as ChildProcess;
      const id = nextId++;
      return new Promise((resolve) => {
        pending.set(id, { resolve, child });
        child.send({ op: 'provision', id, index, thingName } satisfies ClaimHostRequest);
      });
    },
    close() {
      for (const c of children) if (c.connected) c.disconnect();
    },
  };
}

/** Forks the claim host entry next to this module (from TypeScript source through tsx, as the fleet's hosts are). */
function forkClaimHost(): ChildProcess {
  const source = import.meta.url.endsWith('.ts');
  const entry = fileURLToPath(new URL(source ? './claim-host-process.ts' : './claim-host-process.js', import.meta.url));
  const child = fork(entry, [], {
    execArgv: source ? ['--import', 'tsx', '--conditions=@pifleet/source'] : [],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  lowerPriority(child);
  return child;
}
