import { randomUUID } from 'node:crypto';
import type { BusHandler, BusMessage } from '../broker/broker.js';
import type { MessageProperties } from '../broker/properties.js';
import {
  type CompiledRule,
  type CompiledTemplate,
  compileRule,
  compileTemplate,
  type EvalContext,
  IOT_SQL_VERSION,
  IotSqlError,
  type PreparedMessage,
  prepareMessage,
  type RuleOutput,
} from '../core/iotsql/index.js';
import type { Logger } from '../logger.js';
import { type ArchiveBuffering, archiveAction, firehoseAction } from './actions/archive.js';
import { type RuleErrorPayload, type RuleFailure, ruleErrorPayload } from './actions/error-payload.js';
import { isTransientFailure, RuleActionError, RuleLoadError } from './actions/errors.js';
import { lambdaAction } from './actions/lambda.js';
import { createLogSink, type LogSink, logAction } from './actions/log.js';
import { createWorkQueue, type WorkQueue } from './actions/queue.js';
import { checkRepublishHeaders, compileHeaders, republishAction } from './actions/republish.js';
import type { CompiledAction, InProcessHandler } from './actions/types.js';
import { archiveStreamProblem } from './archive-layout.js';
import { RULE_NAME_PATTERN, type RuleAction, type RuleDefinition, type RuleHandlerName } from './definitions.js';

/**
 * The local rules engine: the rule definitions (rules/definitions.ts) running against the local
 * broker, with IoT Core's behaviour.
 *
 * - Every rule's SQL and every action's substitution template is compiled when the engine is
 *   created; a mistake throws {@link RuleLoadError} naming the rule, with line and column.
 * - `start()` subscribes each distinct FROM filter once on the broker bus (reserved topics too:
 *   shadow `$aws/things/…` and presence `$aws/events/presence/…`). A message is decoded once per
 *   filter and every rule of that filter is evaluated on it, synchronously.
 * - A client's QoS 1 message is acknowledged only once every matched rule's actions (or its
 *   error action) have finished: the telemetry is stored before the device deletes it, so a crash
 *   of the core loses nothing a device was told was received (the broker hands such messages to
 *   {@link RulesBus.acceptBeforeAck}; the same message arriving on the bus is skipped).
 * - Other messages (QoS 0, in-process publishes such as presence events) run their actions on a
 *   bounded work queue, not in the publisher's path. While the queue is below its high-water mark
 *   a publish is never delayed; above it, the engine holds the broker's delivery until the queue
 *   drains: explicit backpressure, nothing dropped.
 * - When actions of a rule fail for a message, the rule's error action runs once with IoT
 *   Core's failure payload ({@link RuleErrorPayload}), and the engine logs a warning.
 * - Counters per rule (`stats()`) for the console and the fleet report.
 */

/** The part of the broker bus the engine uses. */
export interface RulesBus {
  publish(
    topic: string,
    payload: string | Uint8Array,
    options?: { qos?: 0 | 1; retain?: boolean; properties?: MessageProperties },
  ): Promise<void>;
  subscribe(filter: string, handler: BusHandler): Promise<() => Promise<void>>;
  /**
   * When present, clients' QoS 1 messages reach the engine here before the broker acknowledges
   * them, and the broker acknowledges once their actions have finished (see `accept`).
   */
  acceptBeforeAck?(handler: (message: BusMessage) => Promise<void> | undefined): () => void;
  /** When present, `principal()` of a message is its publisher's certificate id. */
  onClientConnected?(listener: (session: { clientId: string; certificateId: string }) => void): () => void;
  onClientDisconnected?(listener: (session: { clientId: string; certificateId: string }) => void): () => void;
}

export interface RulesEngineDeps {
  readonly rules: readonly RuleDefinition[];
  readonly bus: RulesBus;
  /** The in-process handler behind each `lambda` action's handler name. */
  readonly handlers: Readonly<Partial<Record<RuleHandlerName, InProcessHandler>>>;
  /** Root of the `archive` and `firehose` actions' keys (S3 bucket in AWS). */
  readonly archiveDir: string;
  /** How `firehose` actions buffer before they write an object (defaults: `DEFAULT_ARCHIVE_BUFFERING`). */
  readonly archiveBuffering?: ArchiveBuffering;
  /** Where `log` actions (the error sink) append their JSONL files, one per log group. */
  readonly logDir: string;
  readonly clock: { now(): number };
  readonly logger: Logger;
  /** `newuuid()` and trace ids. Default crypto.randomUUID. */
  readonly newUuid?: () => string;
  /** `accountid()`. */
  readonly accountId?: string;
  /** Actions running at once (rule × message jobs). Default 32. */
  readonly concurrency?: number;
  /** Jobs running or waiting above which deliveries wait (backpressure). Default 2048. */
  readonly maxQueued?: number;
  /** How long `stop()` waits for queued actions before giving up on them. Default 10 s. */
  readonly stopTimeoutMs?: number;
}

export interface RuleStats {
  readonly name: string;
  readonly topicFilter: string;
  /** Messages whose topic matched FROM and whose WHERE was true. */
  readonly matched: number;
  readonly actions: { readonly succeeded: number; readonly failed: number };
  /** Error actions run (one per failed rule × message), and those that failed themselves. */
  readonly errorActions: { readonly succeeded: number; readonly failed: number };
}

export interface RulesEngineStats {
  /** Messages delivered to the engine, counted once per FROM filter they matched. */
  readonly messages: number;
  /** Rule × message jobs waiting or running now. */
  readonly queued: number;
  readonly running: number;
  /** Deliveries that had to wait for the queue to drain. */
  readonly backpressureWaits: number;
  /** Client messages left unacknowledged because an action failed transiently (the device sends them again). */
  readonly notAcknowledged: number;
  readonly rules: readonly RuleStats[];
}

export interface RulesEngine {
  start(): Promise<void>;
  /** Unsubscribes, then waits (bounded) for queued actions to finish. */
  stop(): Promise<void>;
  stats(): RulesEngineStats;
  /** Resolves when no action is queued or running and every log line is written. */
  idle(): Promise<void>;
  /**
   * Writes every record the buffering actions (`firehose`) hold, as objects; resolves once each
   * write has finished or failed. `stop()` does it too; tests and tools call it to see objects now.
   */
  flushArchive(): Promise<void>;
  /** Evaluates one message as if it came from the bus (benchmarks, tests); resolves once it is queued. */
  ingest(message: BusMessage): Promise<void>;
  /** The distinct FROM filters subscribed. */
  readonly topicFilters: readonly string[];
  /** Whether a rule of this name is loaded (from the definitions or added). */
  has(name: string): boolean;
  /**
   * Loads one more rule (CreateTopicRule): compiled as the definitions are, so a mistake throws
   * {@link RuleLoadError} and changes nothing; once started, its FROM filter is subscribed
   * before this resolves. A disabled rule holds its name but evaluates nothing.
   */
  addRule(def: RuleDefinition, options?: { readonly disabled?: boolean }): Promise<void>;
  /** Unloads a rule (DeleteTopicRule); false when there is none of that name. Its queued actions still run. */
  removeRule(name: string): Promise<boolean>;
}

interface MutableCounters {
  matched: number;
  ok: number;
  failed: number;
  errorOk: number;
  errorFailed: number;
}

interface LoadedRule {
  readonly def: RuleDefinition;
  readonly sql: CompiledRule;
  readonly actions: readonly CompiledAction[];
  readonly errorAction: CompiledAction;
  readonly counters: MutableCounters;
  readonly disabled: boolean;
}

interface ActionTargets {
  readonly bus: RulesBus;
  readonly handlers: RulesEngineDeps['handlers'];
  readonly archiveDir: string;
  readonly archiveBuffering: ArchiveBuffering | undefined;
  readonly newUuid: () => string;
  readonly sink: LogSink;
  readonly now: () => number;
  readonly log: Logger;
}

function templateOf(ruleName: string, where: string, text: string): CompiledTemplate {
  try {
    return compileTemplate(text);
  } catch (err) {
    if (err instanceof IotSqlError) {
      throw new RuleLoadError(ruleName, err.reason, { cause: err, line: err.line, column: err.column, where });
    }
    throw err;
  }
}

function compileAction(ruleName: string, where: string, action: RuleAction, targets: ActionTargets): CompiledAction {
  switch (action.kind) {
    case 'lambda': {
      const handler = targets.handlers[action.handler];
      if (handler === undefined) {
        throw new RuleLoadError(ruleName, `no handler named ${action.handler} is registered`, { where });
      }
      return lambdaAction(action.handler, handler);
    }
    case 'republish': {
      const topic = templateOf(ruleName, `${where} topic`, action.topic);
      let headers: ReturnType<typeof compileHeaders> | undefined;
      if (action.headers !== undefined) {
        const problems = checkRepublishHeaders(action.headers, (text) => text.includes('${'));
        if (problems.length > 0) throw new RuleLoadError(ruleName, problems.join('; '), { where });
        headers = compileHeaders(action.headers, (at, text) => templateOf(ruleName, `${where} ${at}`, text));
      }
      return republishAction(
        topic,
        action.qos,
        { publish: (t, payload, options) => targets.bus.publish(t, payload, options) },
        (t, err) => targets.log.warn({ err, rule: ruleName, topic: t }, 'republished message not delivered'),
        headers,
      );
    }
    case 'archive':
      return archiveAction(templateOf(ruleName, `${where} key`, action.key), targets.archiveDir);
    case 'firehose': {
      const problem = archiveStreamProblem(action.stream);
      if (problem !== undefined)
        throw new RuleLoadError(ruleName, `archive stream ${action.stream.name}: ${problem}`, { where });
      return firehoseAction(action.stream, action.separator, {
        dir: targets.archiveDir,
        ...(targets.archiveBuffering === undefined ? {} : { buffering: targets.archiveBuffering }),
        newUuid: targets.newUuid,
        onWriteError: (err, key, records) =>
          targets.log.warn({ err, rule: ruleName, key, records }, 'archive object not written; its records are kept'),
      });
    }
    case 'log':
      return logAction(templateOf(ruleName, `${where} logGroup`, action.logGroup), targets.sink, targets.now);
    default: {
      const unknown: never = action;
      throw new RuleLoadError(ruleName, `unknown action kind ${JSON.stringify((unknown as { kind: unknown }).kind)}`, {
        where,
      });
    }
  }
}

/** Compiles one definition (SQL, templates, handler references); throws {@link RuleLoadError}. */
function loadRule(def: RuleDefinition, targets: ActionTargets): LoadedRule {
  if (!RULE_NAME_PATTERN.test(def.name)) {
    throw new RuleLoadError(def.name, 'the name must be 1-128 letters, digits or underscores');
  }
  if (def.sqlVersion !== IOT_SQL_VERSION) {
    throw new RuleLoadError(def.name, `SQL version ${String(def.sqlVersion)} is not supported (${IOT_SQL_VERSION} is)`);
  }
  let sql: CompiledRule;
  try {
    sql = compileRule(def.sql);
  } catch (err) {
    if (err instanceof IotSqlError) {
      throw new RuleLoadError(def.name, err.reason, { cause: err, line: err.line, column: err.column, where: 'sql' });
    }
    throw err;
  }
  if (def.actions.length === 0) throw new RuleLoadError(def.name, 'a rule needs at least one action');
  const actions = def.actions.map((a, i) => compileAction(def.name, `actions[${i}]`, a, targets));
  const errorAction = compileAction(def.name, 'errorAction', def.errorAction, targets);
  return {
    def,
    sql,
    actions,
    errorAction,
    counters: { matched: 0, ok: 0, failed: 0, errorOk: 0, errorFailed: 0 },
    disabled: false,
  };
}

export function createRulesEngine(deps: RulesEngineDeps): RulesEngine {
  const log = deps.logger.child({ component: 'rules' });
  const newUuid = deps.newUuid ?? randomUUID;
  const now = () => deps.clock.now();
  const sink = createLogSink(deps.logDir);
  const targets: ActionTargets = {
    bus: deps.bus,
    handlers: deps.handlers,
    archiveDir: deps.archiveDir,
    archiveBuffering: deps.archiveBuffering,
    newUuid,
    sink,
    now,
    log,
  };

  const loaded: LoadedRule[] = [];
  for (const def of deps.rules) {
    if (loaded.some((r) => r.def.name === def.name)) throw new RuleLoadError(def.name, 'two rules have this name');
    loaded.push(loadRule(def, targets));
  }
  /** Enabled rules grouped by FROM filter, in definition (then creation) order. */
  const byFilter = new Map<string, LoadedRule[]>();
  for (const rule of loaded) {
    const list = byFilter.get(rule.sql.topicFilter) ?? [];
    list.push(rule);
    byFilter.set(rule.sql.topicFilter, list);
  }
  /** The broker subscription of each filter in `byFilter`, while started. */
  const subscriptions = new Map<string, () => Promise<void>>();

  const evalCtx: EvalContext = {
    now,
    newUuid,
    ...(deps.accountId === undefined ? {} : { accountId: deps.accountId }),
  };
  const queue: WorkQueue = createWorkQueue({
    concurrency: deps.concurrency ?? 32,
    highWater: deps.maxQueued ?? 2048,
    onError: (err) => log.error({ err }, 'rule job failed unexpectedly'),
  });
  const principals = new Map<string, string>();
  let messages = 0;
  let backpressureWaits = 0;
  let notAcknowledged = 0;
  let unsubscribes: (() => Promise<void>)[] = [];
  /** Serializes addRule/removeRule so a filter's subscription changes one at a time. */
  let changes: Promise<unknown> = Promise.resolve();
  let listeners: (() => void)[] = [];
  let started = false;

  /**
   * Runs a matched rule's actions, and its error action if any failed. Never rejects; resolves to
   * true when an action failed in a way that may pass (a full disk, a store asking for a retry).
   */
  async function runActions(rule: LoadedRule, message: PreparedMessage, output: RuleOutput): Promise<boolean> {
    const input = { message, output, ctx: evalCtx };
    const results = await Promise.allSettled(rule.actions.map((a) => a.run(input)));
    const failures: RuleFailure[] = [];
    let transient = false;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') {
        rule.counters.ok++;
        return;
      }
      rule.counters.failed++;
      const err = r.reason;
      if (isTransientFailure(err)) transient = true;
      failures.push(
        err instanceof RuleActionError
          ? { failedAction: err.failedAction, failedResource: err.failedResource, errorMessage: err.message }
          : {
              failedAction: rule.actions[i]?.awsName ?? 'UnknownAction',
              failedResource: 'unknown',
              errorMessage: err instanceof Error ? err.message : String(err),
            },
      );
    });
    if (failures.length > 0) await runErrorAction(rule, message, failures);
    return transient;
  }

  async function runErrorAction(rule: LoadedRule, message: PreparedMessage, failures: RuleFailure[]): Promise<void> {
    const payload: RuleErrorPayload = ruleErrorPayload(rule.def.name, message, failures, newUuid());
    log.warn(
      {
        rule: rule.def.name,
        topic: message.topic,
        clientId: payload.clientId,
        traceId: payload.cloudwatchTraceId,
        failures,
      },
      'rule action failed',
    );
    const text = JSON.stringify(payload);
    const failureMessage = prepareMessage({
      topic: message.topic,
      payload: text,
      timestamp: message.timestamp ?? now(),
      ...(message.clientId === undefined ? {} : { clientId: message.clientId }),
    });
    try {
      await rule.errorAction.run({ message: failureMessage, output: JSON.parse(text) as RuleOutput, ctx: evalCtx });
      rule.counters.errorOk++;
    } catch (err) {
      rule.counters.errorFailed++;
      log.error({ err, rule: rule.def.name, traceId: payload.cloudwatchTraceId }, 'rule error action failed');
    }
  }

  /**
   * Evaluates every rule of one FROM filter on a message and queues the actions of those that
   * match; with `completions`, also collects a promise per queued job that resolves when it ends.
   */
  function dispatch(rules: readonly LoadedRule[], bus: BusMessage, completions?: Promise<boolean>[]): void {
    messages++;
    const clientId = bus.clientId;
    const principal = clientId === undefined ? undefined : principals.get(clientId);
    const message = prepareMessage({
      topic: bus.topic,
      payload: bus.payload,
      timestamp: now(),
      ...(clientId === undefined ? {} : { clientId }),
      ...(principal === undefined ? {} : { principal }),
      // get_mqtt_property() and get_user_properties() read these; an MQTT 3.1.1 message has none.
      properties: bus.properties,
    });
    for (const rule of rules) {
      let result: ReturnType<CompiledRule['evaluate']>;
      try {
        result = rule.sql.evaluate(message, evalCtx);
      } catch (err) {
        log.error({ err, rule: rule.def.name, topic: bus.topic }, 'rule evaluation failed');
        continue;
      }
      if (!result.matched) continue;
      rule.counters.matched++;
      const output = result.output;
      if (completions === undefined) {
        queue.push(async () => {
          await runActions(rule, message, output);
        });
      } else {
        // runActions settles every action and catches its error action: it never rejects.
        completions.push(
          new Promise<boolean>((resolve) =>
            queue.push(async () => {
              resolve(await runActions(rule, message, output));
            }),
          ),
        );
      }
    }
  }

  /** Queues a message's matched actions; a promise for room when the queue is over its high-water mark. */
  function queueWithBackpressure(rules: readonly LoadedRule[], bus: BusMessage): void | Promise<void> {
    dispatch(rules, bus);
    const wait = queue.room();
    if (wait !== undefined) {
      backpressureWaits++;
      return wait;
    }
  }

  function deliver(rules: readonly LoadedRule[], bus: BusMessage): void | Promise<void> {
    // Already run (and acknowledged) through `accept`.
    if (bus.acceptedBeforeAck) return;
    // The bus matches as MQTT does, so a FROM 'a/#' subscription also receives `a` itself; a
    // rule's `#` does not match the parent level, so that message is not the filter's at all.
    if (!(rules[0]?.sql.matchesTopic(bus.topic) ?? false)) return;
    return queueWithBackpressure(rules, bus);
  }

  /**
   * The broker's before-ack handler: resolves once the message's actions are done, so the broker
   * may acknowledge it. Rejects when an action failed in a way that may pass (the disk is full,
   * the store asks for a retry): the device then keeps the message and sends it again later,
   * instead of the core acknowledging what it could not keep. A message that can never succeed
   * (poison) resolves: its error action has it, and sending it again would change nothing.
   */
  function accept(bus: BusMessage): Promise<void> | undefined {
    let completions: Promise<boolean>[] | undefined;
    for (const rules of byFilter.values()) {
      if (!(rules[0]?.sql.matchesTopic(bus.topic) ?? false)) continue;
      completions ??= [];
      dispatch(rules, bus, completions);
    }
    if (completions === undefined || completions.length === 0) return undefined;
    return Promise.all(completions).then((transient) => {
      if (transient.includes(true)) {
        notAcknowledged++;
        throw new RuleActionError('*', bus.topic, 'an action failed transiently; the message is not acknowledged');
      }
    });
  }

  /**
   * Writes what the buffering actions of `rules` hold (a failed write is logged by the action, and
   * its records kept for the next attempt); resolves with the records still held.
   */
  async function flushBuffers(rules: readonly LoadedRule[]): Promise<number> {
    const flushes: Promise<number>[] = [];
    for (const rule of rules) {
      for (const action of [...rule.actions, rule.errorAction]) if (action.flush) flushes.push(action.flush());
    }
    return (await Promise.all(flushes)).reduce((a, b) => a + b, 0);
  }

  const handlerFor =
    (rules: readonly LoadedRule[]): BusHandler =>
    (message) =>
      deliver(rules, message);

  function serially<T>(change: () => Promise<T>): Promise<T> {
    const next = changes.then(change);
    changes = next.catch(() => undefined);
    return next;
  }

  return {
    get topicFilters() {
      return [...byFilter.keys()];
    },

    has: (name) => loaded.some((r) => r.def.name === name),

    addRule(def, options = {}) {
      return serially(async () => {
        if (loaded.some((r) => r.def.name === def.name)) throw new RuleLoadError(def.name, 'a rule has this name');
        const rule: LoadedRule = { ...loadRule(def, targets), disabled: options.disabled === true };
        loaded.push(rule);
        if (rule.disabled) return;
        const filter = rule.sql.topicFilter;
        const list = byFilter.get(filter);
        // The handler reads the list it was given when it runs, so a rule added to a subscribed
        // filter sees the next message without a new subscription.
        if (list !== undefined) {
          list.push(rule);
          return;
        }
        const fresh = [rule];
        byFilter.set(filter, fresh);
        if (started) {
          try {
            subscriptions.set(filter, await deps.bus.subscribe(filter, handlerFor(fresh)));
          } catch (err) {
            byFilter.delete(filter);
            loaded.splice(loaded.indexOf(rule), 1);
            throw err;
          }
        }
      });
    },

    removeRule(name) {
      return serially(async () => {
        const rule = loaded.find((r) => r.def.name === name);
        if (rule === undefined) return false;
        loaded.splice(loaded.indexOf(rule), 1);
        // What it buffered is written now; records of its queued actions still arriving wait for
        // the interval (the action's timer), as they would have.
        await flushBuffers([rule]);
        const filter = rule.sql.topicFilter;
        const list = byFilter.get(filter);
        if (list === undefined || !list.includes(rule)) return true;
        list.splice(list.indexOf(rule), 1);
        if (list.length === 0) {
          byFilter.delete(filter);
          const unsubscribe = subscriptions.get(filter);
          subscriptions.delete(filter);
          await unsubscribe?.();
        }
        return true;
      });
    },

    async start() {
      if (started) throw new RuleLoadError('*', 'the rules engine is already started');
      started = true;
      if (deps.bus.onClientConnected) {
        listeners.push(deps.bus.onClientConnected((s) => principals.set(s.clientId, s.certificateId)));
      }
      if (deps.bus.onClientDisconnected) {
        listeners.push(
          deps.bus.onClientDisconnected((s) => {
            if (principals.get(s.clientId) === s.certificateId) principals.delete(s.clientId);
          }),
        );
      }
      for (const [filter, rules] of byFilter) {
        subscriptions.set(filter, await deps.bus.subscribe(filter, handlerFor(rules)));
      }
      if (deps.bus.acceptBeforeAck) {
        const remove = deps.bus.acceptBeforeAck(accept);
        unsubscribes.push(async () => remove());
      }
      log.info({ rules: loaded.map((r) => r.def.name), filters: [...byFilter.keys()] }, 'rules engine started');
    },

    async stop() {
      if (!started) return;
      started = false;
      await changes;
      const subs = [...subscriptions.values(), ...unsubscribes];
      subscriptions.clear();
      unsubscribes = [];
      for (const unsubscribe of subs) await unsubscribe();
      for (const remove of listeners) remove();
      listeners = [];
      const timeoutMs = deps.stopTimeoutMs ?? 10_000;
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        queue.idle().then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (!drained) log.warn({ pending: queue.size }, 'rules engine stopped with actions still running');
      // The archive buffers: a clean stop writes every record they hold.
      const unwritten = await flushBuffers(loaded);
      if (unwritten > 0)
        log.error({ records: unwritten }, 'archive records lost on stop: their objects could not be written');
      await sink.flush();
      log.info({ messages }, 'rules engine stopped');
    },

    stats() {
      return {
        messages,
        queued: queue.size,
        running: queue.running,
        backpressureWaits,
        notAcknowledged,
        rules: loaded.map((r) => ({
          name: r.def.name,
          topicFilter: r.sql.topicFilter,
          matched: r.counters.matched,
          actions: { succeeded: r.counters.ok, failed: r.counters.failed },
          errorActions: { succeeded: r.counters.errorOk, failed: r.counters.errorFailed },
        })),
      };
    },

    async idle() {
      await queue.idle();
      await sink.flush();
    },

    async flushArchive() {
      await flushBuffers(loaded);
    },

    async ingest(message) {
      const waits: Promise<void>[] = [];
      for (const rules of byFilter.values()) {
        const rule = rules[0];
        if (rule === undefined || !rule.sql.matchesTopic(message.topic)) continue;
        const wait = queueWithBackpressure(rules, message);
        if (wait !== undefined) waits.push(wait);
      }
      await Promise.all(waits);
    },
  };
}
