import type { IotPolicyDocument, IotPolicyStatement } from '@pifleet/protocol';
import { LIMITS } from '@pifleet/protocol';
import { invalid, RegistryError } from './errors.js';

/** Pure checks of names, attributes and policy documents, with AWS IoT's patterns and limits. */

const THING_NAME = /^[a-zA-Z0-9:_-]+$/;
const POLICY_NAME = /^[\w+=,.@-]+$/;
const CERTIFICATE_ID = /^[a-f0-9]{64}$/;
const ATTRIBUTE_NAME = /^[a-zA-Z0-9_.,@/:#-]+$/;
const ATTRIBUTE_VALUE = /^[a-zA-Z0-9_.,@/:#=[\]-]*$/;
/** Attributes a thing without a thing type may have. */
export const MAX_ATTRIBUTES = 50;
export const MAX_POLICY_DOCUMENT_BYTES = 20_480;

export function checkThingName(name: string): void {
  if (name.length < 1 || name.length > LIMITS.maxThingNameLength || !THING_NAME.test(name)) {
    throw invalid(`Thing name '${name}' is not valid: 1 to 128 characters of [a-zA-Z0-9:_-].`, { thingName: name });
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

export function checkAttributes(attributes: Readonly<Record<string, string>>): void {
  for (const [name, value] of Object.entries(attributes)) {
    if (name.length > 128 || !ATTRIBUTE_NAME.test(name)) {
      throw invalid(`Attribute name '${name}' is not valid: 1 to 128 characters of [a-zA-Z0-9_.,@/:#-].`);
    }
    if (typeof value !== 'string' || value.length > 800 || !ATTRIBUTE_VALUE.test(value)) {
      throw invalid(`Attribute '${name}' has an invalid value: up to 800 characters of [a-zA-Z0-9_.,@/:#=[]-].`);
    }
  }
  if (Object.keys(attributes).length > MAX_ATTRIBUTES) {
    throw invalid(`A thing can have at most ${MAX_ATTRIBUTES} attributes.`);
  }
}

const malformed = (message: string) => new RegistryError('MalformedPolicyException', message);

function checkStringOrList(value: unknown, what: string, index: number): void {
  const ok =
    (typeof value === 'string' && value.length > 0) ||
    (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v.length > 0));
  if (!ok) throw malformed(`Policy statement ${index}: ${what} must be a non-empty string or list of strings.`);
}

/**
 * Parses and checks an IoT policy document: JSON, `Version` 2012-10-17, one or more statements
 * each with `Effect` Allow or Deny, `Action` and `Resource`, and an optional `Condition` map.
 * A single statement object is accepted and returned as a one-element list.
 */
export function parsePolicyDocument(text: string): IotPolicyDocument {
  if (Buffer.byteLength(text) > MAX_POLICY_DOCUMENT_BYTES) {
    throw malformed(`The policy document is larger than ${MAX_POLICY_DOCUMENT_BYTES} bytes.`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw malformed('The policy document is not valid JSON.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw malformed('The policy document must be a JSON object.');
  }
  const doc = parsed as Record<string, unknown>;
  if (doc.Version !== '2012-10-17') throw malformed("The policy document's Version must be '2012-10-17'.");
  const raw = doc.Statement;
  const statements: unknown[] = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
  if (statements.length === 0) throw malformed('The policy document has no Statement.');
  const out: IotPolicyStatement[] = statements.map((s, i) => {
    if (typeof s !== 'object' || s === null || Array.isArray(s)) {
      throw malformed(`Policy statement ${i} must be an object.`);
    }
    const st = s as Record<string, unknown>;
    if (st.Effect !== 'Allow' && st.Effect !== 'Deny') {
      throw malformed(`Policy statement ${i}: Effect must be 'Allow' or 'Deny'.`);
    }
    checkStringOrList(st.Action, 'Action', i);
    checkStringOrList(st.Resource, 'Resource', i);
    if (st.Condition !== undefined) {
      const cond = st.Condition;
      const valid =
        typeof cond === 'object' &&
        cond !== null &&
        !Array.isArray(cond) &&
        Object.values(cond).every(
          (block) =>
            typeof block === 'object' &&
            block !== null &&
            !Array.isArray(block) &&
            Object.values(block).every(
              (v) => typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string')),
            ),
        );
      if (!valid) {
        throw malformed(`Policy statement ${i}: Condition must map operators to {key: value or [values]}.`);
      }
    }
    return st as unknown as IotPolicyStatement;
  });
  return { Version: '2012-10-17', Statement: out };
}
