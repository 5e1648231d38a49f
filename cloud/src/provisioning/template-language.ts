import { isJsonObject, MAX_JSON_DEPTH, parseJson } from '@pifleet/protocol';

/**
 * The language of AWS IoT provisioning templates ("Provisioning templates", AWS IoT Developer
 * Guide, https://docs.aws.amazon.com/iot/latest/developerguide/provision-template.html): a JSON
 * document with `Parameters` (Type String, optional Default), `Resources` (one
 * `AWS::IoT::Thing`, one `AWS::IoT::Certificate`, any number of `AWS::IoT::Policy`, each with the
 * properties and `OverrideSettings` the guide lists), and, for fleet provisioning, `Mappings` and
 * `DeviceConfiguration`, with `Ref` and the intrinsic functions the guide names (`Fn::Join`,
 * `Fn::Select`, `Fn::FindInMap`, `Fn::Split`, `Fn::Sub`). `Conditions` with `Fn::If`,
 * `Fn::Equals`, `Fn::And`, `Fn::Or` and `Fn::Not`, and the `Condition` key of a resource, follow
 * CloudFormation's semantics: the IoT guide pages read for this module do not describe them, so
 * they are the local core's choice (the README says so). `Fn::GetAtt` is not in the guide and is
 * refused as unsupported, as any other unknown function is.
 *
 * Pure: no I/O, no clock. {@link checkProvisioningTemplate} is the static check CreateProvisioning
 * Template and CreateProvisioningTemplateVersion run; {@link evaluateProvisioningTemplate} turns a
 * template and a device's parameters into a {@link ProvisioningPlan}: what to create, which the
 * device-side RegisterThing applies.
 *
 * The body is hostile input: it is at most {@link MAX_TEMPLATE_BODY_CHARS} characters (AWS's
 * templateBody maximum), parsed with the depth limit of `parseJson` before anything recurses into
 * it, its keys are read into Maps (a `__proto__` key is data, never a prototype), and a condition
 * or resource that refers to itself is a cycle error, not a stack overflow. Every failure is a
 * result, never a throw.
 */

/** AWS's templateBody maximum (CreateProvisioningTemplate API reference: length 0–10,240). */
export const MAX_TEMPLATE_BODY_CHARS = 10_240;

/**
 * The longest string evaluation may build. Not an AWS figure: `Fn::Sub` or `Fn::Join` repeating a
 * device-supplied parameter could otherwise turn a 10 KB template and a 128 KB payload into
 * hundreds of megabytes. Far above any thing name (128), attribute value (800) or policy document
 * (2,048) IoT accepts.
 */
export const MAX_EVALUATED_STRING_CHARS = 65_536;

/** The pseudo parameter fleet provisioning sets: the ID of the certificate being registered. */
export const CERTIFICATE_ID_PSEUDO_PARAMETER = 'AWS::IoT::Certificate::Id';

/**
 * Pseudo parameters a template may name: the certificate ID (fleet provisioning) and the fields of
 * the certificate's subject that AWS documents for just-in-time provisioning. Only those the caller
 * supplies in {@link EvaluationContext} have values.
 */
export const PSEUDO_PARAMETERS: ReadonlySet<string> = new Set([
  CERTIFICATE_ID_PSEUDO_PARAMETER,
  'AWS::IoT::Certificate::CommonName',
  'AWS::IoT::Certificate::SerialNumber',
  'AWS::IoT::Certificate::Country',
  'AWS::IoT::Certificate::Organization',
  'AWS::IoT::Certificate::OrganizationalUnit',
  'AWS::IoT::Certificate::DistinguishedNameQualifier',
  'AWS::IoT::Certificate::StateName',
  'AWS::IoT::Certificate::Locality',
  'AWS::IoT::Certificate::Title',
  'AWS::IoT::Certificate::Surname',
  'AWS::IoT::Certificate::GivenName',
  'AWS::IoT::Certificate::Initials',
  'AWS::IoT::Certificate::Pseudonym',
  'AWS::IoT::Certificate::GenerationQualifier',
]);

/** CloudFormation's "remove this property" value, for a branch of `Fn::If`. */
const NO_VALUE_REF = 'AWS::NoValue';

export type TemplateErrorCode =
  /** The body is longer than {@link MAX_TEMPLATE_BODY_CHARS}. */
  | 'TEMPLATE_TOO_LARGE'
  /** Not JSON, or nested deeper than the JSON depth limit. */
  | 'TEMPLATE_NOT_JSON'
  /** Valid JSON that is not a valid template (found by the static check). */
  | 'TEMPLATE_INVALID'
  /** A declared parameter without a value or a default, or a value that is not a string. */
  | 'PARAMETER_INVALID'
  /** Evaluation with the given values failed (an index out of range, a missing map key, …). */
  | 'EVALUATION_FAILED';

export interface TemplateFailure {
  readonly ok: false;
  readonly code: TemplateErrorCode;
  readonly message: string;
}

export type OverrideAction = 'DO_NOTHING' | 'REPLACE' | 'FAIL' | 'MERGE';
const OVERRIDE_ACTIONS: readonly OverrideAction[] = ['DO_NOTHING', 'REPLACE', 'FAIL', 'MERGE'];

export type TemplateType = 'FLEET_PROVISIONING' | 'JITP';

export interface ThingPlan {
  readonly logicalName: string;
  readonly thingName: string;
  readonly thingTypeName?: string;
  readonly thingGroups: readonly string[];
  readonly billingGroup?: string;
  /** Own keys only (built with Object.fromEntries: a `__proto__` attribute is data). */
  readonly attributes: Readonly<Record<string, string>>;
  readonly packageVersions?: readonly string[];
  readonly overrideSettings: {
    readonly attributePayload?: OverrideAction;
    readonly thingTypeName?: OverrideAction;
    readonly thingGroups?: OverrideAction;
  };
}

export type CertificateSource =
  | { readonly kind: 'certificateId'; readonly certificateId: string }
  | { readonly kind: 'csr'; readonly certificateSigningRequest: string }
  | { readonly kind: 'pem'; readonly certificatePem: string; readonly caCertificatePem?: string };

export interface CertificatePlan {
  readonly logicalName: string;
  readonly source: CertificateSource;
  readonly status: 'ACTIVE' | 'INACTIVE';
  readonly overrideSettings: { readonly status?: OverrideAction };
}

/** A policy to attach: an existing one by name, or one to create from a document. */
export interface PolicyPlan {
  readonly logicalName: string;
  readonly policyName?: string;
  /** The document as a JSON string (a template may give it as a string or as an object). */
  readonly policyDocument?: string;
}

export interface ProvisioningPlan {
  readonly thing?: ThingPlan;
  readonly certificate?: CertificatePlan;
  readonly policies: readonly PolicyPlan[];
  /** RegisterThing's `deviceConfiguration` (a map of strings). */
  readonly deviceConfiguration: Readonly<Record<string, string>>;
}

export interface EvaluationContext {
  /** Sets `AWS::IoT::Certificate::Id` (fleet provisioning: the certificate the device holds). */
  readonly certificateId?: string;
  /** Values of other pseudo parameters (JITP's certificate subject fields). */
  readonly pseudoParameters?: Readonly<Record<string, string>>;
}

export type EvaluationResult = { readonly ok: true; readonly plan: ProvisioningPlan } | TemplateFailure;

/** A template that passed the static check, ready to evaluate. */
export interface ProvisioningTemplate {
  readonly parameters: ReadonlyMap<string, { readonly default?: string }>;
  readonly mappings: ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<string, unknown>>>;
  readonly conditions: ReadonlyMap<string, unknown>;
  readonly resources: readonly ResourceDecl[];
  readonly deviceConfiguration: ReadonlyMap<string, unknown>;
}

export type CheckResult = { readonly ok: true; readonly template: ProvisioningTemplate } | TemplateFailure;

type ResourceType = 'AWS::IoT::Thing' | 'AWS::IoT::Certificate' | 'AWS::IoT::Policy';

interface ResourceDecl {
  readonly logicalName: string;
  readonly type: ResourceType;
  readonly properties: ReadonlyMap<string, unknown>;
  readonly overrideSettings: ReadonlyMap<string, OverrideAction>;
  readonly condition?: string;
}

/** Thrown inside this module only; every entry point turns it into a {@link TemplateFailure}. */
class TemplateProblem extends Error {
  constructor(
    readonly code: TemplateErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const invalid = (message: string) => new TemplateProblem('TEMPLATE_INVALID', message);
const failed = (message: string) => new TemplateProblem('EVALUATION_FAILED', message);

function failure(err: unknown): TemplateFailure {
  if (err instanceof TemplateProblem) return { ok: false, code: err.code, message: err.message };
  // A RangeError from a recursion this module did not foresee still answers, never crashes the core.
  if (err instanceof RangeError) return { ok: false, code: 'TEMPLATE_INVALID', message: 'template too complex' };
  throw err;
}

/** An object's own entries as a Map: keys are data, `__proto__` included. */
function entries(value: Readonly<Record<string, unknown>>): Map<string, unknown> {
  return new Map(Object.entries(value));
}

function objectAt(value: unknown, path: string): Map<string, unknown> {
  if (!isJsonObject(value)) throw invalid(`${path} must be a JSON object`);
  return entries(value);
}

// ---------------------------------------------------------------------------------------------
// Static check

const SECTIONS = new Set(['Parameters', 'Mappings', 'Conditions', 'Resources', 'DeviceConfiguration']);

const PROPERTIES: Readonly<Record<ResourceType, ReadonlySet<string>>> = {
  'AWS::IoT::Thing': new Set([
    'ThingName',
    'AttributePayload',
    'ThingTypeName',
    'ThingGroups',
    'BillingGroup',
    'PackageVersions',
  ]),
  'AWS::IoT::Certificate': new Set([
    'CertificateSigningRequest',
    'CertificateId',
    'CertificatePem',
    'CACertificatePem',
    'Status',
  ]),
  'AWS::IoT::Policy': new Set(['PolicyName', 'PolicyDocument']),
};

/**
 * The properties `OverrideSettings` may name, by resource type. The guide lists the thing's as
 * ATTRIBUTE_PAYLOAD, THING_TYPE_NAME and THING_GROUPS and its examples spell them as the
 * properties (AttributePayload, …): both spellings are accepted and mean the same.
 */
const OVERRIDABLE: Readonly<Record<ResourceType, ReadonlyMap<string, string>>> = {
  'AWS::IoT::Thing': new Map([
    ['AttributePayload', 'AttributePayload'],
    ['ATTRIBUTE_PAYLOAD', 'AttributePayload'],
    ['ThingTypeName', 'ThingTypeName'],
    ['THING_TYPE_NAME', 'ThingTypeName'],
    ['ThingGroups', 'ThingGroups'],
    ['THING_GROUPS', 'ThingGroups'],
  ]),
  'AWS::IoT::Certificate': new Map([['Status', 'Status']]),
  'AWS::IoT::Policy': new Map(),
};

/** The property `Ref` to a resource gives: the thing's name, the certificate's ID, the policy's name. */
const IDENTITY: Readonly<Record<ResourceType, string>> = {
  'AWS::IoT::Thing': 'ThingName',
  'AWS::IoT::Certificate': 'CertificateId',
  'AWS::IoT::Policy': 'PolicyName',
};

/** "MERGE: Valid only for the ThingGroups and AttributePayload properties of a thing." */
const MERGEABLE = new Set(['AttributePayload', 'ThingGroups']);

/** The characters of `text`, counting a surrogate pair as one, stopping once past `limit`. */
function charCountOver(text: string, limit: number): boolean {
  if (text.length <= limit) return false;
  let count = 0;
  for (const _ of text) {
    count += 1;
    if (count > limit) return true;
  }
  return false;
}

/**
 * The static check: the body's size, JSON, sections, parameter declarations, mappings (literal
 * values only: "You cannot include parameters, pseudo parameters, or call intrinsic functions in
 * the Mappings section"), resources and their properties and override settings, and every
 * function's shape and the names it refers to (parameters, pseudo parameters, resources,
 * mappings, conditions), with cycles among conditions and resources refused.
 */
export function checkProvisioningTemplate(
  templateBody: string,
  options: { readonly type?: TemplateType } = {},
): CheckResult {
  try {
    return { ok: true, template: check(templateBody, options.type ?? 'FLEET_PROVISIONING') };
  } catch (err) {
    return failure(err);
  }
}

function check(templateBody: string, type: TemplateType): ProvisioningTemplate {
  if (charCountOver(templateBody, MAX_TEMPLATE_BODY_CHARS)) {
    throw new TemplateProblem(
      'TEMPLATE_TOO_LARGE',
      `The template body is longer than ${MAX_TEMPLATE_BODY_CHARS} characters.`,
    );
  }
  const parsed = parseJson(templateBody, { maxDepth: MAX_JSON_DEPTH });
  if (!parsed.ok)
    throw new TemplateProblem('TEMPLATE_NOT_JSON', `The template body is not valid JSON: ${parsed.message}.`);
  const root = objectAt(parsed.value, 'The template');
  for (const key of root.keys()) {
    if (!SECTIONS.has(key)) throw invalid(`Unknown template section '${key}' (expected ${[...SECTIONS].join(', ')}).`);
  }

  const parameters = new Map<string, { default?: string }>();
  for (const [name, decl] of objectAt(root.get('Parameters') ?? {}, 'Parameters')) {
    const d = objectAt(decl, `Parameters.${name}`);
    for (const key of d.keys()) {
      if (key !== 'Type' && key !== 'Default') throw invalid(`Parameters.${name}: unknown key '${key}'.`);
    }
    if (d.get('Type') !== 'String') throw invalid(`Parameters.${name}.Type must be "String".`);
    const dflt = d.get('Default');
    if (dflt !== undefined && typeof dflt !== 'string') throw invalid(`Parameters.${name}.Default must be a string.`);
    // A pseudo parameter may be declared (AWS's JITP example declares those it uses); its value is
    // still the service's, never the device's (see the Evaluator). AWS::NoValue is not a parameter.
    if (name === NO_VALUE_REF) {
      throw invalid(`Parameters.${name}: AWS::NoValue cannot be declared.`);
    }
    parameters.set(name, dflt === undefined ? {} : { default: dflt });
  }

  const mappings = new Map<string, Map<string, Map<string, unknown>>>();
  for (const [mapName, map] of objectAt(root.get('Mappings') ?? {}, 'Mappings')) {
    const top = new Map<string, Map<string, unknown>>();
    for (const [key1, level2] of objectAt(map, `Mappings.${mapName}`)) {
      const second = objectAt(level2, `Mappings.${mapName}.${key1}`);
      for (const [key2, value] of second) {
        if (!isLiteral(value)) {
          throw invalid(
            `Mappings.${mapName}.${key1}.${key2}: a mapping value must be a string or a list of strings (no functions or references).`,
          );
        }
      }
      top.set(key1, second);
    }
    mappings.set(mapName, top);
  }

  const conditions = objectAt(root.get('Conditions') ?? {}, 'Conditions');

  const resourcesValue = root.get('Resources');
  if (resourcesValue === undefined) throw invalid('The template has no Resources section.');
  const resources: ResourceDecl[] = [];
  for (const [logicalName, decl] of objectAt(resourcesValue, 'Resources')) {
    resources.push(resourceDecl(logicalName, objectAt(decl, `Resources.${logicalName}`), conditions, type));
  }
  for (const single of ['AWS::IoT::Thing', 'AWS::IoT::Certificate'] as const) {
    if (resources.filter((r) => r.type === single).length > 1) {
      throw invalid(`A template declares at most one ${single} resource.`);
    }
  }
  const deviceConfiguration = objectAt(root.get('DeviceConfiguration') ?? {}, 'DeviceConfiguration');
  if (type === 'JITP' && root.has('DeviceConfiguration')) {
    throw invalid('DeviceConfiguration is for fleet provisioning templates only.');
  }

  const template: ProvisioningTemplate = { parameters, mappings, conditions, resources, deviceConfiguration };
  const names = new Names(template);
  for (const [name, expr] of conditions) {
    names.owner = { condition: name };
    names.checkCondition(expr, `Conditions.${name}`);
  }
  for (const r of resources) {
    for (const [prop, value] of r.properties) {
      names.owner = prop === IDENTITY[r.type] ? { resource: r.logicalName } : {};
      names.checkValue(value, `Resources.${r.logicalName}.Properties.${prop}`);
    }
  }
  names.owner = {};
  for (const [key, value] of deviceConfiguration) names.checkValue(value, `DeviceConfiguration.${key}`);
  names.checkCycles();
  return template;
}

function isLiteral(value: unknown): boolean {
  return typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'string'));
}

function resourceDecl(
  logicalName: string,
  decl: Map<string, unknown>,
  conditions: ReadonlyMap<string, unknown>,
  templateType: TemplateType,
): ResourceDecl {
  const where = `Resources.${logicalName}`;
  for (const key of decl.keys()) {
    if (key !== 'Type' && key !== 'Properties' && key !== 'OverrideSettings' && key !== 'Condition') {
      throw invalid(`${where}: unknown key '${key}'.`);
    }
  }
  const type = decl.get('Type');
  if (type !== 'AWS::IoT::Thing' && type !== 'AWS::IoT::Certificate' && type !== 'AWS::IoT::Policy') {
    throw invalid(`${where}.Type must be AWS::IoT::Thing, AWS::IoT::Certificate or AWS::IoT::Policy.`);
  }
  const properties = objectAt(decl.get('Properties') ?? {}, `${where}.Properties`);
  // The guide's property list spells it CertificateID, its examples CertificateId: one property.
  if (properties.has('CertificateID')) {
    if (properties.has('CertificateId')) throw invalid(`${where}: CertificateId is given twice.`);
    properties.set('CertificateId', properties.get('CertificateID'));
    properties.delete('CertificateID');
  }
  for (const key of properties.keys()) {
    if (!PROPERTIES[type].has(key)) {
      throw invalid(
        `${where}.Properties: unknown property '${key}' for ${type} (expected ${[...PROPERTIES[type]].join(', ')}).`,
      );
    }
  }
  if (type === 'AWS::IoT::Certificate') {
    const ways = ['CertificateSigningRequest', 'CertificateId', 'CertificatePem'].filter((p) => properties.has(p));
    if (ways.length !== 1) {
      throw invalid(
        `${where}: a certificate is given by exactly one of CertificateSigningRequest, CertificateId and CertificatePem.`,
      );
    }
    if (properties.has('CACertificatePem') && !properties.has('CertificatePem')) {
      throw invalid(`${where}: CACertificatePem goes with CertificatePem.`);
    }
    // "Only certificate IDs can be used with a fleet provisioning template."
    if (templateType === 'FLEET_PROVISIONING' && ways[0] !== 'CertificateId') {
      throw invalid(`${where}: a fleet provisioning template gives its certificate by CertificateId.`);
    }
  }
  if (type === 'AWS::IoT::Policy' && properties.has('PolicyName') === properties.has('PolicyDocument')) {
    throw invalid(`${where}: a policy resource has PolicyName or PolicyDocument, not both and not neither.`);
  }

  const overrideSettings = new Map<string, OverrideAction>();
  const overrides = decl.get('OverrideSettings');
  if (overrides !== undefined) {
    if (type === 'AWS::IoT::Policy')
      throw invalid(`${where}: OverrideSettings are not available for policy resources.`);
    for (const [key, action] of objectAt(overrides, `${where}.OverrideSettings`)) {
      const property = OVERRIDABLE[type].get(key);
      if (property === undefined) throw invalid(`${where}.OverrideSettings: '${key}' cannot be overridden.`);
      if (typeof action !== 'string' || !(OVERRIDE_ACTIONS as readonly string[]).includes(action)) {
        throw invalid(`${where}.OverrideSettings.${key} must be one of ${OVERRIDE_ACTIONS.join(', ')}.`);
      }
      if (action === 'MERGE' && !(type === 'AWS::IoT::Thing' && MERGEABLE.has(property))) {
        throw invalid(
          `${where}.OverrideSettings.${key}: MERGE is valid only for a thing's ThingGroups and AttributePayload.`,
        );
      }
      overrideSettings.set(property, action as OverrideAction);
    }
  }

  const condition = decl.get('Condition');
  if (condition !== undefined) {
    if (typeof condition !== 'string' || !conditions.has(condition)) {
      throw invalid(`${where}.Condition must name a condition of the Conditions section.`);
    }
  }
  return {
    logicalName,
    type,
    properties,
    overrideSettings,
    ...(typeof condition === 'string' ? { condition } : {}),
  };
}

/** The single key of a one-key object whose key names a function (`Ref`, `Fn::…`, `Condition`). */
function functionCall(value: unknown): { name: string; args: unknown } | undefined {
  if (!isJsonObject(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1) return undefined;
  const name = keys[0] as string;
  if (name !== 'Ref' && name !== 'Condition' && !name.startsWith('Fn::')) return undefined;
  return { name, args: Object.getOwnPropertyDescriptor(value, name)?.value };
}

const VALUE_FUNCTIONS = new Set(['Ref', 'Fn::Join', 'Fn::Select', 'Fn::Split', 'Fn::FindInMap', 'Fn::Sub', 'Fn::If']);
const CONDITION_FUNCTIONS = new Set(['Fn::Equals', 'Fn::And', 'Fn::Or', 'Fn::Not', 'Condition']);

function unsupported(name: string, where: string): TemplateProblem {
  if (name === 'Fn::GetAtt') return invalid(`${where}: Fn::GetAtt is not supported in provisioning templates.`);
  return invalid(`${where}: unknown or unsupported function '${name}'.`);
}

function listArgs(args: unknown, name: string, where: string, min: number, max: number): readonly unknown[] {
  if (!Array.isArray(args) || args.length < min || args.length > max) {
    const n = min === max ? `${min}` : `${min} to ${max}`;
    throw invalid(`${where}: ${name} takes a list of ${n} arguments.`);
  }
  return args;
}

/** The `${Name}` references of a Fn::Sub string; `${!Literal}` is a literal `${Literal}`. */
function subReferences(text: string): string[] {
  const names: string[] = [];
  for (const m of text.matchAll(/\$\{([^}]*)\}/g)) {
    const inner = m[1] as string;
    if (!inner.startsWith('!')) names.push(inner.trim());
  }
  return names;
}

/** Name resolution and shapes for the static check, with the reference graph for cycles. */
class Names {
  /** Edges: condition → conditions it names; resource → resources its identity names. */
  private readonly conditionEdges = new Map<string, Set<string>>();
  private readonly resourceEdges = new Map<string, Set<string>>();
  private readonly resourceNames: ReadonlyMap<string, ResourceDecl>;

  constructor(private readonly t: ProvisioningTemplate) {
    this.resourceNames = new Map(t.resources.map((r) => [r.logicalName, r]));
  }

  private edge(graph: Map<string, Set<string>>, from: string | undefined, to: string): void {
    if (from === undefined) return;
    let set = graph.get(from);
    if (!set) {
      set = new Set();
      graph.set(from, set);
    }
    set.add(to);
  }

  /**
   * What the expression being checked belongs to: set by the caller before each top-level check, so
   * a Ref inside it is an edge of the condition graph, or of the resource graph when it is inside
   * a resource's identity (ThingName, CertificateId, PolicyName: what Ref to the resource gives).
   */
  owner: { condition?: string; resource?: string } = {};

  private checkRef(name: unknown, where: string): void {
    if (typeof name !== 'string') throw invalid(`${where}: Ref takes a name.`);
    if (this.t.parameters.has(name) || PSEUDO_PARAMETERS.has(name) || name === NO_VALUE_REF) return;
    if (this.resourceNames.has(name)) {
      // As in CloudFormation: conditions are decided before resources, so they cannot name one.
      if (this.owner.condition !== undefined)
        throw invalid(`${where}: a condition cannot refer to the resource '${name}'.`);
      this.edge(this.resourceEdges, this.owner.resource, name);
      return;
    }
    // Not refused: AWS's own examples Ref a parameter they do not declare (the fleet provisioning
    // example of the developer guide's earlier revision, and the AWS CLI reference's
    // create-provisioning-template example). Whether IoT refuses such a template at create is not
    // documented (the CLI page's "created" output is no evidence: its template, as printed, is not
    // even valid JSON), so the local core takes the lenient reading: the name takes the value the
    // device sends, and evaluation fails when it sends none.
  }

  checkValue(value: unknown, where: string): void {
    const call = functionCall(value);
    if (call === undefined) {
      if (Array.isArray(value))
        value.forEach((v, i) => {
          this.checkValue(v, `${where}[${i}]`);
        });
      else if (isJsonObject(value)) for (const [k, v] of Object.entries(value)) this.checkValue(v, `${where}.${k}`);
      else if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        throw invalid(`${where}: null is not a value.`);
      }
      return;
    }
    const { name, args } = call;
    const at = `${where}.${name}`;
    switch (name) {
      case 'Ref':
        this.checkRef(args, at);
        return;
      case 'Fn::Join': {
        const [delimiter, list] = listArgs(args, name, at, 2, 2);
        if (typeof delimiter !== 'string') throw invalid(`${at}: the delimiter must be a string.`);
        this.checkValue(list, `${at}[1]`);
        return;
      }
      case 'Fn::Select': {
        const [index, list] = listArgs(args, name, at, 2, 2);
        if (typeof index === 'number' && !(Number.isInteger(index) && index >= 0)) {
          throw invalid(`${at}: the index must be a non-negative integer.`);
        }
        this.checkValue(index, `${at}[0]`);
        this.checkValue(list, `${at}[1]`);
        return;
      }
      case 'Fn::Split': {
        const [delimiter, text] = listArgs(args, name, at, 2, 2);
        if (typeof delimiter !== 'string' || delimiter === '')
          throw invalid(`${at}: the delimiter must be a non-empty string.`);
        this.checkValue(text, `${at}[1]`);
        return;
      }
      case 'Fn::FindInMap': {
        const keys = listArgs(args, name, at, 3, 3);
        const mapName = keys[0];
        if (typeof mapName === 'string' && !this.t.mappings.has(mapName)) {
          throw invalid(`${at}: no mapping named '${mapName}'.`);
        }
        keys.forEach((k, i) => {
          this.checkValue(k, `${at}[${i}]`);
        });
        return;
      }
      case 'Fn::Sub': {
        const [text, vars] = typeof args === 'string' ? [args, undefined] : listArgs(args, name, at, 2, 2);
        if (typeof text !== 'string') throw invalid(`${at}: the first argument must be a string.`);
        const local = new Set<string>();
        if (vars !== undefined) {
          for (const [k, v] of objectAt(vars, `${at}[1]`)) {
            local.add(k);
            this.checkValue(v, `${at}[1].${k}`);
          }
        }
        for (const ref of subReferences(text)) {
          if (ref.includes('.'))
            throw invalid(`${at}: '\${${ref}}' (an attribute) is not supported in provisioning templates.`);
          if (!local.has(ref)) this.checkRef(ref, at);
        }
        return;
      }
      case 'Fn::If': {
        const [cond, whenTrue, whenFalse] = listArgs(args, name, at, 3, 3);
        if (typeof cond !== 'string' || !this.t.conditions.has(cond)) {
          throw invalid(`${at}: the first argument must name a condition of the Conditions section.`);
        }
        this.edge(this.conditionEdges, this.owner.condition, cond);
        this.checkValue(whenTrue, `${at}[1]`);
        this.checkValue(whenFalse, `${at}[2]`);
        return;
      }
      default:
        if (CONDITION_FUNCTIONS.has(name)) throw invalid(`${at}: ${name} belongs in the Conditions section.`);
        throw unsupported(name, at);
    }
  }

  checkCondition(expr: unknown, where: string): void {
    const call = functionCall(expr);
    if (call === undefined)
      throw invalid(`${where}: a condition must be Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition.`);
    const { name, args } = call;
    const at = `${where}.${name}`;
    switch (name) {
      case 'Condition': {
        if (typeof args !== 'string' || !this.t.conditions.has(args)) {
          throw invalid(`${at}: must name a condition of the Conditions section.`);
        }
        this.edge(this.conditionEdges, this.owner.condition, args);
        return;
      }
      case 'Fn::Equals': {
        const [a, b] = listArgs(args, name, at, 2, 2);
        this.checkValue(a, `${at}[0]`);
        this.checkValue(b, `${at}[1]`);
        return;
      }
      case 'Fn::And':
      case 'Fn::Or':
        // CloudFormation: "from 2 to 10 conditions".
        listArgs(args, name, at, 2, 10).forEach((c, i) => {
          this.checkCondition(c, `${at}[${i}]`);
        });
        return;
      case 'Fn::Not':
        this.checkCondition(listArgs(args, name, at, 1, 1)[0], `${at}[0]`);
        return;
      default:
        if (VALUE_FUNCTIONS.has(name)) throw invalid(`${at}: ${name} is not a condition function.`);
        throw unsupported(name, at);
    }
  }

  checkCycles(): void {
    for (const [graph, what] of [
      [this.conditionEdges, 'condition'],
      [this.resourceEdges, 'resource'],
    ] as const) {
      const done = new Set<string>();
      // Iterative depth-first search: a long chain of conditions cannot exhaust the stack.
      for (const start of graph.keys()) {
        if (done.has(start)) continue;
        const onPath = new Set<string>([start]);
        const stack: { node: string; next: Iterator<string> }[] = [
          { node: start, next: (graph.get(start) ?? new Set<string>()).values() },
        ];
        while (stack.length > 0) {
          const top = stack[stack.length - 1] as { node: string; next: Iterator<string> };
          const step = top.next.next();
          if (step.done) {
            onPath.delete(top.node);
            done.add(top.node);
            stack.pop();
            continue;
          }
          const to = step.value;
          if (onPath.has(to))
            throw invalid(`The ${what} '${to}' refers to itself (a cycle through ${[...onPath].join(' → ')}).`);
          if (done.has(to)) continue;
          onPath.add(to);
          stack.push({ node: to, next: (graph.get(to) ?? new Set<string>()).values() });
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/** A property an `Fn::If` branch removed with `{"Ref": "AWS::NoValue"}`. */
const NO_VALUE = Symbol('AWS::NoValue');
type Value = string | number | boolean | typeof NO_VALUE | readonly Value[] | { readonly [key: string]: Value };

/**
 * Checks the template, then evaluates it with `parameters` (a declared parameter without a value
 * takes its Default; one with neither fails) and the context's pseudo parameters.
 */
export function evaluateProvisioningTemplate(
  templateBody: string,
  parameters: Readonly<Record<string, string>>,
  context: EvaluationContext = {},
  options: { readonly type?: TemplateType } = {},
): EvaluationResult {
  const checked = checkProvisioningTemplate(templateBody, options);
  if (!checked.ok) return checked;
  return evaluateCheckedTemplate(checked.template, parameters, context);
}

/** {@link evaluateProvisioningTemplate} for a template already checked (a stored version). */
export function evaluateCheckedTemplate(
  template: ProvisioningTemplate,
  parameters: Readonly<Record<string, string>>,
  context: EvaluationContext = {},
): EvaluationResult {
  try {
    return { ok: true, plan: new Evaluator(template, parameters, context).plan() };
  } catch (err) {
    return failure(err);
  }
}

class Evaluator {
  private readonly values = new Map<string, string>();
  private readonly conditionResults = new Map<string, boolean>();
  private readonly conditionsEvaluating = new Set<string>();
  private readonly resourceIds = new Map<string, string>();
  private readonly resourcesEvaluating = new Set<string>();
  private readonly resources: ReadonlyMap<string, ResourceDecl>;
  private readonly given: ReadonlyMap<string, unknown>;

  constructor(
    private readonly t: ProvisioningTemplate,
    parameters: Readonly<Record<string, string>>,
    context: EvaluationContext,
  ) {
    this.resources = new Map(t.resources.map((r) => [r.logicalName, r]));
    this.given = isJsonObject(parameters) ? entries(parameters) : new Map<string, unknown>();
    for (const [name, decl] of t.parameters) {
      // A declared pseudo parameter takes the service's value (set below), else its Default; a
      // device cannot set it by sending a parameter of that name.
      if (PSEUDO_PARAMETERS.has(name)) {
        if (decl.default !== undefined) this.values.set(name, decl.default);
        continue;
      }
      const value = this.given.get(name);
      if (value === undefined) {
        if (decl.default === undefined) {
          throw new TemplateProblem('PARAMETER_INVALID', `Parameter '${name}' has no value and no default.`);
        }
        this.values.set(name, decl.default);
      } else if (typeof value !== 'string') {
        throw new TemplateProblem('PARAMETER_INVALID', `Parameter '${name}' must be a string.`);
      } else {
        this.values.set(name, this.bounded(value, `Parameter '${name}'`));
      }
    }
    for (const [name, value] of Object.entries(context.pseudoParameters ?? {})) {
      if (PSEUDO_PARAMETERS.has(name) && typeof value === 'string') this.values.set(name, value);
    }
    if (context.certificateId !== undefined) this.values.set(CERTIFICATE_ID_PSEUDO_PARAMETER, context.certificateId);
  }

  private bounded(text: string, what: string): string {
    if (text.length > MAX_EVALUATED_STRING_CHARS) {
      throw failed(`${what} is longer than ${MAX_EVALUATED_STRING_CHARS} characters.`);
    }
    return text;
  }

  plan(): ProvisioningPlan {
    let thing: ThingPlan | undefined;
    let certificate: CertificatePlan | undefined;
    const policies: PolicyPlan[] = [];
    for (const r of this.t.resources) {
      if (r.condition !== undefined && !this.condition(r.condition)) continue;
      if (r.type === 'AWS::IoT::Thing') thing = this.thing(r);
      else if (r.type === 'AWS::IoT::Certificate') certificate = this.certificate(r);
      else policies.push(this.policy(r));
    }
    const deviceConfiguration: [string, string][] = [];
    for (const [key, expr] of this.t.deviceConfiguration) {
      const v = this.value(expr, `DeviceConfiguration.${key}`);
      if (v === NO_VALUE) continue;
      deviceConfiguration.push([key, this.asString(v, `DeviceConfiguration.${key}`)]);
    }
    return {
      ...(thing === undefined ? {} : { thing }),
      ...(certificate === undefined ? {} : { certificate }),
      policies,
      deviceConfiguration: Object.fromEntries(deviceConfiguration),
    };
  }

  private prop(r: ResourceDecl, name: string): Value | undefined {
    const expr = r.properties.get(name);
    if (expr === undefined) return undefined;
    const v = this.value(expr, `Resources.${r.logicalName}.Properties.${name}`);
    return v === NO_VALUE ? undefined : v;
  }

  private stringProp(r: ResourceDecl, name: string): string | undefined {
    const v = this.prop(r, name);
    return v === undefined ? undefined : this.asString(v, `Resources.${r.logicalName}.Properties.${name}`);
  }

  private listProp(r: ResourceDecl, name: string): string[] | undefined {
    const v = this.prop(r, name);
    if (v === undefined) return undefined;
    return this.asStringList(v, `Resources.${r.logicalName}.Properties.${name}`);
  }

  private thing(r: ResourceDecl): ThingPlan {
    // The static check lets a thing without ThingName pass (the guide's fleet provisioning example
    // has none); provisioning with it cannot name the thing.
    const thingName = this.identity(r);
    const thingTypeName = this.stringProp(r, 'ThingTypeName');
    const billingGroup = this.stringProp(r, 'BillingGroup');
    const packageVersions = this.listProp(r, 'PackageVersions');
    const payload = this.prop(r, 'AttributePayload');
    const attributes: [string, string][] = [];
    if (payload !== undefined) {
      if (typeof payload !== 'object' || Array.isArray(payload)) {
        throw failed(`Resources.${r.logicalName}.Properties.AttributePayload must be an object of name-value pairs.`);
      }
      for (const [k, v] of Object.entries(payload as Readonly<Record<string, Value>>)) {
        if (v === NO_VALUE) continue;
        attributes.push([k, this.asString(v, `Resources.${r.logicalName}.Properties.AttributePayload.${k}`)]);
      }
    }
    const o = r.overrideSettings;
    const overrideSettings = {
      ...(o.has('AttributePayload') ? { attributePayload: o.get('AttributePayload') as OverrideAction } : {}),
      ...(o.has('ThingTypeName') ? { thingTypeName: o.get('ThingTypeName') as OverrideAction } : {}),
      ...(o.has('ThingGroups') ? { thingGroups: o.get('ThingGroups') as OverrideAction } : {}),
    };
    return {
      logicalName: r.logicalName,
      thingName,
      ...(thingTypeName === undefined ? {} : { thingTypeName }),
      thingGroups: this.listProp(r, 'ThingGroups') ?? [],
      ...(billingGroup === undefined ? {} : { billingGroup }),
      attributes: Object.fromEntries(attributes),
      ...(packageVersions === undefined ? {} : { packageVersions }),
      overrideSettings,
    };
  }

  private certificate(r: ResourceDecl): CertificatePlan {
    const status = (this.stringProp(r, 'Status') ?? 'ACTIVE').toUpperCase();
    // The guide's fleet provisioning example writes "Active": the status is read without case.
    if (status !== 'ACTIVE' && status !== 'INACTIVE') {
      throw failed(`Resources.${r.logicalName}.Properties.Status must be ACTIVE or INACTIVE.`);
    }
    let source: CertificateSource;
    const csr = this.stringProp(r, 'CertificateSigningRequest');
    const pem = this.stringProp(r, 'CertificatePem');
    if (csr !== undefined) source = { kind: 'csr', certificateSigningRequest: csr };
    else if (pem !== undefined) {
      const ca = this.stringProp(r, 'CACertificatePem');
      source = { kind: 'pem', certificatePem: pem, ...(ca === undefined ? {} : { caCertificatePem: ca }) };
    } else source = { kind: 'certificateId', certificateId: this.identity(r) };
    const statusOverride = r.overrideSettings.get('Status');
    return {
      logicalName: r.logicalName,
      source,
      status,
      overrideSettings: statusOverride === undefined ? {} : { status: statusOverride },
    };
  }

  private policy(r: ResourceDecl): PolicyPlan {
    const doc = this.prop(r, 'PolicyDocument');
    if (doc !== undefined) {
      const where = `Resources.${r.logicalName}.Properties.PolicyDocument`;
      // The guide gives PolicyDocument as "a JSON object specified as an escaped string", and its
      // fleet provisioning example as an object: both are accepted, stored as the JSON text.
      const text = typeof doc === 'string' ? doc : this.bounded(JSON.stringify(toJson(doc)), where);
      return { logicalName: r.logicalName, policyDocument: text };
    }
    return { logicalName: r.logicalName, policyName: this.identity(r) };
  }

  /**
   * What `Ref` to a resource gives: a thing's name, a certificate's ID, a policy's name. Memoized,
   * and a resource whose identity refers back to itself is a cycle error (the static check finds
   * direct cycles; this guards every path).
   */
  private identity(r: ResourceDecl): string {
    const known = this.resourceIds.get(r.logicalName);
    if (known !== undefined) return known;
    if (this.resourcesEvaluating.has(r.logicalName)) throw invalid(`The resource '${r.logicalName}' refers to itself.`);
    this.resourcesEvaluating.add(r.logicalName);
    const property = IDENTITY[r.type];
    const id = this.stringProp(r, property);
    this.resourcesEvaluating.delete(r.logicalName);
    if (id === undefined) {
      throw failed(`Resources.${r.logicalName} has no ${property}: the ${r.type} cannot be named.`);
    }
    this.resourceIds.set(r.logicalName, id);
    return id;
  }

  private condition(name: string): boolean {
    const known = this.conditionResults.get(name);
    if (known !== undefined) return known;
    if (this.conditionsEvaluating.has(name)) throw invalid(`The condition '${name}' refers to itself.`);
    this.conditionsEvaluating.add(name);
    const result = this.conditionValue(this.t.conditions.get(name), `Conditions.${name}`);
    this.conditionsEvaluating.delete(name);
    this.conditionResults.set(name, result);
    return result;
  }

  private conditionValue(expr: unknown, where: string): boolean {
    const call = functionCall(expr) as { name: string; args: readonly unknown[] | string };
    const args = call.args;
    switch (call.name) {
      case 'Condition':
        return this.condition(args as string);
      case 'Fn::Equals': {
        const [a, b] = (args as readonly unknown[]).map((x, i) => this.value(x, `${where}.Fn::Equals[${i}]`));
        return JSON.stringify(toJson(a as Value)) === JSON.stringify(toJson(b as Value));
      }
      case 'Fn::And':
        return (args as readonly unknown[]).every((c, i) => this.conditionValue(c, `${where}.Fn::And[${i}]`));
      case 'Fn::Or':
        return (args as readonly unknown[]).some((c, i) => this.conditionValue(c, `${where}.Fn::Or[${i}]`));
      default:
        return !this.conditionValue((args as readonly unknown[])[0], `${where}.Fn::Not[0]`);
    }
  }

  private ref(name: string, where: string): Value {
    if (name === NO_VALUE_REF) return NO_VALUE;
    const value = this.values.get(name);
    if (value !== undefined) return value;
    const resource = this.resources.get(name);
    if (resource !== undefined) return this.identity(resource);
    // An undeclared name (see Names.checkRef): the value the device sent, if it sent one.
    const sent = PSEUDO_PARAMETERS.has(name) ? undefined : this.given.get(name);
    if (typeof sent === 'string') return this.bounded(sent, `Parameter '${name}'`);
    throw new TemplateProblem(
      'PARAMETER_INVALID',
      `${where}: '${name}' has no value (not a declared parameter with a default, not sent).`,
    );
  }

  private value(expr: unknown, where: string): Value {
    const call = functionCall(expr);
    if (call === undefined) {
      if (Array.isArray(expr)) {
        return expr.map((v, i) => this.value(v, `${where}[${i}]`)).filter((v) => v !== NO_VALUE);
      }
      if (isJsonObject(expr)) {
        const out: [string, Value][] = [];
        for (const [k, v] of Object.entries(expr)) {
          const evaluated = this.value(v, `${where}.${k}`);
          if (evaluated !== NO_VALUE) out.push([k, evaluated]);
        }
        return Object.fromEntries(out);
      }
      return expr as string | number | boolean;
    }
    const at = `${where}.${call.name}`;
    const args = call.args as readonly unknown[];
    switch (call.name) {
      case 'Ref':
        return this.ref(call.args as string, at);
      case 'Fn::Join': {
        const list = this.asStringList(this.value(args[1], `${at}[1]`), `${at}[1]`);
        return this.bounded(list.join(args[0] as string), at);
      }
      case 'Fn::Select': {
        const rawIndex = this.value(args[0], `${at}[0]`);
        const index = typeof rawIndex === 'string' && /^\d+$/.test(rawIndex) ? Number(rawIndex) : rawIndex;
        const list = this.value(args[1], `${at}[1]`);
        if (!Array.isArray(list)) throw failed(`${at}: the second argument must be a list.`);
        if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= list.length) {
          throw failed(`${at}: index ${String(rawIndex)} is out of range for a list of ${list.length}.`);
        }
        return list[index] as Value;
      }
      case 'Fn::Split': {
        const text = this.asString(this.value(args[1], `${at}[1]`), `${at}[1]`);
        return text.split(args[0] as string);
      }
      case 'Fn::FindInMap': {
        const [mapName, key1, key2] = args.map((a, i) => this.asString(this.value(a, `${at}[${i}]`), `${at}[${i}]`));
        const found = this.t.mappings
          .get(mapName as string)
          ?.get(key1 as string)
          ?.get(key2 as string);
        if (found === undefined) throw failed(`${at}: the mapping ${mapName} has no ${key1}.${key2}.`);
        return found as Value;
      }
      case 'Fn::Sub': {
        const [text, vars] = typeof call.args === 'string' ? [call.args, undefined] : args;
        const local = new Map<string, string>();
        if (isJsonObject(vars)) {
          for (const [k, v] of Object.entries(vars))
            local.set(k, this.asString(this.value(v, `${at}[1].${k}`), `${at}[1].${k}`));
        }
        let length = 0;
        const out = (text as string).replace(/\$\{([^}]*)\}/g, (_whole, inner: string) => {
          const piece = inner.startsWith('!')
            ? `\${${inner.slice(1)}}`
            : (local.get(inner.trim()) ?? this.asString(this.ref(inner.trim(), at), at));
          length += piece.length;
          // Checked as it grows: the replacement must not build a huge string before the check.
          if (length > MAX_EVALUATED_STRING_CHARS) {
            throw failed(`${at} is longer than ${MAX_EVALUATED_STRING_CHARS} characters.`);
          }
          return piece;
        });
        return this.bounded(out, at);
      }
      default: {
        // Fn::If: the static check admits no other function in a value.
        const branch = this.condition(args[0] as string) ? 1 : 2;
        return this.value(args[branch], `${at}[${branch}]`);
      }
    }
  }

  private asString(v: Value, where: string): string {
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw failed(`${where} must be a string.`);
  }

  private asStringList(v: Value, where: string): string[] {
    if (!Array.isArray(v)) throw failed(`${where} must be a list of strings.`);
    return (v as readonly Value[]).map((item, i) => this.asString(item, `${where}[${i}]`));
  }
}

/** An evaluated value as plain JSON (NO_VALUE members already removed by {@link Evaluator}). */
function toJson(v: Value): unknown {
  return v === NO_VALUE ? null : v;
}
