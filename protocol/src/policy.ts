import { z } from 'zod';
import { ownRecordOf, type PathIssue } from './issues.js';
import { jobsTopicResource } from './jobs-topics.js';
import { parseJson } from './json.js';
import { appTopicResource } from './topics.js';

/** An AWS IoT policy document (the subset of IAM policy grammar IoT Core evaluates). */
export interface IotPolicyDocument {
  Version: '2012-10-17';
  Statement: IotPolicyStatement[];
}

/**
 * One statement. As in IAM, it has exactly one of `Action` and `NotAction` and exactly one of
 * `Resource` and `NotResource` ({@link iotPolicyDocumentSchema} checks both): `NotAction` covers
 * every action except those listed, `NotResource` every resource except those listed.
 */
export interface IotPolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

const POLICY_VERSION = '2012-10-17';

/** What each part of a statement must be (the local IoT Core answers with these, prefixed by the statement). */
export const POLICY_PART_MESSAGES = {
  Effect: "Effect must be 'Allow' or 'Deny'.",
  Action: 'Action must be a non-empty string or list of strings.',
  NotAction: 'NotAction must be a non-empty string or list of strings.',
  Resource: 'Resource must be a non-empty string or list of strings.',
  NotResource: 'NotResource must be a non-empty string or list of strings.',
  Condition: 'Condition must map operators to {key: value or [values]}.',
  Sid: 'Sid must be a string.',
  OneAction: 'A statement must have exactly one of Action and NotAction.',
  OneResource: 'A statement must have exactly one of Resource and NotResource.',
} as const;

const stringOrList = (message: string) =>
  z.union(
    [
      z.string({ error: message }).min(1, { error: message }),
      z.array(z.string({ error: message }).min(1, { error: message })).min(1, { error: message }),
    ],
    { error: message },
  );

const conditionValue = z.union([z.string(), z.array(z.string())], { error: POLICY_PART_MESSAGES.Condition });
const conditionMessages = {
  notObject: POLICY_PART_MESSAGES.Condition,
  invalidValue: () => POLICY_PART_MESSAGES.Condition,
};
/**
 * Operator → condition key → value or values. Operators and keys are kept as own keys whatever
 * their name: an operator the evaluator does not know (`__proto__` among them) must reach it,
 * so that an Allow under it grants nothing and a Deny under it applies.
 */
const conditionSchema = ownRecordOf(ownRecordOf(conditionValue, conditionMessages), conditionMessages);

/**
 * Exactly one of each pair, as IAM's grammar says (`<action_block> = ("Action" | "NotAction") :
 * ...`). The issue sits on the positive member's path (`Action`, `Resource`), so it is reported in
 * that part's turn.
 */
const exactlyOneOf =
  (positive: 'Action' | 'Resource', negative: 'NotAction' | 'NotResource', message: string) =>
  (ctx: z.core.ParsePayload<Partial<Record<'Action' | 'NotAction' | 'Resource' | 'NotResource', unknown>>>) => {
    // A malformed member is reported as such first; whether the pair is complete is asked after.
    if (ctx.issues.length > 0 || (ctx.value[positive] === undefined) !== (ctx.value[negative] === undefined)) return;
    ctx.issues.push({ code: 'custom', message, input: ctx.value, path: [positive] });
  };

const statementSchema = z
  .object(
    {
      Effect: z.enum(['Allow', 'Deny'], { error: POLICY_PART_MESSAGES.Effect }),
      Action: stringOrList(POLICY_PART_MESSAGES.Action).exactOptional(),
      NotAction: stringOrList(POLICY_PART_MESSAGES.NotAction).exactOptional(),
      Resource: stringOrList(POLICY_PART_MESSAGES.Resource).exactOptional(),
      NotResource: stringOrList(POLICY_PART_MESSAGES.NotResource).exactOptional(),
      Condition: conditionSchema.exactOptional(),
      Sid: z.string({ error: POLICY_PART_MESSAGES.Sid }).exactOptional(),
    },
    { error: 'A policy statement must be an object.' },
  )
  .check(exactlyOneOf('Action', 'NotAction', POLICY_PART_MESSAGES.OneAction))
  .check(exactlyOneOf('Resource', 'NotResource', POLICY_PART_MESSAGES.OneResource));

/**
 * An IoT policy document as IoT Core accepts it: `Version` 2012-10-17 and one or more statements
 * (a single statement object is read as a list of one), each with `Effect` Allow or Deny, one of
 * `Action`/`NotAction` and one of `Resource`/`NotResource` as a non-empty string or list of
 * strings, and an optional `Condition` map. Keys the grammar does not name are left out
 * of the result; the evaluator reads only these.
 */
export const iotPolicyDocumentSchema: z.ZodType<IotPolicyDocument> = z.object(
  {
    Version: z.literal(POLICY_VERSION, { error: `Version must be '${POLICY_VERSION}'.` }),
    Statement: z.preprocess(
      (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]),
      z.array(statementSchema).min(1, { error: 'The policy document has no Statement.' }),
    ),
  },
  { error: 'The policy document must be a JSON object.' },
);

export type PolicyDocumentResult =
  | { readonly ok: true; readonly value: IotPolicyDocument }
  | { readonly ok: false; readonly reason: 'syntax' | 'depth'; readonly message: string }
  | { readonly ok: false; readonly reason: 'schema'; readonly issues: readonly PathIssue[] };

/**
 * Parses a policy document's text: JSON through {@link parseJson} (so its depth is bounded before
 * anything walks it), then {@link iotPolicyDocumentSchema}. Every problem is a result, never a throw.
 */
export function parseIotPolicyDocument(text: string): PolicyDocumentResult {
  const json = parseJson(text);
  if (!json.ok) return json;
  const result = iotPolicyDocumentSchema.safeParse(json.value);
  if (result.success) return { ok: true, value: result.data };
  return {
    ok: false,
    reason: 'schema',
    issues: result.error.issues.map((i) => ({ path: i.path, message: i.message })),
  };
}

export const THING_NAME_VARIABLE = '${iot:Connection.Thing.ThingName}';

/** The name under which provisioning creates the recommended policy. */
export const RECOMMENDED_POLICY_NAME = 'pifleet-device';

/**
 * IoT Core's limit on a policy document: 2,048 characters, whitespace not counted (CreatePolicy's
 * `policyDocument`, AWS IoT API Reference). A longer document is refused by CreatePolicy.
 */
export const POLICY_DOCUMENT_MAX_CHARS = 2048;

/** A policy document's length as IoT Core measures it against {@link POLICY_DOCUMENT_MAX_CHARS}. */
export function policyDocumentLength(text: string): number {
  return text.replace(/\s/g, '').length;
}

/**
 * The recommended least-privilege device policy. One policy serves the whole fleet because
 * every resource is scoped by the `${iot:Connection.Thing.ThingName}` policy variable: a device
 * may connect only with its own thing name as client id, and only while its certificate is
 * attached to that thing; it may publish only its own telemetry and status topics and requests to
 * its own shadows and jobs, and subscribe to and receive only its own commands and the answers and
 * notifications under its own `$aws/things/{thing}/` topics.
 *
 * Publishing is granted per request, so a device can never publish what only the services publish
 * (`…/accepted`, `…/rejected`, `…/delta`, `…/documents`, `jobs/notify…`) and fool a rule or an
 * application that listens there. The request topics are written with a leading `*` (`shadow/*get`
 * is `shadow/get` and `shadow/name/{name}/get`; `jobs/*get` is `jobs/get` and `jobs/{jobId}/get`),
 * and receiving is one grant over the thing's own reserved topics: listed one topic at a time, the
 * shadow's six requests and twelve answers and the jobs client's four requests, eight answers and
 * two notifications made a document of ~4,800 characters, and IoT Core refuses a policy over 2,048
 * ({@link POLICY_DOCUMENT_MAX_CHARS}).
 */
export function recommendedDevicePolicy(region: string, accountId: string): IotPolicyDocument {
  const arn = (kind: 'client' | 'topic' | 'topicfilter', rest: string) =>
    `arn:aws:iot:${region}:${accountId}:${kind}/${rest}`;
  const t = THING_NAME_VARIABLE;
  const shadow = (suffix: string) => `$aws/things/${t}/shadow/${suffix}`;
  const jobs = (suffix: string) => jobsTopicResource(t, suffix);
  /** Everything IoT Core publishes to this thing: shadow and jobs answers and notifications. */
  const ownReserved = `$aws/things/${t}/*`;
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'ConnectAsOwnThing',
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: arn('client', t),
        Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      },
      {
        Sid: 'PublishOwnTopics',
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: [
          arn('topic', appTopicResource('telemetry', t)),
          arn('topic', appTopicResource('status', t)),
          arn('topic', shadow('*get')),
          arn('topic', shadow('*update')),
          arn('topic', shadow('*delete')),
          arn('topic', jobs('*get')),
          arn('topic', jobs('start-next')),
          arn('topic', jobs('*update')),
        ],
      },
      {
        // IoT Core also requires iot:RetainPublish for a retained PUBLISH (and a retained will):
        // the status topic is retained, with the offline status as the last will.
        Sid: 'RetainOwnStatus',
        Effect: 'Allow',
        Action: 'iot:RetainPublish',
        Resource: arn('topic', appTopicResource('status', t)),
      },
      {
        Sid: 'SubscribeOwn',
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: [arn('topicfilter', ownReserved), arn('topicfilter', appTopicResource('commands', t))],
      },
      {
        Sid: 'ReceiveOwn',
        Effect: 'Allow',
        Action: 'iot:Receive',
        Resource: [arn('topic', ownReserved), arn('topic', appTopicResource('commands', t))],
      },
    ],
  };
}
