import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CompiledTemplate, RuleOutput } from '../../core/iotsql/index.js';
import { RuleActionError } from './errors.js';
import type { CompiledAction } from './types.js';

const AWS_NAME = 'CloudwatchLogsAction';

/** The JSONL file a log group is appended to under the log directory: `/pifleet/iot-rule-errors` → `pifleet.iot-rule-errors.jsonl`. */
export function logFileName(logGroup: string): string {
  const trimmed = logGroup.replace(/^\/+/, '').replace(/\/+$/, '');
  const safe = trimmed.replaceAll('/', '.').replace(/[^A-Za-z0-9._#-]/g, '_');
  return `${safe === '' || safe.startsWith('.') ? `_${safe}` : safe}.jsonl`;
}

/** One line of a local log group file. */
export interface LogLine {
  /** When the engine wrote it, ms since the epoch. */
  readonly timestamp: number;
  readonly logGroup: string;
  /** The payload: parsed JSON when it is JSON, otherwise base64 under `base64`. */
  readonly message: unknown;
}

/** Serializes writes per file so lines never interleave, and creates the directory once. */
export interface LogSink {
  append(logGroup: string, line: string): Promise<void>;
  /** Resolves once every append issued so far has finished. */
  flush(): Promise<void>;
}

export function createLogSink(dir: string): LogSink {
  const chains = new Map<string, Promise<void>>();
  let ready: Promise<unknown> | undefined;
  return {
    append(logGroup, line) {
      const file = join(dir, logFileName(logGroup));
      ready ??= mkdir(dir, { recursive: true });
      const previous = chains.get(file) ?? ready.then(() => undefined);
      const next = previous.catch(() => undefined).then(() => appendFile(file, `${line}\n`, { mode: 0o600 }));
      chains.set(file, next);
      void next
        .finally(() => {
          if (chains.get(file) === next) chains.delete(file);
        })
        .catch(() => undefined);
      return next;
    },
    async flush() {
      await Promise.allSettled([...chains.values()]);
    },
  };
}

function messageOf(output: RuleOutput): unknown {
  if (output instanceof Uint8Array) return { base64: Buffer.from(output).toString('base64') };
  return output === undefined ? null : output;
}

/**
 * CloudWatch Logs action, locally: one JSON line per message appended to the log group's file
 * (`{timestamp, logGroup, message}`). It is what the shipped rules use as their error action.
 */
export function logAction(groupTemplate: CompiledTemplate, sink: LogSink, now: () => number): CompiledAction {
  return {
    awsName: AWS_NAME,
    async run({ message, output, ctx }) {
      const logGroup = groupTemplate.render(message, ctx);
      if (logGroup === '')
        throw new RuleActionError(AWS_NAME, logGroup, 'Failed to put log events: empty log group name.');
      const line: LogLine = { timestamp: now(), logGroup, message: messageOf(output) };
      try {
        await sink.append(logGroup, JSON.stringify(line));
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        throw new RuleActionError(AWS_NAME, logGroup, `Failed to put log events to ${logGroup}: ${reason}`, err);
      }
    },
  };
}
