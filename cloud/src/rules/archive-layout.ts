import type { ArchiveStream } from './definitions.js';

/**
 * The archive's key layout, written once for both sides of an {@link ArchiveStream}: the CDK app
 * turns it into Firehose's prefix expressions, the local archive action into the same keys.
 *
 *   data   `<prefix>thing=<thing>/date=<yyyy-MM-dd>/<name>-1-<yyyy-MM-dd-HH-mm-ss>-<uuid>.jsonl.gz`
 *   errors `<errorPrefix><error type>/date=<yyyy-MM-dd>/<name>-1-<yyyy-MM-dd-HH-mm-ss>-<uuid>.jsonl.gz`
 *
 * Hive-style `name=value` segments, so Athena or Glue can read `thing` and `date` as partition
 * columns without listing a schema for them. Dates and times are UTC, of the oldest record in the
 * object (what Firehose's `!{timestamp:…}` evaluates to). Object names follow Firehose's own
 * `<stream>-<version>-<time>-<random>` form, with the file extension the stream sets.
 */

/** What every archive object's name ends with: newline-delimited JSON, GZIP-compressed. */
export const ARCHIVE_FILE_EXTENSION = '.jsonl.gz';

/** The error type locally for a record whose thing field is missing or unusable as a key. */
export const PARTITIONING_FAILED = 'partitioning-failed';

/** The one partition key, as Firehose's JQ query names it. */
const THING_KEY = 'thing';

/** A thing field JQ can address as `.<field>` (and a thing name can never contain `/`). */
const FIELD_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** IoT's thing name limit, in bytes: a longer value cannot be a thing's. */
const THING_MAX_BYTES = 128;

const pad = (n: number) => String(n).padStart(2, '0');

/** `yyyy-MM-dd` of a UTC instant. */
export function archiveDay(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** `yyyy-MM-dd-HH-mm-ss` of a UTC instant, as Firehose stamps object names. */
export function archiveStamp(ms: number): string {
  const d = new Date(ms);
  return `${archiveDay(ms)}-${pad(d.getUTCHours())}-${pad(d.getUTCMinutes())}-${pad(d.getUTCSeconds())}`;
}

/** Why a stream description cannot be deployed or run, or undefined when it can. */
export function archiveStreamProblem(stream: ArchiveStream): string | undefined {
  if (!/^[a-zA-Z0-9_.-]{1,64}$/.test(stream.name)) return 'the stream name must be 1-64 of a-z A-Z 0-9 _ . -';
  for (const [what, prefix] of [
    ['prefix', stream.prefix],
    ['errorPrefix', stream.errorPrefix],
  ] as const) {
    if (!/^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*\/$/.test(prefix)) {
      return `${what} must be lower-case key segments ending with / (got ${JSON.stringify(prefix)})`;
    }
  }
  if (stream.prefix.startsWith(stream.errorPrefix) || stream.errorPrefix.startsWith(stream.prefix)) {
    return 'prefix and errorPrefix must not contain one another (failed records would look like data)';
  }
  if (!FIELD_PATTERN.test(stream.thingField)) return 'thingField must be a plain identifier (JQ reads it as .<field>)';
  return undefined;
}

/**
 * Why a record's thing field cannot name a partition, or undefined when it can: it must be a
 * non-empty string of at most 128 bytes without `/`, `\` or NUL (a thing name from a topic level
 * always is; anything else is someone else's rule or a bug, and goes to the error prefix).
 */
export function thingPartitionProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return `the thing field is ${value === undefined ? 'missing' : 'not a string'}`;
  if (value === '') return 'the thing field is empty';
  if (Buffer.byteLength(value) > THING_MAX_BYTES) return `the thing field is longer than ${THING_MAX_BYTES} bytes`;
  if (value.includes('/') || value.includes('\\') || value.includes('\u0000'))
    return 'the thing field contains /, \\ or NUL';
  return undefined;
}

/** The key prefix of one thing's records of one day. */
export function archivePartitionPrefix(stream: ArchiveStream, thing: string, day: string): string {
  return `${stream.prefix}${THING_KEY}=${thing}/date=${day}/`;
}

/** The key prefix of records that failed with `errorType`, of one day. */
export function archiveErrorPrefix(stream: ArchiveStream, errorType: string, day: string): string {
  return `${stream.errorPrefix}${errorType}/date=${day}/`;
}

/** An object's name under its prefix. `oldestMs`: arrival of its oldest record. */
export function archiveObjectName(stream: ArchiveStream, oldestMs: number, uuid: string): string {
  return `${stream.name}-1-${archiveStamp(oldestMs)}-${uuid}${ARCHIVE_FILE_EXTENSION}`;
}

/** What the CDK app configures on the delivery stream for the same layout. */
export function firehoseLayout(stream: ArchiveStream) {
  return {
    /** Firehose's S3 prefix: the partition key from the JQ query, the day from the arrival time. */
    prefix: `${stream.prefix}${THING_KEY}=!{partitionKeyFromQuery:${THING_KEY}}/date=!{timestamp:yyyy-MM-dd}/`,
    errorOutputPrefix: `${stream.errorPrefix}!{firehose:error-output-type}/date=!{timestamp:yyyy-MM-dd}/`,
    /** JQ (Firehose's inline parsing): the partition key from the record's thing field. */
    metadataExtractionQuery: `{${THING_KEY}: .${stream.thingField}}`,
    fileExtension: ARCHIVE_FILE_EXTENSION,
  };
}
