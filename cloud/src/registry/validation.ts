import type { IotPolicyDocument, PathIssue } from '@pifleet/protocol';
import {
  LIMITS,
  MAX_JSON_DEPTH,
  POLICY_DOCUMENT_MAX_CHARS,
  POLICY_PART_MESSAGES,
  parseIotPolicyDocument,
  policyDocumentLength,
} from '@pifleet/protocol';
import { documentProblems } from '../core/policy/index.js';
import { invalid, RegistryError } from './errors.js';

/** Pure checks of names, attributes and policy documents, with AWS IoT's patterns and limits. */

const THING_NAME = /^[a-zA-Z0-9:_-]+$/;
const POLICY_NAME = /^[\w+=,.@-]+$/;
const CERTIFICATE_ID = /^[a-f0-9]{64}$/;
const ATTRIBUTE_NAME = /^[a-zA-Z0-9_.,@/:#-]+$/;
const ATTRIBUTE_VALUE = /^[a-zA-Z0-9_.,@/:#=[\]-]*$/;
/** Attributes a thing may have with a thing type, and without one (AWS IoT Developer Guide, "Thing types"). */
export const MAX_ATTRIBUTES = 50;
export const MAX_UNTYPED_ATTRIBUTES = 3;
/** Searchable attributes a thing type may name ("Only three searchable attributes are allowed for a thing type."). */
export const MAX_SEARCHABLE_ATTRIBUTES = 3;
/** Attributes of a thing group, and the length of a type's or group's description (ThingGroupDescription, ThingTypeDescription). */
export const MAX_GROUP_ATTRIBUTES = 50;
export const MAX_DESCRIPTION_LENGTH = 2028;
export const MAX_POLICY_DOCUMENT_BYTES = 20_480;

export function checkThingName(name: string): void {
  if (name.length < 1 || name.length > LIMITS.maxThingNameLength || !THING_NAME.test(name)) {
    throw invalid(`Thing name '${name}' is not valid: 1 to 128 characters of [a-zA-Z0-9:_-].`, { thingName: name });
  }
}

/** Thing type and thing group names have the thing name's pattern and length (IoT API reference). */
export function checkThingTypeName(name: string): void {
  if (name.length < 1 || name.length > 128 || !THING_NAME.test(name)) {
    throw invalid(`Thing type name '${name}' is not valid: 1 to 128 characters of [a-zA-Z0-9:_-].`, {
      thingTypeName: name,
    });
  }
}

export function checkThingGroupName(name: string): void {
  if (name.length < 1 || name.length > 128 || !THING_NAME.test(name)) {
    throw invalid(`Thing group name '${name}' is not valid: 1 to 128 characters of [a-zA-Z0-9:_-].`, {
      thingGroupName: name,
    });
  }
}

export function checkDescription(what: string, description: string | undefined): void {
  if (description !== undefined && description.length > MAX_DESCRIPTION_LENGTH) {
    throw invalid(`The ${what} description is longer than ${MAX_DESCRIPTION_LENGTH} characters.`);
  }
}

/** A thing type's searchable attributes: at most three attribute names. */
export function checkSearchableAttributes(names: readonly string[]): void {
  if (names.length > MAX_SEARCHABLE_ATTRIBUTES) {
    throw invalid('Only three searchable attributes are allowed for a thing type.');
  }
  for (const name of names) {
    if (name.length > 128 || !ATTRIBUTE_NAME.test(name)) {
      throw invalid(`Attribute name '${name}' is not valid: 1 to 128 characters of [a-zA-Z0-9_.,@/:#-].`);
    }
  }
}

export function checkPolicyName(name: string): void {
  if (name.length < 1 || name.length > 128 || !POLICY_NAME.test(name)) {
    throw invalid(`Policy name '${name}' is not valid: 1 to 128 characters of [\\w+=,.@-].`, { policyName: name });
  }
}

export function checkCertificateId(id: string): void {
  if (!CERTIFICATE_ID.test(id)) {
    throw invalid(`Certificate id '${id}' is not valid: 64 lowercase hexadecimal characters.`, { certificateId: id });
  }
}

/**
 * Attribute names and values, and their count: `limit` is {@link MAX_UNTYPED_ATTRIBUTES} for a thing
 * without a thing type, {@link MAX_ATTRIBUTES} with one; `owner` names what has them in the message.
 */
export function checkAttributes(
  attributes: Readonly<Record<string, string>>,
  limit = MAX_ATTRIBUTES,
  owner = 'A thing',
): void {
  for (const [name, value] of Object.entries(attributes)) {
    if (name.length > 128 || !ATTRIBUTE_NAME.test(name)) {
      throw invalid(`Attribute name '${name}' is not valid: 1 to 128 characters of [a-zA-Z0-9_.,@/:#-].`);
    }
    if (typeof value !== 'string' || value.length > 800 || !ATTRIBUTE_VALUE.test(value)) {
      throw invalid(`Attribute '${name}' has an invalid value: up to 800 characters of [a-zA-Z0-9_.,@/:#=[]-].`);
    }
  }
  if (Object.keys(attributes).length > limit) {
    const why = limit === MAX_UNTYPED_ATTRIBUTES ? ' without a thing type' : '';
    throw invalid(`${owner} can have at most ${limit} attributes${why}.`);
  }
}

const malformed = (message: string) => new RegistryError('MalformedPolicyException', message);

/** Statement parts in the order the registry has always checked them: the first problem found is the one reported. */
const PART_ORDER = ['Effect', 'Action', 'NotAction', 'Resource', 'NotResource', 'Condition', 'Sid'] as const;
type Part = (typeof PART_ORDER)[number];
const isPart = (key: PropertyKey | undefined): key is Part => PART_ORDER.includes(key as Part);

/**
 * Where a schema issue sits in the order of checks: the document itself, its Version, then each
 * statement in turn (the statement, then its parts in {@link PART_ORDER}). zod reports a missing
 * Action after a malformed Resource; the registry has always named the Action first.
 */
function issueRank(path: readonly PropertyKey[]): number[] {
  const [top, index, part] = path;
  if (top === undefined) return [0];
  if (top === 'Version') return [1];
  if (typeof index !== 'number') return [2];
  return [3, index, isPart(part) ? PART_ORDER.indexOf(part) + 1 : 0];
}

function compareRanks(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? -1) - (b[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** The registry's wording (what AWS IoT's MalformedPolicyException says in its own words) for one issue. */
function malformedMessage(issue: PathIssue): string {
  const [top, index, part] = issue.path;
  if (top === undefined) return 'The policy document must be a JSON object.';
  if (top === 'Version') return "The policy document's Version must be '2012-10-17'.";
  if (typeof index !== 'number') return 'The policy document has no Statement.';
  if (!isPart(part)) return `Policy statement ${index} must be an object.`;
  // A part has one message of its own, and Action/Resource one more for "exactly one of the pair".
  const pair = part === 'Action' ? POLICY_PART_MESSAGES.OneAction : POLICY_PART_MESSAGES.OneResource;
  return `Policy statement ${index}: ${issue.message === pair ? pair : POLICY_PART_MESSAGES[part]}`;
}

/**
 * Parses and checks an IoT policy document ({@link iotPolicyDocumentSchema}): size first, then JSON
 * with a bounded depth, then the grammar. A single statement object is accepted and returned as a
 * one-element list. A rejection names the first problem, as AWS IoT does.
 */
export function parsePolicyDocument(text: string): IotPolicyDocument {
  if (Buffer.byteLength(text) > MAX_POLICY_DOCUMENT_BYTES) {
    throw malformed(`The policy document is larger than ${MAX_POLICY_DOCUMENT_BYTES} bytes.`);
  }
  const result = parseIotPolicyDocument(text);
  if (result.ok) return result.value;
  if (result.reason !== 'schema') {
    throw malformed(
      result.reason === 'syntax'
        ? 'The policy document is not valid JSON.'
        : `The policy document is nested more than ${MAX_JSON_DEPTH} levels deep.`,
    );
  }
  const first = result.issues.reduce((a, b) => (compareRanks(issueRank(b.path), issueRank(a.path)) < 0 ? b : a));
  throw malformed(malformedMessage(first));
}

/**
 * What CreatePolicy accepts: a document {@link parsePolicyDocument} reads and that the local IoT
 * Core evaluates exactly as written (core/policy's documentProblems: every condition operator,
 * condition key, typed value and policy variable). AWS IoT Core would accept some of what this
 * refuses (a key it evaluates and the local core cannot); refusing it here, with the reason, keeps
 * a policy from silently behaving differently. Stored documents are read with
 * parsePolicyDocument alone, so one created before a check existed still loads (and fails closed).
 */
export function checkPolicyDocument(text: string): IotPolicyDocument {
  const document = parsePolicyDocument(text);
  // IoT Core's CreatePolicy limit (whitespace not counted). The parser's byte cap above is only a
  // guard against huge bodies; a stored document is never measured again, so one created before
  // this check still loads.
  const length = policyDocumentLength(text);
  if (length > POLICY_DOCUMENT_MAX_CHARS) {
    throw malformed(
      `The policy document is ${length} characters long (whitespace not counted); IoT Core's limit is ${POLICY_DOCUMENT_MAX_CHARS}.`,
    );
  }
  const [first] = documentProblems(document);
  if (first) throw malformed(`Policy statement ${first.statement}: ${first.message}.`);
  return document;
}
