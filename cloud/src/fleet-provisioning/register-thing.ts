import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  PROVISIONING_ERROR_CODES as CODES,
  isJsonObject,
  type JsonObject,
  PRE_PROVISIONING_HOOK_TIMEOUT_MS,
  type PreProvisioningHookEvent,
  provisionTopics,
  REGISTER_THING_LIMITS,
  type RegisterThingResponse,
  templateOfProvisionRequest,
} from '@pifleet/protocol';
import { type Logger, silentLogger } from '../logger.js';
import type { PolicyPlan, ProvisioningPlan, TemplateForProvisioning, ThingPlan } from '../provisioning/index.js';
import { evaluateCheckedTemplate } from '../provisioning/template-language.js';
import { RegistryError } from '../registry/errors.js';
import type { Registry } from '../registry/sqlite-registry.js';
import {
  checkAttributes,
  checkPolicyDocument,
  checkPolicyName,
  checkThingName,
  MAX_ATTRIBUTES,
  MAX_UNTYPED_ATTRIBUTES,
} from '../registry/validation.js';
import { type Answering, createAnswering, ProvisioningRejection, parseRequestObject } from './answering.js';
import type { OwnershipTokenConsumer } from './ownership-tokens.js';

/**
 * RegisterThing over MQTT (`$aws/provisioning-templates/{name}/provision/json`): a device that
 * holds a certificate made by CreateKeysAndCertificate or CreateCertificateFromCsr proves it with
 * the certificate's ownership token and is provisioned by the template: the template's default
 * version is evaluated with the request's parameters (after the pre-provisioning hook, if the
 * template has one, allowed them and added its overrides), the thing, certificate status, policies
 * and attachments it describes are made, and the device is answered with the thing's name and the
 * template's `DeviceConfiguration`.
 *
 * In this order, each a rejection on `…/rejected` ({statusCode, errorCode, errorMessage}; the codes
 * are protocol's PROVISIONING_ERROR_CODES):
 *  1. the payload: UTF-8 JSON object, a token, `parameters` a map of strings (400 InvalidPayload);
 *  2. the template: it exists (404), is enabled and is a fleet provisioning template (400);
 *  3. the token: consumed here, once, whatever happens next (400 InvalidCertificateOwnershipToken):
 *     a device refused after this point asks for a new certificate, and its pending one is deleted
 *     when the token would have expired;
 *  4. the hook: called with AWS's event, it must answer `allowProvisioning: true` within 5 s; a
 *     denial, a failure, a timeout or an answer of the wrong shape is 403 AccessDenied, as AWS
 *     documents ("the provisioning request fails with ACCESS_DENIED");
 *  5. the template, evaluated (400 ResourceRegistrationFailure: a missing parameter, an index out of
 *     range, …), and the plan checked against the registry before anything is changed (the thing
 *     type, groups and named policies exist; names, attributes and documents are valid; an existing
 *     thing with an override setting of FAIL that would change: 409 ConflictingResourceUpdate);
 *  6. the plan applied, synchronously (the registry is SQLite in process: no other request runs
 *     between these steps); a failure undoes what this request created and is 500 InternalFailure.
 *
 * What AWS does not document, chosen here: an existing thing's properties are left as they are when
 * the template gives no override setting for them (DO_NOTHING); FAIL fails only when applying the
 * template would change the property; an inline policy document becomes a policy named by the
 * SHA-256 of its text (so every device provisioned with the same document shares one policy).
 */

/** A function the local core can call as a template's pre-provisioning hook: an in-process Lambda. */
export type PreProvisioningHookFunction = (event: PreProvisioningHookEvent) => Promise<unknown>;

/** Resolves a hook's targetArn to its function; undefined when there is none (the request is denied). */
export type HookResolver = (targetArn: string) => PreProvisioningHookFunction | undefined;

export interface RegisterThingDeps {
  readonly templates: { getTemplateForProvisioning(templateName: string): TemplateForProvisioning | undefined };
  readonly registry: Pick<
    Registry,
    | 'describeCertificate'
    | 'updateCertificate'
    | 'describeThing'
    | 'createThing'
    | 'updateThing'
    | 'deleteThing'
    | 'describeThingType'
    | 'describeThingGroup'
    | 'addThingToThingGroup'
    | 'removeThingFromThingGroup'
    | 'listThingGroupsForThing'
    | 'getPolicy'
    | 'createPolicy'
    | 'deletePolicy'
    | 'attachPolicy'
    | 'detachPolicy'
    | 'attachThingPrincipal'
    | 'detachThingPrincipal'
  >;
  readonly tokens: OwnershipTokenConsumer;
  readonly hooks: HookResolver;
  /** Publishes an answer to the one client that asked (QoS 0, see the broker bus's `to`). */
  readonly reply: (clientId: string, topic: string, payload: string) => Promise<void>;
  /** The certificate a connected client id connected with (the claim certificate); undefined when it is gone. */
  readonly certificateOf: (clientId: string) => string | undefined;
  readonly logger?: Logger;
  /** Default AWS's 5 seconds. */
  readonly hookTimeoutMs?: number;
}

/** Answers RegisterThing requests (`handle`) and waits for those in flight (`idle`). */
export type RegisterThingService = Answering;

/** The depth a request may nest: an object holding `parameters`, an object of strings. */
const MAX_REQUEST_DEPTH = 3;
/** A token is 43 base64url characters here; anything past this is not one of ours, refused unread. */
const MAX_TOKEN_CHARS = 2048;

const reject = (statusCode: number, errorCode: string, message: string) =>
  new ProvisioningRejection(statusCode, errorCode, message);
const invalidPayload = (message: string) => reject(400, CODES.invalidPayload, message);
const registrationFailure = (message: string) => reject(400, CODES.registrationFailure, message);
const conflict = (message: string) => reject(409, CODES.conflict, message);

interface ParsedRequest {
  readonly token: string;
  readonly parameters: Readonly<Record<string, string>>;
}

/** The request, read as hostile input. `parameters` is rebuilt with Object.fromEntries: `__proto__` is data. */
export function parseRegisterThingRequest(payload: Uint8Array): ParsedRequest {
  const doc = parseRequestObject(payload, MAX_REQUEST_DEPTH);
  const token = Object.hasOwn(doc, 'certificateOwnershipToken') ? doc.certificateOwnershipToken : undefined;
  if (typeof token !== 'string' || token.length === 0) {
    throw invalidPayload('certificateOwnershipToken is required and must be a string.');
  }
  if (token.length > MAX_TOKEN_CHARS)
    throw reject(400, CODES.invalidToken, 'The certificate ownership token is not valid.');
  const raw = Object.hasOwn(doc, 'parameters') ? doc.parameters : undefined;
  if (raw === undefined || raw === null) return { token, parameters: {} };
  if (!isJsonObject(raw)) throw invalidPayload('parameters must be an object of strings.');
  return { token, parameters: stringMap(raw, 'parameters', invalidPayload) };
}

function stringMap(
  raw: JsonObject,
  what: string,
  fail: (message: string) => ProvisioningRejection,
): Record<string, string> {
  const entries: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') throw fail(`${what}.${key.slice(0, 64)} must be a string.`);
    if (key.length > REGISTER_THING_LIMITS.maxKeyChars || value.length > REGISTER_THING_LIMITS.maxValueChars) {
      throw fail(
        `${what}: keys are at most ${REGISTER_THING_LIMITS.maxKeyChars} characters and values at most ${REGISTER_THING_LIMITS.maxValueChars}.`,
      );
    }
    entries.push([key, value]);
  }
  return Object.fromEntries(entries);
}

/** A timer that rejects after `ms`, and its cancel. */
function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rejectTimeout) => {
    timer = setTimeout(() => rejectTimeout(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** The policy name of an inline document: its SHA-256, hex (64 characters, within IoT's 128 and its pattern). */
export function inlinePolicyName(policyDocument: string): string {
  return createHash('sha256').update(policyDocument).digest('hex');
}

export function createRegisterThing(deps: RegisterThingDeps): RegisterThingService {
  const log = (deps.logger ?? silentLogger()).child({ component: 'register-thing' });
  const { registry } = deps;
  const hookTimeoutMs = deps.hookTimeoutMs ?? PRE_PROVISIONING_HOOK_TIMEOUT_MS;

  function templateFor(templateName: string): TemplateForProvisioning {
    const template = deps.templates.getTemplateForProvisioning(templateName);
    if (template === undefined) {
      throw reject(404, CODES.templateNotFound, `The provisioning template ${templateName} does not exist.`);
    }
    if (!template.enabled) {
      throw reject(400, CODES.invalidRequest, `The provisioning template ${templateName} is disabled.`);
    }
    if (template.type !== 'FLEET_PROVISIONING') {
      throw reject(
        400,
        CODES.invalidRequest,
        `The provisioning template ${templateName} is not a fleet provisioning template.`,
      );
    }
    return template;
  }

  async function runHook(
    template: TemplateForProvisioning,
    event: PreProvisioningHookEvent,
  ): Promise<Record<string, string>> {
    const hook = template.preProvisioningHook;
    if (hook === undefined) return {};
    const denied = (reason: string) => {
      log.info(
        { templateName: template.templateName, certificateId: event.certificateId, reason },
        'provisioning denied by the hook',
      );
      return reject(403, CODES.accessDenied, 'The pre-provisioning hook did not allow provisioning.');
    };
    const fn = deps.hooks(hook.targetArn);
    if (fn === undefined) throw denied(`no function for ${hook.targetArn}`);
    let answer: unknown;
    try {
      // The hook gets its own copy: nothing it does to the event reaches this request.
      answer = await within(fn(structuredClone(event)), hookTimeoutMs);
    } catch (err) {
      log.warn({ err, targetArn: hook.targetArn }, 'pre-provisioning hook failed');
      throw denied('the hook failed or timed out');
    }
    if (typeof answer !== 'object' || answer === null || Array.isArray(answer))
      throw denied('the answer is not an object');
    const result = answer as Record<string, unknown>;
    if (!Object.hasOwn(result, 'allowProvisioning') || result.allowProvisioning !== true) {
      throw denied('allowProvisioning is not true');
    }
    const overrides = Object.hasOwn(result, 'parameterOverrides') ? result.parameterOverrides : undefined;
    if (overrides === undefined || overrides === null) return {};
    if (typeof overrides !== 'object' || Array.isArray(overrides)) throw denied('parameterOverrides is not an object');
    // Held to the request's own rules: the overrides become parameters.
    return stringMap(overrides as JsonObject, 'parameterOverrides', denied);
  }

  /** Everything that can refuse the plan, checked before the registry is changed. */
  function check(plan: ProvisioningPlan, certificateId: string): void {
    const cert = plan.certificate;
    if (cert === undefined) {
      throw registrationFailure(
        'The template has no AWS::IoT::Certificate resource: it must register the certificate the device holds.',
      );
    }
    if (cert.source.kind !== 'certificateId' || cert.source.certificateId !== certificateId) {
      throw registrationFailure(
        'The template\'s certificate must be the one the device holds: CertificateId {"Ref": "AWS::IoT::Certificate::Id"}.',
      );
    }
    if (plan.thing !== undefined) checkThing(plan.thing);
    for (const policy of plan.policies) checkPolicy(policy);
  }

  function registryRefusal(err: unknown): ProvisioningRejection {
    if (err instanceof RegistryError) return registrationFailure(err.message);
    throw err;
  }

  function checkThing(thing: ThingPlan): void {
    if (thing.billingGroup !== undefined) {
      throw registrationFailure('BillingGroup is not supported by the local IoT Core (it has no billing groups).');
    }
    if (thing.packageVersions !== undefined && thing.packageVersions.length > 0) {
      throw registrationFailure(
        'PackageVersions is not supported by the local IoT Core (it has no software packages).',
      );
    }
    try {
      checkThingName(thing.thingName);
      if (thing.thingTypeName !== undefined) {
        const type = registry.describeThingType(thing.thingTypeName);
        if (type.deprecated) throw registrationFailure(`The thing type ${thing.thingTypeName} is deprecated.`);
      }
      checkAttributes(thing.attributes, thing.thingTypeName === undefined ? MAX_UNTYPED_ATTRIBUTES : MAX_ATTRIBUTES);
      for (const group of thing.thingGroups) registry.describeThingGroup(group);
    } catch (err) {
      if (err instanceof ProvisioningRejection) throw err;
      throw registryRefusal(err);
    }
    const existing = thingOrUndefined(thing.thingName);
    if (existing === undefined) return;
    const o = thing.overrideSettings;
    if (
      o.attributePayload === 'FAIL' &&
      !isDeepStrictEqual(existing.attributes, { ...existing.attributes, ...thing.attributes })
    ) {
      throw conflict(
        `The thing ${thing.thingName} exists with other attributes, and the template's override setting is FAIL.`,
      );
    }
    if (
      o.thingTypeName === 'FAIL' &&
      thing.thingTypeName !== undefined &&
      existing.thingTypeName !== thing.thingTypeName
    ) {
      throw conflict(
        `The thing ${thing.thingName} exists with another thing type, and the template's override setting is FAIL.`,
      );
    }
    if (o.thingGroups === 'FAIL') {
      const current = groupsOf(thing.thingName);
      if (thing.thingGroups.some((g) => !current.includes(g))) {
        throw conflict(
          `The thing ${thing.thingName} exists in other thing groups, and the template's override setting is FAIL.`,
        );
      }
    }
  }

  function checkPolicy(policy: PolicyPlan): void {
    try {
      if (policy.policyDocument !== undefined) checkPolicyDocument(policy.policyDocument);
      else if (policy.policyName !== undefined) {
        checkPolicyName(policy.policyName);
        registry.getPolicy(policy.policyName);
      }
    } catch (err) {
      throw registryRefusal(err);
    }
  }

  function thingOrUndefined(thingName: string) {
    try {
      return registry.describeThing(thingName);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'ResourceNotFoundException') return undefined;
      throw err;
    }
  }

  function groupsOf(thingName: string): string[] {
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = registry.listThingGroupsForThing(thingName, { pageSize: 250, token });
      names.push(...page.items.map((g) => g.groupName));
      token = page.next;
    } while (token !== undefined);
    return names;
  }

  /**
   * Makes the plan real. Synchronous on purpose: no other request can interleave. `undo` collects
   * the inverse of every change so a failure part way leaves the registry as it was.
   */
  function apply(plan: ProvisioningPlan, certificateId: string): void {
    const undo: Array<() => void> = [];
    const certificateArn = registry.describeCertificate(certificateId).certificateArn;
    try {
      const thing = plan.thing;
      if (thing !== undefined) applyThing(thing, undo);
      const policyNames: string[] = [];
      for (const policy of plan.policies) {
        if (policy.policyDocument !== undefined) {
          const name = inlinePolicyName(policy.policyDocument);
          try {
            registry.getPolicy(name);
          } catch (err) {
            if (!(err instanceof RegistryError && err.code === 'ResourceNotFoundException')) throw err;
            registry.createPolicy(name, policy.policyDocument);
            undo.push(() => registry.deletePolicy(name));
          }
          policyNames.push(name);
        } else if (policy.policyName !== undefined) policyNames.push(policy.policyName);
      }
      for (const name of policyNames) {
        registry.attachPolicy(name, certificateArn);
        undo.push(() => registry.detachPolicy(name, certificateArn));
      }
      if (thing !== undefined) {
        registry.attachThingPrincipal(thing.thingName, certificateArn);
        undo.push(() => registry.detachThingPrincipal(thing.thingName, certificateArn));
      }
      // Last: the certificate becomes usable only once everything it is for exists.
      registry.updateCertificate(certificateId, plan.certificate?.status ?? 'ACTIVE');
    } catch (err) {
      for (const step of undo.reverse()) {
        try {
          step();
        } catch (undoErr) {
          log.error({ err: undoErr }, 'RegisterThing: a step could not be undone');
        }
      }
      throw err;
    }
  }

  function applyThing(thing: ThingPlan, undo: Array<() => void>): void {
    const existing = thingOrUndefined(thing.thingName);
    if (existing === undefined) {
      registry.createThing({
        thingName: thing.thingName,
        ...(thing.thingTypeName === undefined ? {} : { thingTypeName: thing.thingTypeName }),
        attributes: { ...thing.attributes },
      });
      undo.push(() => registry.deleteThing({ thingName: thing.thingName }));
      for (const group of thing.thingGroups)
        registry.addThingToThingGroup({ thingGroupName: group, thingName: thing.thingName });
      return;
    }
    const o = thing.overrideSettings;
    const before = existing;
    const attributes = o.attributePayload === 'MERGE' || o.attributePayload === 'REPLACE';
    const type = o.thingTypeName === 'REPLACE' && thing.thingTypeName !== before.thingTypeName;
    if (attributes || type) {
      registry.updateThing({
        thingName: thing.thingName,
        ...(attributes ? { attributes: { ...thing.attributes }, merge: o.attributePayload === 'MERGE' } : {}),
        ...(type
          ? thing.thingTypeName === undefined
            ? { removeThingType: true }
            : { thingTypeName: thing.thingTypeName }
          : {}),
      });
      undo.push(() =>
        registry.updateThing({
          thingName: thing.thingName,
          attributes: { ...before.attributes },
          merge: false,
          ...(before.thingTypeName === undefined ? { removeThingType: true } : { thingTypeName: before.thingTypeName }),
        }),
      );
    }
    if (o.thingGroups === 'MERGE' || o.thingGroups === 'REPLACE') {
      const current = groupsOf(thing.thingName);
      for (const group of thing.thingGroups.filter((g) => !current.includes(g))) {
        registry.addThingToThingGroup({ thingGroupName: group, thingName: thing.thingName });
        undo.push(() => registry.removeThingFromThingGroup({ thingGroupName: group, thingName: thing.thingName }));
      }
      if (o.thingGroups === 'REPLACE') {
        for (const group of current.filter((g) => !thing.thingGroups.includes(g))) {
          registry.removeThingFromThingGroup({ thingGroupName: group, thingName: thing.thingName });
          undo.push(() => registry.addThingToThingGroup({ thingGroupName: group, thingName: thing.thingName }));
        }
      }
    }
  }

  async function perform(templateName: string, payload: Uint8Array, clientId: string): Promise<RegisterThingResponse> {
    const request = parseRegisterThingRequest(payload);
    const template = templateFor(templateName);
    const consumed = deps.tokens.consumeOwnershipToken(request.token);
    if (!consumed.ok) throw reject(400, CODES.invalidToken, consumed.error.message);
    const { certificateId } = consumed;
    let certificatePem: string;
    try {
      const cert = registry.describeCertificate(certificateId);
      if (cert.status !== 'PENDING_ACTIVATION') {
        throw reject(400, CODES.invalidToken, 'The certificate of this ownership token has been registered already.');
      }
      certificatePem = cert.certificatePem;
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'ResourceNotFoundException') {
        throw reject(400, CODES.invalidToken, 'The certificate of this ownership token no longer exists.');
      }
      throw err;
    }
    const claimCertificateId = deps.certificateOf(clientId) ?? consumed.claimCertificateId ?? '';
    const overrides = await runHook(template, {
      claimCertificateId,
      certificateId,
      certificatePem,
      templateArn: template.templateArn,
      clientId,
      parameters: request.parameters,
    });
    const parameters = { ...request.parameters, ...overrides };
    const evaluated = evaluateCheckedTemplate(template.template, parameters, { certificateId });
    if (!evaluated.ok) throw registrationFailure(evaluated.message);
    const { plan } = evaluated;
    check(plan, certificateId);
    try {
      apply(plan, certificateId);
    } catch (err) {
      // The checks above refuse what a template or its parameters can get wrong: this is the core's fault.
      log.error({ err, templateName, certificateId }, 'RegisterThing failed while applying its plan');
      throw reject(500, CODES.internalFailure, 'An internal error occurred.');
    }
    log.info({ templateName, certificateId, thingName: plan.thing?.thingName, clientId }, 'device provisioned');
    return {
      deviceConfiguration: { ...plan.deviceConfiguration },
      ...(plan.thing === undefined ? {} : { thingName: plan.thing.thingName }),
    };
  }

  return createAnswering<string>({
    log,
    what: 'RegisterThing',
    route: templateOfProvisionRequest,
    answerTopics: provisionTopics,
    perform,
    reply: deps.reply,
  });
}
