import { type ChildProcess, fork } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SimulatorError } from '../errors.js';
import {
  createDeviceHost,
  type DeviceHost,
  type HostDeviceSpec,
  type HostEvent,
  type HostFinal,
  type HostInit,
  type HostSnapshot,
} from './host.js';

export type HostCall =
  | { readonly op: 'start' | 'snapshot' | 'pauseSampling' | 'stop' }
  | { readonly op: 'failSensors' | 'syncShadow'; readonly things: readonly string[] };

export type HostRequest = HostCall & { readonly id: number };

export interface HostResponse {
  readonly id: number;
  readonly result?: HostSnapshot | HostFinal | number | null;
  readonly error?: string;
}

/** The fleet's device hosts: inline in this thread (`workers: 0`) or one per child process. */
export interface HostPool {
  readonly mode: 'inline' | 'child-processes';
  readonly hosts: number;
  start(): Promise<void>;
  snapshot(): Promise<HostSnapshot[]>;
  failSensors(things: readonly string[]): Promise<number>;
  syncShadow(things: readonly string[]): Promise<void>;
  /** Every device stops taking readings and seals its open batch, but stays connected and publishing. */
  pauseSampling(): Promise<void>;
  stop(): Promise<HostFinal[]>;
  /** Ends worker threads at once (error path). */
  terminate(): Promise<void>;
}

export interface HostPoolOptions {
  readonly workers: number;
  readonly endpoint: string;
  readonly port: number;
  readonly caFile: string;
  readonly profile: HostInit['profile'];
  readonly devices: readonly HostDeviceSpec[];
  /** Device starts per second over the whole fleet. */
  readonly rampPerSecond: number;
  readonly clockResolutionMs?: number;
  readonly onEvent: (event: HostEvent) => void;
}

interface Remote {
  call(req: HostCall): Promise<HostResponse['result']>;
  owns: Set<string>;
  child?: ChildProcess;
}

/**
 * Forks the host entry next to this module (from TypeScript source, through tsx).
 *
 * Every device builds its own TLS context (its own certificate), and aws-crt's s2n loads the
 * system trust store into each new context before the device's CA replaces it: ~6.8 ms of the JS
 * thread per device, measured, most of a host's ramp cost. The host's `SSL_CERT_FILE` /
 * `SSL_CERT_DIR` point that default load at the target's CA (the only anchor the devices use
 * anyway), which brings a context down to ~0.15 ms. Only the child's environment changes.
 */
function forkHost(caFile: string): ChildProcess {
  const source = import.meta.url.endsWith('.ts');
  const entry = fileURLToPath(new URL(source ? './host-process.ts' : './host-process.js', import.meta.url));
  const execArgv = source ? ['--import', 'tsx', '--conditions=@pifleet/source'] : [];
  const prof = process.execArgv.filter((a) => a.startsWith('--cpu-prof'));
  const child = fork(entry, [], {
    execArgv: [...execArgv, ...prof],
    env: { ...process.env, SSL_CERT_FILE: caFile, SSL_CERT_DIR: path.dirname(caFile) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  lowerPriority(child);
  return child;
}

/**
 * The load generator must not starve the system under test: on a machine they share, device
 * hosts run at a lower scheduling priority than the core, as if the fleet were elsewhere. Best
 * effort (a container may forbid it); the report gives both sides' CPU either way.
 */
export function lowerPriority(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    os.setPriority(child.pid, HOST_NICE);
  } catch {
    // keep the default priority
  }
}

/** Scheduling priority (nice) of device-host processes. */
export const HOST_NICE = 10;

export function createHostPool(opts: HostPoolOptions): HostPool {
  const k = Math.max(0, Math.floor(opts.workers));
  const n = Math.max(1, k);
  const shares: HostDeviceSpec[][] = Array.from({ length: n }, () => []);
  for (const [i, d] of opts.devices.entries()) shares[i % n]?.push(d);
  const inits: HostInit[] = shares.map((devices, hostId) => ({
    hostId,
    endpoint: opts.endpoint,
    port: opts.port,
    caFile: opts.caFile,
    profile: opts.profile,
    devices,
    rampPerSecond: opts.rampPerSecond / n,
    ...(opts.clockResolutionMs === undefined ? {} : { clockResolutionMs: opts.clockResolutionMs }),
  }));

  const remotes: Remote[] = inits.map((init) => {
    const owns = new Set(init.devices.map((d) => d.thingName));
    if (k === 0) {
      const host: DeviceHost = createDeviceHost(init, opts.onEvent);
      return {
        owns,
        async call(req) {
          switch (req.op) {
            case 'start':
              host.start();
              return null;
            case 'snapshot':
              return host.snapshot();
            case 'stop':
              return host.stop();
            case 'failSensors':
              return host.failSensors(req.things);
            case 'syncShadow':
              await host.syncShadow(req.things);
              return null;
            case 'pauseSampling':
              await host.pauseSampling();
              return null;
          }
        },
      };
    }
    const child = forkHost(opts.caFile);
    const pending = new Map<number, { resolve: (r: HostResponse['result']) => void; reject: (e: Error) => void }>();
    let nextId = 1;
    child.on('message', (msg: HostResponse | { event: HostEvent }) => {
      if ('event' in msg) {
        opts.onEvent(msg.event);
        return;
      }
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (!p) return;
      if (msg.error !== undefined) p.reject(new SimulatorError('FLEET_HOST', msg.error));
      else p.resolve(msg.result);
    });
    const failAll = (err: Error) => {
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    };
    child.on('error', (err) =>
      failAll(new SimulatorError('FLEET_HOST', 'a device host process failed', { cause: err })),
    );
    child.on('exit', (code, signal) => {
      if (pending.size > 0)
        failAll(new SimulatorError('FLEET_HOST', `a device host process exited (${code ?? signal})`));
    });
    const call = (req: HostCall | { op: 'init'; init: HostInit }) => {
      const id = nextId++;
      return new Promise<HostResponse['result']>((resolve, reject) => {
        if (!child.connected) {
          reject(new SimulatorError('FLEET_HOST', 'the device host process is gone'));
          return;
        }
        pending.set(id, { resolve, reject });
        child.send({ ...req, id }, (err) => {
          if (!err) return;
          pending.delete(id);
          reject(new SimulatorError('FLEET_HOST', 'could not reach the device host process', { cause: err }));
        });
      });
    };
    const ready = call({ op: 'init', init });
    ready.catch(() => undefined);
    return {
      owns,
      child,
      async call(req: HostCall) {
        await ready;
        return call(req);
      },
    };
  });

  const byOwner = (things: readonly string[]) =>
    remotes.map((r) => ({ r, mine: things.filter((t) => r.owns.has(t)) })).filter((x) => x.mine.length > 0);

  return {
    mode: k === 0 ? 'inline' : 'child-processes',
    hosts: n,
    async start() {
      await Promise.all(remotes.map((r) => r.call({ op: 'start' })));
    },
    async snapshot() {
      return (await Promise.all(remotes.map((r) => r.call({ op: 'snapshot' })))) as HostSnapshot[];
    },
    async failSensors(things) {
      const counts = await Promise.all(
        byOwner(things).map(({ r, mine }) => r.call({ op: 'failSensors', things: mine })),
      );
      return counts.reduce<number>((a, b) => a + Number(b ?? 0), 0);
    },
    async syncShadow(things) {
      await Promise.all(byOwner(things).map(({ r, mine }) => r.call({ op: 'syncShadow', things: mine })));
    },
    async pauseSampling() {
      await Promise.all(remotes.map((r) => r.call({ op: 'pauseSampling' })));
    },
    async stop() {
      const finals = (await Promise.all(remotes.map((r) => r.call({ op: 'stop' })))) as HostFinal[];
      await Promise.all(
        remotes.map((r) =>
          r.child && r.child.exitCode === null
            ? new Promise<void>((res) => r.child?.once('exit', () => res()))
            : undefined,
        ),
      );
      return finals;
    },
    async terminate() {
      for (const r of remotes) if (r.child && r.child.exitCode === null) r.child.kill('SIGKILL');
    },
  };
}
