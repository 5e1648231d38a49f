import {
  type MqttHeaders,
  republishActionSchema,
  type TopicRulePayload,
  topicRulePayloadSchema,
  type Validation,
  validateWith,
} from '@pifleet/protocol';
import { ApiError, invalidRequest } from '../http/errors.js';
import type { ApiResponse, Route, RouteGroup } from '../http/server.js';
import type { AccountContext } from '../ports/identity.js';
import { RuleLoadError } from './actions/errors.js';
import {
  type RepublishHeaders,
  RULE_ERROR_LOG_GROUP,
  RULE_NAME_PATTERN,
  RULE_SQL_VERSION,
  type RuleAction,
  type RuleDefinition,
} from './definitions.js';
import type { RulesEngine } from './engine.js';

/**
 * CreateTopicRule, GetTopicRule and DeleteTopicRule of the IoT control plane, wire-compatible with
 * `@aws-sdk/client-iot`, onto the running rules engine. A created rule is compiled exactly as the
 * rule file's rules are: bad SQL is IoT's 400 SqlParseException with the line and column, any
 * other mistake a 400 InvalidRequestException, and nothing is created. The local core carries
 * out the `republish` action of a created rule (the other AWS action kinds call services it does
 * not have); a rule without an error action reports failures to the core's rule error log, as
 * the shipped rules do. Created rules live as long as the core process (they are not persisted).
 */

export interface TopicRuleRoutesDeps {
  readonly rules: Pick<RulesEngine, 'has' | 'addRule' | 'removeRule'>;
  readonly account: AccountContext;
  readonly now: () => number;
}

/** Every action kind of IoT's `Action` shape; a created rule may use only those in {@link RUNNABLE}. */
const AWS_ACTION_KINDS = new Set([
  'dynamoDB',
  'dynamoDBv2',
  'lambda',
  'sns',
  'sqs',
  'kinesis',
  'republish',
  's3',
  'firehose',
  'cloudwatchMetric',
  'cloudwatchAlarm',
  'cloudwatchLogs',
  'elasticsearch',
  'salesforce',
  'iotAnalytics',
  'iotEvents',
  'iotSiteWise',
  'stepFunctions',
  'timestream',
  'http',
  'kafka',
  'openSearch',
  'location',
]);
const RUNNABLE = ['republish'];

/** IoT's limit on actions per rule. */
const MAX_ACTIONS = 10;

function valid<T>(result: Validation<T>, prefix = ''): T {
  if (result.ok) return result.value;
  throw invalidRequest(`${prefix}${result.issues[0]?.message ?? 'The request is not valid.'}`);
}

function headersOf(h: MqttHeaders): RepublishHeaders {
  const out: { -readonly [K in keyof RepublishHeaders]: RepublishHeaders[K] } = {};
  if (h.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = h.payloadFormatIndicator;
  if (h.contentType !== undefined) out.contentType = h.contentType;
  if (h.responseTopic !== undefined) out.responseTopic = h.responseTopic;
  if (h.correlationData !== undefined) out.correlationData = h.correlationData;
  if (h.messageExpiry !== undefined) out.messageExpiry = h.messageExpiry;
  if (h.userProperties !== undefined) out.userProperties = h.userProperties.map(({ key, value }) => ({ key, value }));
  return out;
}

/** One entry of `actions` (or the error action) as the engine's action, or IoT's 400 naming it. */
function ruleAction(raw: Record<string, unknown>, where: string): RuleAction {
  const kinds = Object.keys(raw);
  if (kinds.length !== 1) {
    throw invalidRequest(
      `${where} must name exactly one action, not ${kinds.length === 0 ? 'none' : kinds.join(', ')}.`,
    );
  }
  const kind = kinds[0] as string;
  if (!AWS_ACTION_KINDS.has(kind)) throw invalidRequest(`${where}: ${JSON.stringify(kind)} is not an IoT rule action.`);
  if (!RUNNABLE.includes(kind)) {
    throw invalidRequest(
      `${where}: the local IoT Core does not carry out the ${kind} action (it can: ${RUNNABLE.join(', ')}).`,
    );
  }
  const republish = valid(validateWith(republishActionSchema, raw[kind]), `${where}: `);
  return {
    kind: 'republish',
    topic: republish.topic,
    qos: republish.qos,
    ...(republish.headers === undefined ? {} : { headers: headersOf(republish.headers) }),
  };
}

function definitionOf(ruleName: string, payload: TopicRulePayload): RuleDefinition {
  // AWS evaluates a rule without a version as 2015-10-08, which this engine does not implement:
  // running it as 2016-03-23 would give different answers than AWS, so the version must be said.
  if (payload.awsIotSqlVersion !== RULE_SQL_VERSION) {
    throw invalidRequest(
      payload.awsIotSqlVersion === undefined
        ? `'awsIotSqlVersion' is required by the local IoT Core, which evaluates ${RULE_SQL_VERSION} only (AWS's default is 2015-10-08).`
        : `SQL version ${payload.awsIotSqlVersion} is not supported by the local IoT Core (${RULE_SQL_VERSION} is).`,
    );
  }
  if (payload.actions.length > MAX_ACTIONS) {
    throw invalidRequest(`A rule can have at most ${MAX_ACTIONS} actions, not ${payload.actions.length}.`);
  }
  return {
    name: ruleName,
    description: payload.description ?? '',
    sql: payload.sql,
    sqlVersion: RULE_SQL_VERSION,
    actions: payload.actions.map((a, i) => ruleAction(a, `actions[${i}]`)),
    errorAction:
      payload.errorAction === undefined
        ? { kind: 'log', logGroup: RULE_ERROR_LOG_GROUP }
        : ruleAction(payload.errorAction, 'errorAction'),
  };
}

/** A compile failure as IoT answers it: SQL problems are SqlParseException, the rest InvalidRequestException. */
function loadFailure(err: unknown): never {
  if (err instanceof RuleLoadError) {
    const data = err.data as { where?: string } | undefined;
    const message = err.message;
    if (data?.where === 'sql') throw new ApiError('SqlParseException', 400, message, { cause: err });
    throw invalidRequest(message, err);
  }
  throw err;
}

interface CreatedRule {
  readonly payload: TopicRulePayload;
  readonly createdAt: number;
}

export function topicRuleRoutes(deps: TopicRuleRoutesDeps): RouteGroup {
  const created = new Map<string, CreatedRule>();
  const ruleArn = (name: string) => `arn:aws:iot:${deps.account.region}:${deps.account.accountId}:rule/${name}`;
  const ruleNameOf = (params: Readonly<Record<string, string | undefined>>): string => {
    const name = params.ruleName ?? '';
    if (!RULE_NAME_PATTERN.test(name)) {
      throw invalidRequest(
        `1 validation error detected: Value '${name}' at 'ruleName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9_]+$ and have length 1 to 128.`,
      );
    }
    return name;
  };
  const notFound = (name: string) =>
    new ApiError('UnauthorizedException', 401, `Rule ${name} does not exist or you are not authorized to access it.`);

  const routes: Route[] = [
    {
      method: 'POST',
      path: '/rules/{ruleName}',
      operation: 'CreateTopicRule',
      async handle(request): Promise<ApiResponse> {
        const name = ruleNameOf(request.params);
        const payload = valid(validateWith(topicRulePayloadSchema, request.json()));
        if (deps.rules.has(name)) {
          throw new ApiError('ResourceAlreadyExistsException', 409, `Rule ${name} already exists.`, {
            fields: { resourceId: name, resourceArn: ruleArn(name) },
          });
        }
        const def = definitionOf(name, payload);
        try {
          await deps.rules.addRule(def, { disabled: payload.ruleDisabled });
        } catch (err) {
          loadFailure(err);
        }
        created.set(name, { payload, createdAt: deps.now() });
        return { json: {} };
      },
    },
    {
      method: 'GET',
      path: '/rules/{ruleName}',
      operation: 'GetTopicRule',
      handle(request): ApiResponse {
        const name = ruleNameOf(request.params);
        const rule = created.get(name);
        if (rule === undefined) throw notFound(name);
        const { payload } = rule;
        return {
          json: {
            ruleArn: ruleArn(name),
            rule: {
              ruleName: name,
              sql: payload.sql,
              description: payload.description ?? '',
              createdAt: rule.createdAt / 1000,
              actions: payload.actions,
              ruleDisabled: payload.ruleDisabled,
              awsIotSqlVersion: payload.awsIotSqlVersion,
              ...(payload.errorAction === undefined ? {} : { errorAction: payload.errorAction }),
            },
          },
        };
      },
    },
    {
      method: 'DELETE',
      path: '/rules/{ruleName}',
      operation: 'DeleteTopicRule',
      async handle(request): Promise<ApiResponse> {
        const name = ruleNameOf(request.params);
        // Only rules created through the API: the rule file's rules are the deployment's.
        if (!created.has(name)) throw notFound(name);
        created.delete(name);
        await deps.rules.removeRule(name);
        return { json: {} };
      },
    },
  ];
  return { name: 'iot-topic-rules', signingNames: ['iot'], routes };
}
