import { appTopicFilters, appTopicTemplate, presenceTopics } from '@pifleet/protocol';

/**
 * The IoT rules: the one source for the local rules engine and for the CDK app, which turns each
 * definition into an `AWS::IoT::TopicRule`. Declarative data and types only: no I/O, no imports
 * of engines or SDKs (the topics come from `@pifleet/protocol`, which is pure), so both sides can read it.
 *
 * Actions, and what each becomes in AWS and locally:
 *
 * | kind        | AWS                                                        | local IoT Core                                   |
 * |-------------|------------------------------------------------------------|--------------------------------------------------|
 * | `lambda`    | Lambda action (asynchronous invoke) of the named handler   | the same handler, in process, with the same event |
 * | `republish` | republish action (IoT Core's own broker)                   | publish on the local broker                      |
 * | `archive`   | S3 action into the archive bucket, `key` as object key     | a file under the archive directory, `key` as path |
 * | `firehose`  | Firehose action into the archive stream (buffered, GZIP, partitioned by thing and date) into the archive bucket | the same buffering in process, one gzip object per partition per flush under the archive directory, the same keys |
 * | `log`       | CloudWatch Logs action into `logGroup`                     | a structured log line (and the error log file)   |
 *
 * `topic`, `key` and `logGroup` are substitution templates (`${topic(2)}`, `${newuuid()}`, …)
 * rendered against the incoming message.
 *
 * Error paths. A rule's `errorAction` runs when one of its actions cannot be carried out, with
 * IoT Core's failure payload. Locally a handler that throws counts as a failed action (the ingest
 * handler throws `PoisonBatchError` for a batch it can never store). In AWS the Lambda action is
 * an asynchronous invoke, so the error action fires only when IoT cannot invoke the function;
 * a function that throws is retried by Lambda and then goes to the function's on-failure
 * destination, which the CDK app configures. Both keep a bad message out of the way of the rest.
 */

/** Every thing's telemetry topic, quoted as the FROM clause of IoT SQL takes it. */
const TELEMETRY = `'${appTopicFilters.telemetry}'`;

/** AWS IoT rule names: letters, digits and underscores, at most 128 characters. */
export const RULE_NAME_PATTERN = /^[a-zA-Z0-9_]{1,128}$/;

/** The only SQL version the rules use (and the local engine implements). */
export const RULE_SQL_VERSION = '2016-03-23';

/** Handlers a rule can invoke; each is a Lambda function in AWS and a function in process locally. */
export type RuleHandlerName = 'ingest' | 'presence';

/**
 * The MQTT 5 properties a republish action sets on the message it publishes: IoT's
 * `RepublishAction.headers` (the `MqttHeaders` shape of the IoT API and of CloudFormation), every
 * value a substitution template. `payloadFormatIndicator` renders to `UTF8_DATA` or
 * `UNSPECIFIED_BYTES`, `correlationData` to base64, `messageExpiry` to whole seconds.
 */
export interface RepublishHeaders {
  readonly payloadFormatIndicator?: string;
  readonly contentType?: string;
  readonly responseTopic?: string;
  readonly correlationData?: string;
  readonly messageExpiry?: string;
  readonly userProperties?: readonly { readonly key: string; readonly value: string }[];
}

export type RuleAction =
  | { readonly kind: 'lambda'; readonly handler: RuleHandlerName }
  | {
      readonly kind: 'republish';
      readonly topic: string;
      readonly qos: 0 | 1;
      readonly headers?: RepublishHeaders;
    }
  | { readonly kind: 'archive'; readonly key: string }
  | { readonly kind: 'firehose'; readonly stream: ArchiveStream; readonly separator: '\n' }
  | { readonly kind: 'log'; readonly logGroup: string };

/**
 * A buffered archive: what a `firehose` action writes into, described once for both sides. The
 * CDK app makes it an Amazon Data Firehose delivery stream with dynamic partitioning into the
 * archive bucket; the local rules engine buffers the same way (rules/actions/archive.ts). Both
 * write newline-delimited JSON, GZIP-compressed, one object per partition per buffer flush, under
 * the keys of rules/archive-layout.ts:
 *
 *   `<prefix>thing=<thing>/date=<yyyy-MM-dd>/<name>-1-<yyyy-MM-dd-HH-mm-ss>-<uuid>.jsonl.gz`
 *
 * `<thing>` is the record's `thingField` (the rule adds it from the topic, which the device policy
 * ties to the connection: a device cannot file its records under another thing), `<date>` the UTC
 * day the record arrived. A record without a usable `thingField` goes under `errorPrefix`.
 */
export interface ArchiveStream {
  /** The delivery stream's name in AWS, and the first part of every object name (both sides). */
  readonly name: string;
  /** The key prefix of the partitions (ends with `/`). */
  readonly prefix: string;
  /** The key prefix of records that could not be partitioned (ends with `/`). */
  readonly errorPrefix: string;
  /** The record field that names the thing (a top-level string). */
  readonly thingField: string;
}

/** The raw telemetry archive: every telemetry message as received, plus the topic's thing. */
export const TELEMETRY_ARCHIVE: ArchiveStream = {
  name: 'pifleet-telemetry-archive',
  prefix: 'raw/',
  errorPrefix: 'raw-errors/',
  thingField: 'topicThing',
};

export interface RuleDefinition {
  readonly name: string;
  readonly description: string;
  readonly sql: string;
  readonly sqlVersion: typeof RULE_SQL_VERSION;
  readonly actions: readonly RuleAction[];
  readonly errorAction: RuleAction;
}

/** Every rule reports failures here (a different service than any rule action, so it still works when one fails). */
export const RULE_ERROR_LOG_GROUP = '/pifleet/iot-rule-errors';

const errorAction: RuleAction = { kind: 'log', logGroup: RULE_ERROR_LOG_GROUP };

/** Degrees Celsius above which a reading raises a temperature alert. */
export const TEMPERATURE_ALERT_CELSIUS = 35;

/** The readings of a v1 batch over the alert threshold, as a nested query over the `readings` array. */
const hotReadings = `(SELECT sensor, ts, metrics.temperature AS temperature FROM readings WHERE metrics.temperature > ${TEMPERATURE_ALERT_CELSIUS})`;

/**
 * The sensor groups of a v2 batch with a temperature over the threshold. IoT SQL cannot look into a
 * column (no function over an array's elements), so the nested query filters the groups on the
 * group's `peak`, which the validator holds equal to the column's highest value; each hot group
 * comes with its temperatures and their offsets from the batch's `t0`, to find the hot readings.
 */
const hotSensors = `(SELECT sensor, peak.temperature AS temperature, dt, metrics.temperature AS temperatures FROM sensors WHERE peak.temperature > ${TEMPERATURE_ALERT_CELSIUS})`;

export const RULES: readonly RuleDefinition[] = [
  {
    name: 'pifleet_telemetry_ingest',
    description:
      'Telemetry batches to the ingest handler, which validates them and stores each reading once. ' +
      'topicThing is the thing name from the topic, which the device policy ties to the connection; ' +
      'the handler rejects a batch whose thingName differs.',
    sql: `SELECT *, topic(2) AS topicThing FROM ${TELEMETRY}`,
    sqlVersion: RULE_SQL_VERSION,
    actions: [{ kind: 'lambda', handler: 'ingest' }],
    errorAction,
  },
  {
    name: 'pifleet_telemetry_archive',
    description:
      'Every telemetry message as received (valid or not, resends included) to the raw archive stream, ' +
      'with topicThing (the thing name from the topic) added: the stream buffers the records and writes ' +
      'one GZIP object of JSON lines per thing and day per buffer flush. A payload that is not a JSON ' +
      'object has nothing to add a field to and is archived as topicThing alone.',
    sql: `SELECT *, topic(2) AS ${TELEMETRY_ARCHIVE.thingField} FROM ${TELEMETRY}`,
    sqlVersion: RULE_SQL_VERSION,
    actions: [{ kind: 'firehose', stream: TELEMETRY_ARCHIVE, separator: '\n' }],
    errorAction,
  },
  {
    name: 'pifleet_temperature_alert',
    description:
      `Republishes an alert to pifleet/{thing}/alerts when any reading of a batch has a temperature above ${TEMPERATURE_ALERT_CELSIUS} °C. ` +
      'A nested query finds them (WHERE cannot loop; a nested SELECT can): in a v1 batch over the readings array, ' +
      'and the alert lists every hot reading (readings); in a v2 batch over the sensor groups by their peak, ' +
      'and the alert lists every hot group with its temperatures and their offsets from t0 (sensors).',
    sql:
      `SELECT topic(2) AS thingName, bootId, seq, ${TEMPERATURE_ALERT_CELSIUS} AS thresholdCelsius, ` +
      `timestamp() AS raisedAt, t0, ${hotReadings} AS readings, ${hotSensors} AS sensors ` +
      `FROM ${TELEMETRY} ` +
      `WHERE NOT isUndefined(get(${hotReadings}, 0)) OR NOT isUndefined(get(${hotSensors}, 0))`,
    sqlVersion: RULE_SQL_VERSION,
    actions: [{ kind: 'republish', topic: appTopicTemplate('alerts', 'topic(2)'), qos: 1 }],
    errorAction,
  },
  {
    name: 'pifleet_presence',
    description:
      "IoT Core's connected/disconnected lifecycle events to the presence handler, which keeps each thing's connectivity record.",
    sql: `SELECT * FROM '${presenceTopics.allFilter}'`,
    sqlVersion: RULE_SQL_VERSION,
    actions: [{ kind: 'lambda', handler: 'presence' }],
    errorAction,
  },
];
