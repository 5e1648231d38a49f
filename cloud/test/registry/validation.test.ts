import { POLICY_DOCUMENT_MAX_CHARS, recommendedDevicePolicy } from '@pifleet/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/registry/errors.js';
import { checkPolicyDocument, MAX_POLICY_DOCUMENT_BYTES, parsePolicyDocument } from '../../src/registry/validation.js';

/**
 * Policy documents as the registry reads them: the schema decides, and the registry answers in its
 * own words (MalformedPolicyException with the message the control plane returns), naming the
 * first problem in the order it has always checked them.
 */

const V = '"Version":"2012-10-17"';
const stmt = (fields: string) => `{${V},"Statement":{${fields}}}`;
const ok = '"Effect":"Allow","Action":"iot:Connect","Resource":"*"';

function rejection(
  text: string,
  check: (text: string) => unknown = parsePolicyDocument,
): { code: string; message: string } {
  try {
    check(text);
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    return { code: (err as RegistryError).code, message: (err as RegistryError).message };
  }
  throw new Error('expected the document to be refused');
}

afterEach(() => {
  expect(Object.keys(Object.prototype)).toEqual([]);
});

describe('parsePolicyDocument', () => {
  it('accepts the recommended policy and returns it as written', () => {
    const doc = recommendedDevicePolicy('us-east-1', '123456789012');
    expect(parsePolicyDocument(JSON.stringify(doc))).toEqual(doc);
  });

  it('reads a single statement object as a list of one, with NotAction and NotResource kept', () => {
    const text = stmt('"Effect":"Deny","NotAction":["iot:Connect"],"NotResource":"x"');
    expect(parsePolicyDocument(text)).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Deny', NotAction: ['iot:Connect'], NotResource: 'x' }],
    });
  });

  it.each<[string, string]>([
    ['{"Version":', 'The policy document is not valid JSON.'],
    ['[]', 'The policy document must be a JSON object.'],
    ['"text"', 'The policy document must be a JSON object.'],
    ['{"Version":"2008-10-17","Statement":[]}', "The policy document's Version must be '2012-10-17'."],
    [`{${V}}`, 'The policy document has no Statement.'],
    [`{${V},"Statement":[]}`, 'The policy document has no Statement.'],
    [`{${V},"Statement":"x"}`, 'Policy statement 0 must be an object.'],
    [`{${V},"Statement":[{${ok}},null]}`, 'Policy statement 1 must be an object.'],
    [stmt('"Effect":"Maybe","Action":"a","Resource":"r"'), "Policy statement 0: Effect must be 'Allow' or 'Deny'."],
    [stmt('"Effect":"Maybe"'), "Policy statement 0: Effect must be 'Allow' or 'Deny'."],
    // IAM's grammar: exactly one of Action and NotAction, exactly one of Resource and NotResource.
    [
      stmt('"Effect":"Allow","Resource":"r"'),
      'Policy statement 0: A statement must have exactly one of Action and NotAction.',
    ],
    [
      stmt('"Effect":"Allow","Action":"a","NotAction":"b","Resource":"r"'),
      'Policy statement 0: A statement must have exactly one of Action and NotAction.',
    ],
    [
      stmt('"Effect":"Allow","Action":"a"'),
      'Policy statement 0: A statement must have exactly one of Resource and NotResource.',
    ],
    [
      stmt('"Effect":"Allow","NotAction":"a","Resource":"r","NotResource":"s"'),
      'Policy statement 0: A statement must have exactly one of Resource and NotResource.',
    ],
    // A malformed part is named before a missing one.
    [
      stmt('"Effect":"Allow","Resource":5'),
      'Policy statement 0: Resource must be a non-empty string or list of strings.',
    ],
    [
      stmt('"Effect":"Allow","Action":[],"Resource":"r"'),
      'Policy statement 0: Action must be a non-empty string or list of strings.',
    ],
    [
      stmt('"Effect":"Allow","Action":["a",""],"Resource":"r"'),
      'Policy statement 0: Action must be a non-empty string or list of strings.',
    ],
    [
      stmt('"Effect":"Allow","Action":"a","Resource":""'),
      'Policy statement 0: Resource must be a non-empty string or list of strings.',
    ],
    [
      stmt('"Effect":"Allow","Action":"a","Resource":[7]'),
      'Policy statement 0: Resource must be a non-empty string or list of strings.',
    ],
    [
      stmt('"Effect":"Allow","NotAction":5,"Resource":"*"'),
      'Policy statement 0: NotAction must be a non-empty string or list of strings.',
    ],
    [stmt(`${ok},"NotResource":[]`), 'Policy statement 0: NotResource must be a non-empty string or list of strings.'],
    [stmt(`${ok},"Condition":[]`), 'Policy statement 0: Condition must map operators to {key: value or [values]}.'],
    [
      stmt(`${ok},"Condition":{"Bool":"x"}`),
      'Policy statement 0: Condition must map operators to {key: value or [values]}.',
    ],
    [
      stmt(`${ok},"Condition":{"Bool":{"k":[1]}}`),
      'Policy statement 0: Condition must map operators to {key: value or [values]}.',
    ],
    [
      stmt(`${ok},"Condition":{"__proto__":{"k":{}}}`),
      'Policy statement 0: Condition must map operators to {key: value or [values]}.',
    ],
    [stmt(`${ok},"Sid":5`), 'Policy statement 0: Sid must be a string.'],
    [
      `{${V},"Statement":[{${ok}},{"Effect":"Allow","Action":"a"},{"Effect":"Maybe"}]}`,
      'Policy statement 1: A statement must have exactly one of Resource and NotResource.',
    ],
  ])('refuses %s: %s', (text, message) => {
    expect(rejection(text)).toEqual({ code: 'MalformedPolicyException', message });
  });

  it('refuses a document over the size limit before parsing it', () => {
    const text = stmt(`${ok},"Sid":"${'s'.repeat(MAX_POLICY_DOCUMENT_BYTES)}"`);
    expect(rejection(text)).toEqual({
      code: 'MalformedPolicyException',
      message: `The policy document is larger than ${MAX_POLICY_DOCUMENT_BYTES} bytes.`,
    });
  });

  it("refuses a document over IoT Core's 2,048 characters, whitespace not counted", () => {
    const sid = (n: number) => stmt(`${ok},"Sid":"${'s'.repeat(n)}"`);
    const at = (text: string) => text.replace(/\s/g, '').length;
    const base = at(sid(0));
    const longest = sid(POLICY_DOCUMENT_MAX_CHARS - base);
    expect(at(longest)).toBe(POLICY_DOCUMENT_MAX_CHARS);
    expect(() => checkPolicyDocument(longest)).not.toThrow();
    // Whitespace does not count: the same document pretty-printed is still accepted.
    expect(() => checkPolicyDocument(JSON.stringify(JSON.parse(longest), null, 8))).not.toThrow();
    expect(rejection(sid(POLICY_DOCUMENT_MAX_CHARS - base + 1), checkPolicyDocument)).toEqual({
      code: 'MalformedPolicyException',
      message: `The policy document is ${POLICY_DOCUMENT_MAX_CHARS + 1} characters long (whitespace not counted); IoT Core's limit is ${POLICY_DOCUMENT_MAX_CHARS}.`,
    });
  });

  it('refuses a document nested 10,000 levels deep (within the size limit) without walking it', () => {
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    expect(Buffer.byteLength(deep)).toBeLessThan(MAX_POLICY_DOCUMENT_BYTES);
    for (const text of [stmt(`${ok},"Sid":${deep}`), stmt(`${ok},"Condition":{"Bool":{"k":${deep}}}`), deep]) {
      expect(rejection(text)).toEqual({
        code: 'MalformedPolicyException',
        message: 'The policy document is nested more than 64 levels deep.',
      });
    }
  });

  it('keeps a condition operator or key named __proto__ or constructor as an own key, so its statement fails closed', () => {
    const doc = parsePolicyDocument(
      stmt(`${ok},"Condition":{"__proto__":{"iot:ClientId":"x"},"constructor":{"__proto__":["y"]}}`),
    );
    const condition = doc.Statement[0]?.Condition ?? {};
    expect(Object.getPrototypeOf(condition)).toBe(Object.prototype);
    expect(Object.keys(condition)).toEqual(['__proto__', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(condition, '__proto__')?.value).toEqual({ 'iot:ClientId': 'x' });
    expect(Object.keys(condition.constructor ?? {})).toEqual(['__proto__']);
  });

  it('leaves keys the grammar does not name out of the result', () => {
    const doc = parsePolicyDocument(
      `{${V},"Id":"x","Statement":{${ok},"Principal":"*","__proto__":{"Effect":"Deny"}}}`,
    );
    expect(doc).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
    });
  });
});
