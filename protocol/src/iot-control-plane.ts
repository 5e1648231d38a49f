import { z } from 'zod';
import { ownRecordOf } from './issues.js';

/**
 * The request bodies of the IoT control-plane operations the local IoT Core serves, with the field
 * names of AWS's IoT service model (what `@aws-sdk/client-iot` sends). Like the policy and shadow
 * documents, this is an AWS wire format pifleet speaks, so its schemas live with the others here.
 *
 * The messages are the local IoT Core's answers (InvalidRequestException): each names the field
 * as the wire spells it. A body field that is absent or `null` is not given.
 */

const mustBeString = (field: string) => `'${field}' must be a string.`;
const isRequired = (field: string) => `'${field}' is required.`;

/** A string field that may be absent (or null). */
export const optionalStringField = (field: string) =>
  z
    .string({ error: mustBeString(field) })
    .nullish()
    .transform((v) => v ?? undefined);

/** A non-empty string field; absent, null and '' are all "required". */
export const requiredStringField = (field: string) =>
  z
    .string({
      error: (issue) => (issue.input === undefined || issue.input === null ? isRequired(field) : mustBeString(field)),
    })
    .min(1, { error: isRequired(field) });

/**
 * An integer that may be absent, given as a JSON number or as digits in a string (query parameters
 * are strings; the SDK sends body integers as numbers). Only safe integers: beyond 2^53 two
 * different versions would compare equal.
 */
export const optionalIntegerField = (field: string) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? (v.trim() === '' ? Number.NaN : Number(v)) : v),
    z
      .number({ error: `'${field}' must be an integer.` })
      .refine(Number.isSafeInteger, { error: `'${field}' must be an integer.` })
      .nullish()
      .transform((v) => v ?? undefined),
  );

/**
 * `attributePayload` of CreateThing and UpdateThing. Attribute names are data (a thing may have an
 * attribute named `__proto__`), so they are kept as own keys; the registry checks their pattern.
 */
export const attributePayloadSchema = z
  .object(
    {
      merge: z.boolean({ error: "'attributePayload.merge' must be a boolean." }).optional(),
      attributes: ownRecordOf(z.string(), {
        notObject: "'attributePayload.attributes' must be an object of strings.",
        invalidValue: (key) => `Attribute '${key}' must be a string.`,
      })
        .nullish()
        .transform((v) => v ?? undefined),
    },
    { error: "'attributePayload' must be an object." },
  )
  .nullish()
  .transform((v) => v ?? undefined);

/** A boolean field that may be absent (or null). */
export const optionalBooleanField = (field: string) =>
  z
    .boolean({ error: `'${field}' must be a boolean.` })
    .nullish()
    .transform((v) => v ?? undefined);

/** The thing type and billing group a thing may name, checked one at a time (the local core has no billing groups). */
export const thingTypeFields = {
  thingTypeName: z.object({ thingTypeName: optionalStringField('thingTypeName') }),
  billingGroupName: z.object({ billingGroupName: optionalStringField('billingGroupName') }),
} as const;

export const createThingBodySchema = z.object({
  thingTypeName: optionalStringField('thingTypeName'),
  billingGroupName: optionalStringField('billingGroupName'),
  attributePayload: attributePayloadSchema,
});
export type CreateThingBody = z.output<typeof createThingBodySchema>;

export const updateThingBodySchema = createThingBodySchema.extend({
  expectedVersion: optionalIntegerField('expectedVersion'),
  removeThingType: optionalBooleanField('removeThingType'),
});
export type UpdateThingBody = z.output<typeof updateThingBodySchema>;

/** `tags` of CreateThingType and CreateThingGroup: accepted and not kept (the local core has no tagging API). */
const ignoredTags = z.unknown().optional();

/** CreateThingType's body: `thingTypeProperties` (description, searchable attribute names). */
export const createThingTypeBodySchema = z.object({
  thingTypeProperties: z
    .object(
      {
        thingTypeDescription: optionalStringField('thingTypeProperties.thingTypeDescription'),
        searchableAttributes: z
          .array(z.string({ error: "'thingTypeProperties.searchableAttributes' must be a list of strings." }), {
            error: "'thingTypeProperties.searchableAttributes' must be a list of strings.",
          })
          .nullish()
          .transform((v) => v ?? undefined),
        // MQTT 5 propagating attributes are accepted and not applied (see the README's differences).
        mqtt5Configuration: z.unknown().optional(),
      },
      { error: "'thingTypeProperties' must be an object." },
    )
    .nullish()
    .transform((v) => v ?? undefined),
  tags: ignoredTags,
});
export type CreateThingTypeBody = z.output<typeof createThingTypeBodySchema>;

export const deprecateThingTypeBodySchema = z.object({ undoDeprecate: optionalBooleanField('undoDeprecate') });

/** `thingGroupProperties`: a description and an attribute payload (merge applies to UpdateThingGroup). */
export const thingGroupPropertiesSchema = z
  .object(
    {
      thingGroupDescription: optionalStringField('thingGroupProperties.thingGroupDescription'),
      attributePayload: attributePayloadSchema,
    },
    { error: "'thingGroupProperties' must be an object." },
  )
  .nullish()
  .transform((v) => v ?? undefined);

export const createThingGroupBodySchema = z.object({
  parentGroupName: optionalStringField('parentGroupName'),
  thingGroupProperties: thingGroupPropertiesSchema,
  tags: ignoredTags,
});
export type CreateThingGroupBody = z.output<typeof createThingGroupBodySchema>;

export const updateThingGroupBodySchema = z.object({
  thingGroupProperties: thingGroupPropertiesSchema.refine((v) => v !== undefined, {
    error: "'thingGroupProperties' is required.",
  }),
  expectedVersion: optionalIntegerField('expectedVersion'),
});

/** AddThingToThingGroup and RemoveThingFromThingGroup: the group and the thing, each by name or ARN. */
export const thingGroupMembershipBodySchema = z.object({
  thingGroupName: optionalStringField('thingGroupName'),
  thingGroupArn: optionalStringField('thingGroupArn'),
  thingName: optionalStringField('thingName'),
  thingArn: optionalStringField('thingArn'),
  overrideDynamicGroups: optionalBooleanField('overrideDynamicGroups'),
});

export const createCertificateFromCsrBodySchema = z.object({
  certificateSigningRequest: requiredStringField('certificateSigningRequest'),
});

export const createPolicyBodySchema = z.object({ policyDocument: requiredStringField('policyDocument') });

/** AttachPolicy and DetachPolicy: the certificate ARN the policy is attached to or detached from. */
export const policyTargetBodySchema = z.object({ target: requiredStringField('target') });

/**
 * A header value of a republish action (IoT's `MqttHeaders`): a string of at most 1024
 * characters, or absent. What it must render to is the rules engine's check.
 */
const headerValue = (field: string) =>
  z
    .string({ error: mustBeString(field) })
    .max(1024, { error: `'${field}' must be at most 1024 characters.` })
    .nullish()
    .transform((v) => v ?? undefined);

const userPropertyString = (field: string) =>
  z
    .string({
      error: (issue) => (issue.input === undefined || issue.input === null ? isRequired(field) : mustBeString(field)),
    })
    .max(1024, { error: `'${field}' must be at most 1024 characters.` });

/** `RepublishAction.headers`: MQTT 5 properties of the republished message, each a substitution template. */
export const mqttHeadersSchema = z
  .object(
    {
      payloadFormatIndicator: headerValue('headers.payloadFormatIndicator'),
      contentType: headerValue('headers.contentType'),
      responseTopic: headerValue('headers.responseTopic'),
      correlationData: headerValue('headers.correlationData'),
      messageExpiry: headerValue('headers.messageExpiry'),
      userProperties: z
        .array(
          z.object(
            {
              key: userPropertyString('headers.userProperties.key'),
              value: userPropertyString('headers.userProperties.value'),
            },
            { error: "'headers.userProperties' must be an array of {key, value} objects." },
          ),
          { error: "'headers.userProperties' must be an array." },
        )
        .min(1, { error: "'headers.userProperties' must have 1 to 100 entries." })
        .max(100, { error: "'headers.userProperties' must have 1 to 100 entries." })
        .nullish()
        .transform((v) => v ?? undefined),
    },
    { error: "'headers' must be an object." },
  )
  .nullish()
  .transform((v) => v ?? undefined);
export type MqttHeaders = NonNullable<z.output<typeof mqttHeadersSchema>>;

/** `RepublishAction`: topic (a substitution template), QoS 0 or 1 (default 0), the role IoT publishes with. */
export const republishActionSchema = z.object(
  {
    topic: requiredStringField('republish.topic'),
    roleArn: requiredStringField('republish.roleArn'),
    qos: z
      .union([z.literal(0), z.literal(1)], { error: "'republish.qos' must be 0 or 1." })
      .nullish()
      .transform((v) => v ?? 0),
    headers: mqttHeadersSchema,
  },
  { error: "'republish' must be an object." },
);

/**
 * One entry of `actions` (or the `errorAction`): an object naming one action. Only the action
 * kinds the local IoT Core carries out are parsed; the caller refuses the others by name.
 */
export const topicRuleActionSchema = ownRecordOf(z.unknown(), { notObject: 'An action must be an object.' });

/** CreateTopicRule's body (`TopicRulePayload`). */
export const topicRulePayloadSchema = z.object(
  {
    sql: requiredStringField('sql'),
    description: optionalStringField('description'),
    awsIotSqlVersion: optionalStringField('awsIotSqlVersion'),
    ruleDisabled: z
      .boolean({ error: "'ruleDisabled' must be a boolean." })
      .nullish()
      .transform((v) => v ?? false),
    actions: z.array(topicRuleActionSchema, {
      error: (issue) =>
        issue.input === undefined || issue.input === null ? isRequired('actions') : "'actions' must be an array.",
    }),
    errorAction: topicRuleActionSchema.nullish().transform((v) => v ?? undefined),
  },
  { error: 'The topic rule payload must be an object.' },
);
export type TopicRulePayload = z.output<typeof topicRulePayloadSchema>;
