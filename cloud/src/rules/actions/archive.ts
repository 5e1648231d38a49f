import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { type CompiledTemplate, type RuleOutput, serializeOutput } from '../../core/iotsql/index.js';
import {
  archiveDay,
  archiveErrorPrefix,
  archiveObjectName,
  archivePartitionPrefix,
  PARTITIONING_FAILED,
  thingPartitionProblem,
} from '../archive-layout.js';
import type { ArchiveStream } from '../definitions.js';
import { RuleActionError } from './errors.js';
import { createWorkQueue } from './queue.js';
import type { CompiledAction } from './types.js';

const AWS_NAME = 'S3Action';
const FIREHOSE_AWS_NAME = 'FirehoseAction';
const MADE_DIRS_MAX = 50_000;
const gzip = promisify(gzipCallback);

/**
 * Checks an object key for use as a relative path under the archive directory. S3 accepts
 * almost any key; locally a key must not climb out of the directory or name a directory.
 */
export function checkArchiveKey(key: string): string | undefined {
  if (key === '') return 'the key is empty';
  if (Buffer.byteLength(key) > 1024) return 'the key is longer than 1024 bytes';
  if (key.startsWith('/')) return 'the key starts with /';
  if (key.endsWith('/')) return 'the key ends with /';
  if (key.includes('\\') || key.includes('\u0000')) return 'the key contains \\ or NUL';
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return `the key has an empty, . or .. segment`;
  }
  return undefined;
}

/**
 * Writes whole objects: to a temporary file beside the object, then renamed, so a
 * reader never sees half an object (and never a name without `.tmp` that is not whole).
 */
function atomicWriter() {
  // Directories made already: one object per message under a per-thing prefix would otherwise
  // cost a mkdir per message (half of the S3 action's time at 200 messages/s). Bounded; a
  // directory removed behind the writer's back is made again on ENOENT.
  const made = new Set<string>();
  const ensureDir = async (d: string) => {
    if (made.has(d)) return;
    await mkdir(d, { recursive: true });
    if (made.size >= MADE_DIRS_MAX) made.clear();
    made.add(d);
  };
  return async (file: string, body: string | Uint8Array) => {
    const d = dirname(file);
    const temp = `${file}.${randomUUID()}.tmp`;
    try {
      await ensureDir(d);
      try {
        await writeFile(temp, body, { flag: 'wx' });
      } catch (err) {
        if ((err as { code?: string }).code !== 'ENOENT') throw err;
        made.delete(d);
        await ensureDir(d);
        await writeFile(temp, body, { flag: 'wx' });
      }
      await rename(temp, file);
    } catch (err) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw err;
    }
  };
}

/**
 * Archive action (S3 in AWS): the SELECT output, serialized, to a file at the rendered key under
 * `dir`, one object per message. A key written twice keeps the last write, as S3 does.
 */
export function archiveAction(keyTemplate: CompiledTemplate, dir: string): CompiledAction {
  const root = resolve(dir);
  const put = atomicWriter();
  return {
    awsName: AWS_NAME,
    async run({ message, output, ctx }) {
      const key = keyTemplate.render(message, ctx);
      const invalid = checkArchiveKey(key);
      if (invalid !== undefined) {
        throw new RuleActionError(AWS_NAME, key, `Failed to put object: ${invalid} (key ${JSON.stringify(key)}).`);
      }
      const file = join(root, key);
      if (!file.startsWith(root + sep)) {
        throw new RuleActionError(AWS_NAME, key, 'Failed to put object: the key leaves the archive directory.');
      }
      try {
        await put(file, serializeOutput(output));
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        throw new RuleActionError(AWS_NAME, key, `Failed to put object ${key}: ${reason}`, err);
      }
    },
  };
}

/**
 * How the local archive buffers, Firehose's buffering hints in small: a partition is written when
 * it holds `maxObjectBytes` or when its oldest record is `maxAgeMs` old, whichever comes first.
 */
export interface ArchiveBuffering {
  /**
   * Uncompressed bytes of one partition that make it written at once (Firehose: the buffer size,
   * at least 64 MiB with dynamic partitioning). Default 1 MiB: a thing at one 1 KB message per
   * 10 s never reaches it within `maxAgeMs`, so it only bounds one object of a chatty thing.
   */
  readonly maxObjectBytes?: number;
  /**
   * Time from a partition's first record to its write (Firehose: the buffer interval, 60-900 s
   * with dynamic partitioning). Default 60 s, Firehose's shortest: at 10,000 things sending every
   * 10 s that is about 170 objects/s instead of 1,000 files/s, and the demo sees objects within a
   * minute. A shorter interval gives more, smaller objects; a partition only ever holds one day.
   */
  readonly maxAgeMs?: number;
  /**
   * Bytes held over all partitions, objects being written included: past it, every partition is
   * written at once (bounded memory whatever the fleet). Default 64 MiB, one minute of 10,000
   * things at 1 KB per 10 s; a record that still does not fit because writes fail is refused
   * (a failed action, transient when the disk is full: the device sends it again).
   */
  readonly maxBufferedBytes?: number;
  /** Objects written at once (gzip and file). Default 8. */
  readonly writeConcurrency?: number;
}

export const DEFAULT_ARCHIVE_BUFFERING = {
  maxObjectBytes: 1024 * 1024,
  maxAgeMs: 60_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  writeConcurrency: 8,
} as const satisfies Required<ArchiveBuffering>;

export interface ArchiveBufferStats {
  /** Records and bytes held in memory now (objects being written included). */
  readonly bufferedRecords: number;
  readonly bufferedBytes: number;
  readonly partitions: number;
  readonly objectsWritten: number;
  readonly recordsWritten: number;
  /** Writes that failed (their records were kept and are tried again). */
  readonly writeFailures: number;
}

/** A compiled action whose records wait in memory until a flush. */
export interface BufferedAction extends CompiledAction {
  /** Writes every partition now; resolves once each write has finished or failed, with the records still held. */
  flush(): Promise<number>;
  stats(): ArchiveBufferStats;
}

export interface FirehoseActionDeps {
  readonly dir: string;
  readonly buffering?: ArchiveBuffering;
  readonly newUuid?: () => string;
  /** Told about each failed write (its records are kept for the next attempt). */
  readonly onWriteError?: (err: unknown, key: string, records: number) => void;
}

interface Partition {
  /** Key prefix of the partition's objects (ends with `/`). */
  readonly prefix: string;
  chunks: string[];
  bytes: number;
  /** Arrival of the oldest record, ms (names the object, as Firehose's timestamp does). */
  oldest: number;
  timer: NodeJS.Timeout | undefined;
}

/** The output as a record's fields when it is a JSON object (not an array, bytes or a scalar). */
const fieldsOf = (output: RuleOutput): Readonly<Record<string, unknown>> | undefined =>
  typeof output === 'object' && output !== null && !Array.isArray(output) && !(output instanceof Uint8Array)
    ? (output as Readonly<Record<string, unknown>>)
    : undefined;

/**
 * Firehose action (a delivery stream with dynamic partitioning in AWS), run locally the way the
 * stream runs: each record (the SELECT output, one JSON line) joins the in-memory partition of its
 * thing and day; a partition is written as ONE gzip object of JSON lines under the keys of
 * `archive-layout.ts` when it is full or old enough (see {@link ArchiveBuffering}), or on
 * {@link BufferedAction.flush} (the engine flushes on stop, so a clean stop loses nothing).
 *
 * `run` resolves once the record is buffered, as IoT's Firehose action succeeds once the stream
 * has the record: the message is acknowledged before its object exists. A crash of the core loses
 * what is buffered (at most `maxAgeMs` of records, at most `maxBufferedBytes`); the telemetry
 * store, not the archive, is the durable record of what was acknowledged. A failed write keeps its
 * records in memory for the next attempt; the memory bound turns persistent failures into failed
 * actions instead of unbounded growth.
 *
 * A record without a usable thing field (not an object, the field missing, empty, not a string,
 * or with `/`) goes to the error prefix, wrapped as Firehose wraps a record it could not partition.
 */
export function firehoseAction(stream: ArchiveStream, separator: string, deps: FirehoseActionDeps): BufferedAction {
  const root = resolve(deps.dir);
  const put = atomicWriter();
  const newUuid = deps.newUuid ?? randomUUID;
  const options = { ...DEFAULT_ARCHIVE_BUFFERING, ...deps.buffering };
  const partitions = new Map<string, Partition>();
  const writes = createWorkQueue({
    concurrency: options.writeConcurrency,
    highWater: Number.MAX_SAFE_INTEGER,
    onError: () => undefined,
  });
  let bufferedBytes = 0;
  let bufferedRecords = 0;
  let objectsWritten = 0;
  let recordsWritten = 0;
  let writeFailures = 0;
  let lastError: unknown;

  /** The partition of `prefix`, made (and its interval started) when it has no records yet. */
  function partitionOf(prefix: string, at: number): Partition {
    let p = partitions.get(prefix);
    if (p === undefined) {
      const timer = setTimeout(() => void queueWrite(prefix), options.maxAgeMs);
      timer.unref();
      p = { prefix, chunks: [], bytes: 0, oldest: at, timer };
      partitions.set(prefix, p);
    }
    return p;
  }

  /** Takes a partition out of the map and queues its object; resolves once written or failed. */
  function queueWrite(prefix: string): Promise<void> {
    const p = partitions.get(prefix);
    if (p === undefined) return Promise.resolve();
    partitions.delete(prefix);
    clearTimeout(p.timer);
    return new Promise<void>((done) => {
      writes.push(async () => {
        const key = `${p.prefix}${archiveObjectName(stream, p.oldest, newUuid())}`;
        try {
          const body = await gzip(Buffer.from(p.chunks.join(''), 'utf8'));
          const file = join(root, key);
          if (!file.startsWith(root + sep)) throw new Error('the key leaves the archive directory');
          await put(file, body);
          objectsWritten++;
          recordsWritten += p.chunks.length;
          bufferedBytes -= p.bytes;
          bufferedRecords -= p.chunks.length;
        } catch (err) {
          writeFailures++;
          lastError = err;
          deps.onWriteError?.(err, key, p.chunks.length);
          // Back in front of what arrived meanwhile, with a fresh interval before the next try.
          const again = partitionOf(p.prefix, p.oldest);
          again.chunks = p.chunks.concat(again.chunks);
          again.bytes += p.bytes;
          again.oldest = Math.min(again.oldest, p.oldest);
        } finally {
          done();
        }
      });
    });
  }

  async function flush(): Promise<number> {
    await Promise.all([...partitions.keys()].map(queueWrite));
    await writes.idle();
    return bufferedRecords;
  }

  return {
    awsName: FIREHOSE_AWS_NAME,
    flush,
    stats: () => ({
      bufferedRecords,
      bufferedBytes,
      partitions: partitions.size,
      objectsWritten,
      recordsWritten,
      writeFailures,
    }),
    async run({ message, output, ctx }) {
      const at = message.timestamp ?? ctx.now?.() ?? Date.now();
      const day = archiveDay(at);
      const fields = fieldsOf(output);
      // An own field only: a record's `__proto__` or inherited names never name a partition.
      const thing =
        fields !== undefined && Object.hasOwn(fields, stream.thingField) ? fields[stream.thingField] : undefined;
      const problem = fields === undefined ? 'the record is not a JSON object' : thingPartitionProblem(thing);
      let prefix: string;
      let line: string;
      if (problem === undefined) {
        prefix = archivePartitionPrefix(stream, thing as string, day);
        line = `${JSON.stringify(output)}${separator}`;
      } else {
        prefix = archiveErrorPrefix(stream, PARTITIONING_FAILED, day);
        line = `${JSON.stringify({
          attemptsMade: 1,
          arrivalTimestamp: at,
          errorCode: 'DynamicPartitioning.MetadataExtractionFailed',
          errorMessage: problem,
          rawData: Buffer.from(serializeOutput(output)).toString('base64'),
        })}${separator}`;
      }
      const invalid = checkArchiveKey(`${prefix}object`);
      if (invalid !== undefined) {
        throw new RuleActionError(FIREHOSE_AWS_NAME, stream.name, `Failed to put record: ${invalid}.`);
      }
      const bytes = Buffer.byteLength(line);
      if (bufferedBytes > 0 && bufferedBytes + bytes > options.maxBufferedBytes) {
        await flush();
        if (bufferedBytes > 0 && bufferedBytes + bytes > options.maxBufferedBytes) {
          const reason = lastError instanceof Error ? lastError.message : String(lastError);
          throw new RuleActionError(
            FIREHOSE_AWS_NAME,
            stream.name,
            `Failed to put record: the archive buffer is full (${bufferedBytes} bytes) and cannot be written: ${reason}`,
            lastError,
          );
        }
      }
      const p = partitionOf(prefix, at);
      p.chunks.push(line);
      p.bytes += bytes;
      bufferedBytes += bytes;
      bufferedRecords++;
      if (p.bytes >= options.maxObjectBytes) void queueWrite(prefix);
    },
  };
}
