import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { EXIT } from '@pifleet/protocol';
import { type JournalFile, openJournal } from '../adapters/journal-file.js';
import { fleetThingNames, isFleetThing } from '../core/args.js';
import { type ErrorContext, toCliError } from '../core/error-map.js';
import { isDone, type JournalResult } from '../core/journal.js';
import { runPool } from '../core/pool.js';
import { type ProgressState, renderBar, renderLine } from '../core/progress.js';
import type { CliError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../ports/clock.js';
import type { DeviceRegistry } from '../ports/registry.js';
import type { TextSink } from './context.js';
import type { Provisioner } from './provisioner.js';

/**
 * Bulk runs over a fleet (`PREFIX-0001` …): bounded concurrency, the registry's client-side rate
 * limits and retries, a journal that makes an interrupted run resumable, progress on stderr and
 * a summary. A failure of one thing is recorded and the run goes on; a failure that dooms every
 * thing (credentials, the core not running) stops it.
 */

export interface FleetDeps {
  readonly provisioner: Provisioner;
  readonly registry: DeviceRegistry;
  readonly clock: Clock;
  readonly log: Logger;
  readonly stderr: TextSink;
  readonly isTTY: boolean;
  readonly errorContext: ErrorContext;
  readonly signal?: AbortSignal;
}

export interface FleetSummary {
  readonly operation: 'create' | 'delete';
  readonly prefix: string;
  readonly total: number;
  /** Things a previous, interrupted run had already finished (from the journal). */
  readonly resumed: number;
  readonly counts: Partial<Record<JournalResult, number>>;
  readonly failed: number;
  readonly failures: readonly { name: string; error: string }[];
  readonly elapsedMs: number;
  /** Things finished by this run per second. */
  readonly thingsPerSecond: number;
  readonly interrupted: boolean;
  readonly journal: string;
  readonly outDir: string;
}

/** Errors after which no other thing can succeed either. */
function isFatal(err: CliError): boolean {
  return err.exitCode === EXIT.noPermission || err.exitCode === EXIT.config || err.code === 'UNAVAILABLE';
}

function createProgress(deps: FleetDeps, label: string, total: number, initial: number, started: number) {
  let done = initial;
  let failed = 0;
  let lastDraw = 0;
  const state = (): ProgressState => ({ done, total, failed, elapsedMs: deps.clock.now() - started });
  const draw = (force: boolean) => {
    const now = deps.clock.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    deps.stderr.write(`\r${renderBar(label, state())}`);
  };
  return {
    tick(name: string, result: string, ok: boolean) {
      done++;
      if (!ok) failed++;
      if (deps.isTTY) draw(done === total);
      else deps.stderr.write(`${renderLine(state(), name, result)}\n`);
    },
    finish() {
      if (deps.isTTY) {
        draw(true);
        deps.stderr.write('\n');
      }
    },
  };
}

/** Runs `work` over the names with the journal at `journalPath` (default OUT/.fleet-PREFIX.OP.journal). */
async function runBulk(
  deps: FleetDeps,
  op: 'create' | 'delete',
  options: { prefix: string; names: readonly string[]; journalPath?: string; concurrency: number; outDir: string },
  work: (name: string) => Promise<{ result: JournalResult; certificateId?: string }>,
): Promise<{ summary: FleetSummary; fatal?: CliError }> {
  const journalPath = options.journalPath ?? journalPathFor(options.outDir, options.prefix, op);
  const result = await runJournaled(deps, op, { ...options, journalPath }, work);
  await dropJournalsWhenFinished(result, journalPath);
  return result;
}

async function runJournaled(
  deps: FleetDeps,
  op: 'create' | 'delete',
  options: { prefix: string; names: readonly string[]; journalPath: string; concurrency: number; outDir: string },
  work: (name: string) => Promise<{ result: JournalResult; certificateId?: string }>,
): Promise<{ summary: FleetSummary; fatal?: CliError }> {
  const started = deps.clock.now();
  let journal: JournalFile | undefined;
  const internal = new AbortController();
  const onAbort = () => internal.abort();
  deps.signal?.addEventListener('abort', onAbort, { once: true });
  if (deps.signal?.aborted) internal.abort();
  try {
    journal = await openJournal(options.journalPath, op);
    const j = journal;
    const todo = options.names.filter((n) => !isDone(j.replay.last.get(n)));
    const resumed = options.names.length - todo.length;
    if (resumed > 0) deps.log.info({ resumed, journal: j.path }, 'resuming from journal');
    const progress = createProgress(deps, `${op} ${options.prefix}`, options.names.length, resumed, started);
    const counts: Partial<Record<JournalResult, number>> = {};
    const failures: { name: string; error: string }[] = [];
    let fatal: CliError | undefined;
    let finished = 0;

    const { aborted } = await runPool(
      todo,
      options.concurrency,
      async (name) => {
        let entry: { result: JournalResult; certificateId?: string; error?: string };
        try {
          entry = await work(name);
        } catch (err) {
          const cli = toCliError(err, { ...deps.errorContext, thingName: name });
          if (internal.signal.aborted && cli.exitCode !== EXIT.noPermission) {
            return; // cancelled mid-thing: not recorded, the next run redoes it
          }
          if (isFatal(cli)) {
            fatal ??= cli;
            internal.abort();
          }
          entry = { result: 'failed', error: cli.message };
          failures.push({ name, error: cli.message });
        }
        counts[entry.result] = (counts[entry.result] ?? 0) + 1;
        finished++;
        await j.append({ v: 1, op, name, ts: deps.clock.now(), ...entry });
        progress.tick(name, entry.result, entry.result !== 'failed');
      },
      internal.signal,
    );
    progress.finish();
    const elapsedMs = deps.clock.now() - started;
    const failed = failures.length;
    const interrupted = (aborted || finished < todo.length) && fatal === undefined;
    const summary: FleetSummary = {
      operation: op,
      prefix: options.prefix,
      total: options.names.length,
      resumed,
      counts,
      failed,
      failures: failures.slice(0, 20),
      elapsedMs,
      thingsPerSecond: elapsedMs > 0 ? Math.round((finished * 1000 * 10) / elapsedMs) / 10 : 0,
      interrupted,
      journal: j.path,
      outDir: options.outDir,
    };
    return { summary, ...(fatal ? { fatal } : {}) };
  } finally {
    deps.signal?.removeEventListener('abort', onAbort);
    await journal?.close();
  }
}

export function journalPathFor(outDir: string, prefix: string, op: 'create' | 'delete'): string {
  return path.join(outDir, `.fleet-${prefix}.${op}.journal`);
}

/** A finished run needs no journal, its own or the other operation's: a stale one would make a later run skip things. */
async function dropJournalsWhenFinished(
  { summary, fatal }: { summary: FleetSummary; fatal?: CliError },
  journalPath: string,
): Promise<void> {
  if (summary.interrupted || summary.failed > 0 || fatal) return;
  await rm(journalPath, { force: true });
  const other = summary.operation === 'create' ? 'delete' : 'create';
  await rm(journalPathFor(summary.outDir, summary.prefix, other), { force: true });
}

export async function fleetCreate(
  deps: FleetDeps,
  options: {
    prefix: string;
    count: number;
    outDir: string;
    concurrency: number;
    attributes: Readonly<Record<string, string>>;
    thingTypeName?: string;
    thingGroupName?: string;
    journalPath?: string;
  },
) {
  const names = fleetThingNames(options.prefix, options.count);
  const { thingTypeName, thingGroupName } = options;
  const typeAndGroup = {
    ...(thingTypeName !== undefined ? { thingTypeName } : {}),
    ...(thingGroupName !== undefined ? { thingGroupName } : {}),
  };
  // Once for the run, not once per thing: a missing type or group is created before any thing.
  const created: string[] = [];
  await deps.provisioner.ensureTypeAndGroup(typeAndGroup, created);
  for (const change of created) deps.log.info({ prefix: options.prefix }, change);
  return runBulk(deps, 'create', { ...options, names }, async (thingName) => {
    const r = await deps.provisioner.provisionThing({
      thingName,
      attributes: { fleet: options.prefix, ...options.attributes },
      bundleDir: path.join(options.outDir, thingName),
      force: false,
      ...typeAndGroup,
      typeAndGroupEnsured: true,
    });
    return { result: r.status, certificateId: r.certificateId };
  });
}

/** Things of a fleet: those the registry lists plus bundle directories left in `outDir` (a partial teardown). */
async function fleetMembers(deps: FleetDeps, prefix: string, outDir: string): Promise<string[]> {
  const names = new Set<string>();
  let nextToken: string | undefined;
  do {
    const page = await deps.registry.listThings({ maxResults: 250, ...(nextToken ? { nextToken } : {}) });
    for (const t of page.things) if (isFleetThing(prefix, t.thingName)) names.add(t.thingName);
    nextToken = page.nextToken;
  } while (nextToken);
  try {
    for (const entry of await readdir(outDir)) if (isFleetThing(prefix, entry)) names.add(entry);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return [...names].sort();
}

export async function fleetDelete(
  deps: FleetDeps,
  options: { prefix: string; outDir: string; concurrency: number; keepBundles: boolean; journalPath?: string },
) {
  const names = await fleetMembers(deps, options.prefix, options.outDir);
  return runBulk(deps, 'delete', { ...options, names }, async (thingName) => {
    const r = await deps.provisioner.teardownThing({
      thingName,
      bundleDir: path.join(options.outDir, thingName),
      removeBundle: !options.keepBundles,
    });
    return { result: r.status };
  });
}

export function renderSummary(s: FleetSummary): string {
  const counts = Object.entries(s.counts)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  const lines = [
    `fleet ${s.operation} ${s.prefix}: ${s.total} things; ${counts || 'nothing to do'}${
      s.resumed > 0 ? `; ${s.resumed} already done by an earlier run` : ''
    }`,
    `${(s.elapsedMs / 1000).toFixed(1)}s, ${s.thingsPerSecond} things/s`,
    ...s.failures.map((f) => `failed ${f.name}: ${f.error}`),
  ];
  if (s.interrupted || s.failed > 0) lines.push(`journal ${s.journal}`);
  return lines.join('\n');
}
