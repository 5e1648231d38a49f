import { type CommandApiTarget, signApiRequest } from '@pifleet/cloud';
import { SimulatorError } from '../errors.js';
import { type Quantiles, quantiles } from './metrics.js';

export type { CommandApiTarget };
/** The command/query API's signer, from the cloud package (one signer for every API caller). */
export const signRequest = signApiRequest;

/** One desired-state write through the command API; resolves to the HTTP status. */
export async function putDesired(target: CommandApiTarget, thingName: string, desired: object): Promise<number> {
  const url = new URL(`${target.baseUrl.replace(/\/$/, '')}/things/${encodeURIComponent(thingName)}/desired`);
  const body = JSON.stringify({ desired });
  const headers = await signRequest({ method: 'PUT', url, body, now: new Date() }, target);
  const res = await fetch(url, { method: 'PUT', headers, body });
  await res.arrayBuffer();
  return res.status;
}

export interface CommandLoadResult {
  readonly ratePerSecond: number;
  readonly sent: number;
  /** The API answered 2xx. */
  readonly accepted: number;
  readonly failed: number;
  readonly failures: Readonly<Record<string, number>>;
  /** The device's accepted reported state matched the desired value. */
  readonly converged: number;
  /** Accepted but not converged when the run ended. */
  readonly pending: number;
  /** API call → API response, ms. */
  readonly apiMs: Quantiles | undefined;
  /** API call → the device's reported state converging, ms. */
  readonly roundTripMs: Quantiles | undefined;
  readonly roundTripSamples: readonly number[];
}

export interface CommandLoad {
  start(): void;
  /** A device's accepted reported outputs (from the fleet hosts). */
  observe(thingName: string, outputs: Readonly<Record<string, boolean>>, at: number): void;
  /** Stops sending; waits up to `graceMs` for pending commands to converge. */
  stop(graceMs: number): Promise<CommandLoadResult>;
}

/**
 * Desired-state writes at a fixed rate through the command API: each toggles the `relay` output of
 * a device (round robin over connected devices, never two pending on one device) and waits for
 * that device's accepted reported state to show the new value.
 */
export function createCommandLoad(opts: {
  readonly target: CommandApiTarget;
  readonly ratePerSecond: number;
  readonly things: readonly string[];
  /** Whether a device is ready for a command (connected and past its first shadow sync). */
  readonly eligible?: (thingName: string) => boolean;
}): CommandLoad {
  const pending = new Map<string, { value: boolean; t0: number }>();
  // A failed write may or may not have reached the shadow, so the thing's desired value is unknown:
  // toggling it again could write the value it already has, which yields no delta and no report,
  // and the command would never converge. Such things get no more commands.
  const unknown = new Set<string>();
  const desiredValue = new Map<string, boolean>();
  const apiMs: number[] = [];
  const rtt: number[] = [];
  const failures: Record<string, number> = {};
  let sent = 0;
  let accepted = 0;
  let failed = 0;
  let cursor = 0;
  let timer: NodeJS.Timeout | undefined;
  let inflight = 0;
  let waiters: (() => void)[] = [];

  const sendOne = () => {
    for (let tries = 0; tries < opts.things.length; tries++) {
      const thing = opts.things[cursor++ % opts.things.length] as string;
      if (pending.has(thing) || unknown.has(thing) || (opts.eligible && !opts.eligible(thing))) continue;
      const value = !(desiredValue.get(thing) ?? false);
      desiredValue.set(thing, value);
      const t0 = Date.now();
      pending.set(thing, { value, t0 });
      sent += 1;
      inflight += 1;
      putDesired(opts.target, thing, { outputs: { relay: value } })
        .then(
          (status) => {
            apiMs.push(Date.now() - t0);
            if (status >= 200 && status < 300) accepted += 1;
            else {
              failed += 1;
              failures[String(status)] = (failures[String(status)] ?? 0) + 1;
              pending.delete(thing);
              unknown.add(thing);
            }
          },
          (err: unknown) => {
            failed += 1;
            const key = (err as { cause?: { code?: string } }).cause?.code ?? 'network';
            failures[key] = (failures[key] ?? 0) + 1;
            pending.delete(thing);
            unknown.add(thing);
          },
        )
        .finally(() => {
          inflight -= 1;
          if (inflight === 0) for (const w of waiters.splice(0)) w();
        });
      return;
    }
  };

  return {
    start() {
      if (opts.ratePerSecond <= 0 || opts.things.length === 0) return;
      const started = Date.now();
      const tick = () => {
        const due = Math.floor(((Date.now() - started) * opts.ratePerSecond) / 1000);
        while (sent < due) {
          const before = sent;
          sendOne();
          if (sent === before) break;
        }
        timer = setTimeout(tick, Math.max(5, Math.min(100, 1000 / opts.ratePerSecond)));
      };
      tick();
    },
    observe(thing, outputs, at) {
      const p = pending.get(thing);
      if (p && outputs.relay === p.value) {
        pending.delete(thing);
        rtt.push(at - p.t0);
      }
    },
    async stop(graceMs) {
      if (timer) clearTimeout(timer);
      if (inflight > 0) await new Promise<void>((r) => waiters.push(r));
      const deadline = Date.now() + graceMs;
      while (pending.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      waiters = [];
      return {
        ratePerSecond: opts.ratePerSecond,
        sent,
        accepted,
        failed,
        failures,
        converged: rtt.length,
        pending: pending.size,
        apiMs: quantiles(apiMs),
        roundTripMs: quantiles(rtt),
        roundTripSamples: rtt,
      };
    },
  };
}

export function assertCommandTarget(t: Partial<CommandApiTarget>): CommandApiTarget {
  if (!t.baseUrl || !t.region || !t.credentials)
    throw new SimulatorError('FLEET_COMMAND_TARGET', 'command load needs the API URL, region and credentials');
  return t as CommandApiTarget;
}
