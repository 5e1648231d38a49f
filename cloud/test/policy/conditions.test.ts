import { describe, expect, it } from 'vitest';
import { compileCondition, contextValues, evaluateCondition, type PolicyContext } from '../../src/core/policy/index.js';

/**
 * Every IAM condition operator the local IoT Core evaluates, as a table: a match, a miss, the key
 * missing, and the `...IfExists` form ("IAM JSON policy elements: Condition operators"), against
 * the keys an MQTT connection has (AWS IoT Developer Guide, "AWS IoT Core policy variables").
 */

type Condition = Record<string, Record<string, string | string[]>>;

const NOW = Date.parse('2026-03-01T12:00:00Z');
const EPOCH = String(NOW / 1000);

const ctx = (over: Partial<PolicyContext> = {}): PolicyContext => ({
  region: 'eu-west-1',
  accountId: '123456789012',
  clientId: 'pi-01',
  thingNames: ['pi-01'],
  sourceIp: '203.0.113.7',
  thing: {
    attributes: { site: 'plant-a', floor: '42', role: 'arn:aws:iam::123456789012:role/sensor' },
    thingTypeName: 'sensor',
  },
  certificate: {
    subject: { CommonName: 'pi-01', Organization: 'Example' },
    notBefore: 'Jan  1 00:00:00 2026 GMT',
    notAfter: 'Jan  1 00:00:00 2027 GMT',
  },
  ...over,
});
/** A connection with no thing, no source address and no certificate facts: every optional key missing. */
const bare: PolicyContext = { region: 'eu-west-1', accountId: '123456789012', clientId: 'pi-01', thingNames: [] };

const holds = (condition: Condition, c: PolicyContext = ctx(), now = NOW) =>
  evaluateCondition(condition, contextValues(c), now);

describe('condition operators', () => {
  it.each<[string, Condition, PolicyContext, boolean]>([
    // String
    ['StringEquals matches', { StringEquals: { 'iot:Connection.Thing.ThingTypeName': 'sensor' } }, ctx(), true],
    [
      'StringEquals is case-sensitive',
      { StringEquals: { 'iot:Connection.Thing.ThingTypeName': 'Sensor' } },
      ctx(),
      false,
    ],
    ['StringEquals, key missing', { StringEquals: { 'iot:Connection.Thing.ThingTypeName': 'sensor' } }, bare, false],
    [
      'StringEqualsIfExists, key missing',
      { StringEqualsIfExists: { 'iot:Connection.Thing.ThingTypeName': 'x' } },
      bare,
      true,
    ],
    [
      'StringEqualsIfExists, present, no match',
      { StringEqualsIfExists: { 'iot:Connection.Thing.ThingTypeName': 'x' } },
      ctx(),
      false,
    ],
    ['StringNotEquals, equal', { StringNotEquals: { 'iot:ClientId': 'pi-01' } }, ctx(), false],
    ['StringNotEquals, different', { StringNotEquals: { 'iot:ClientId': ['a', 'b'] } }, ctx(), true],
    ['StringNotEquals, key missing', { StringNotEquals: { 'iot:Connection.Thing.ThingTypeName': 'x' } }, bare, true],
    [
      'StringEqualsIgnoreCase',
      { StringEqualsIgnoreCase: { 'iot:Connection.Thing.ThingTypeName': 'SENSOR' } },
      ctx(),
      true,
    ],
    [
      'StringEqualsIgnoreCase, key missing',
      { StringEqualsIgnoreCase: { 'iot:Connection.Thing.ThingTypeName': 'x' } },
      bare,
      false,
    ],
    [
      'StringNotEqualsIgnoreCase',
      { StringNotEqualsIgnoreCase: { 'iot:Connection.Thing.ThingTypeName': 'SENSOR' } },
      ctx(),
      false,
    ],
    [
      'StringNotEqualsIgnoreCase, key missing',
      { StringNotEqualsIgnoreCase: { 'iot:ClientId': 'x', 'iot:Connection.Thing.ThingTypeName': 'y' } },
      bare,
      true,
    ],
    ['StringLike *', { StringLike: { 'iot:Connection.Thing.Attributes[site]': 'plant-*' } }, ctx(), true],
    ['StringLike ?', { StringLike: { 'iot:ClientId': 'pi-0?' } }, ctx(), true],
    ['StringLike, no match', { StringLike: { 'iot:ClientId': 'pi-1*' } }, ctx(), false],
    [
      'StringLike with a variable',
      { StringLike: { 'iot:Certificate.Subject.CommonName': '${iot:ClientId}*' } },
      ctx(),
      true,
    ],
    [
      'StringLikeIfExists, key missing',
      { StringLikeIfExists: { 'iot:Connection.Thing.Attributes[site]': 'x*' } },
      bare,
      true,
    ],
    ['StringNotLike', { StringNotLike: { 'iot:ClientId': 'admin-*' } }, ctx(), true],
    ['StringNotLike, matching', { StringNotLike: { 'iot:ClientId': 'pi-*' } }, ctx(), false],
    ['StringNotLike, key missing', { StringNotLike: { 'iot:Connection.Thing.Attributes[site]': 'x' } }, bare, true],
    // Numeric
    [
      'NumericEquals (an attribute)',
      { NumericEquals: { 'iot:Connection.Thing.Attributes[floor]': '42.0' } },
      ctx(),
      true,
    ],
    ['NumericEquals, different', { NumericEquals: { 'iot:Connection.Thing.Attributes[floor]': '41' } }, ctx(), false],
    [
      'NumericEquals, value not a number',
      { NumericEquals: { 'iot:Connection.Thing.Attributes[site]': '1' } },
      ctx(),
      false,
    ],
    ['NumericEquals, key missing', { NumericEquals: { 'iot:Connection.Thing.Attributes[floor]': '42' } }, bare, false],
    [
      'NumericEqualsIfExists, key missing',
      { NumericEqualsIfExists: { 'iot:Connection.Thing.Attributes[floor]': '1' } },
      bare,
      true,
    ],
    ['NumericNotEquals', { NumericNotEquals: { 'iot:Connection.Thing.Attributes[floor]': ['1', '2'] } }, ctx(), true],
    ['NumericNotEquals, equal', { NumericNotEquals: { 'iot:Connection.Thing.Attributes[floor]': '42' } }, ctx(), false],
    [
      'NumericNotEquals, key missing',
      { NumericNotEquals: { 'iot:Connection.Thing.Attributes[floor]': '42' } },
      bare,
      true,
    ],
    ['NumericLessThan', { NumericLessThan: { 'aws:EpochTime': String(Number(EPOCH) + 1) } }, ctx(), true],
    ['NumericLessThan, equal', { NumericLessThan: { 'aws:EpochTime': EPOCH } }, ctx(), false],
    ['NumericLessThanEquals, equal', { NumericLessThanEquals: { 'aws:EpochTime': EPOCH } }, ctx(), true],
    [
      'NumericLessThanEquals, greater',
      { NumericLessThanEquals: { 'iot:Connection.Thing.Attributes[floor]': '41.5' } },
      ctx(),
      false,
    ],
    ['NumericGreaterThan', { NumericGreaterThan: { 'iot:Connection.Thing.Attributes[floor]': '-3' } }, ctx(), true],
    [
      'NumericGreaterThan, equal',
      { NumericGreaterThan: { 'iot:Connection.Thing.Attributes[floor]': '42' } },
      ctx(),
      false,
    ],
    [
      'NumericGreaterThanEquals, equal',
      { NumericGreaterThanEquals: { 'iot:Connection.Thing.Attributes[floor]': '42' } },
      ctx(),
      true,
    ],
    [
      'NumericGreaterThanEquals, key missing',
      { NumericGreaterThanEquals: { 'iot:Connection.Thing.Attributes[floor]': '0' } },
      bare,
      false,
    ],
    // Date, against aws:CurrentTime, aws:EpochTime and the certificate's validity
    ['DateEquals (ISO)', { DateEquals: { 'aws:CurrentTime': '2026-03-01T12:00:00Z' } }, ctx(), true],
    ['DateEquals (epoch seconds)', { DateEquals: { 'aws:CurrentTime': EPOCH } }, ctx(), true],
    ['DateEquals (another zone)', { DateEquals: { 'aws:CurrentTime': '2026-03-01T13:00:00+01:00' } }, ctx(), true],
    ['DateEquals, another time', { DateEquals: { 'aws:CurrentTime': '2026-03-01T12:00:01Z' } }, ctx(), false],
    ['DateNotEquals', { DateNotEquals: { 'aws:CurrentTime': '2026-03-01' } }, ctx(), true],
    ['DateNotEquals, equal', { DateNotEquals: { 'aws:EpochTime': '2026-03-01T12:00:00Z' } }, ctx(), false],
    ['DateLessThan', { DateLessThan: { 'aws:CurrentTime': '2026-03-02' } }, ctx(), true],
    ['DateLessThan, past', { DateLessThan: { 'aws:CurrentTime': '2020-01-01T00:00:01Z' } }, ctx(), false],
    ['DateLessThanEquals, equal', { DateLessThanEquals: { 'aws:EpochTime': EPOCH } }, ctx(), true],
    ['DateGreaterThan', { DateGreaterThan: { 'aws:CurrentTime': '2020-01-01T00:00:01Z' } }, ctx(), true],
    ['DateGreaterThan, future', { DateGreaterThan: { 'aws:CurrentTime': '2027' } }, ctx(), false],
    [
      'DateGreaterThanEquals, equal',
      { DateGreaterThanEquals: { 'aws:CurrentTime': '2026-03-01T12:00:00Z' } },
      ctx(),
      true,
    ],
    [
      'DateGreaterThan, certificate NotAfter',
      { DateGreaterThan: { 'iot:Certificate.Validity.NotAfter': '2026-12-31' } },
      ctx(),
      true,
    ],
    [
      'DateLessThan, certificate NotBefore',
      { DateLessThan: { 'iot:Certificate.Validity.NotBefore': '2025-12-31' } },
      ctx(),
      false,
    ],
    ['DateLessThan, key missing', { DateLessThan: { 'iot:Certificate.Validity.NotAfter': '2030' } }, bare, false],
    [
      'DateLessThanIfExists, key missing',
      { DateLessThanIfExists: { 'iot:Certificate.Validity.NotAfter': '2020' } },
      bare,
      true,
    ],
    ['DateNotEquals, key missing', { DateNotEquals: { 'iot:Certificate.Validity.NotAfter': '2030' } }, bare, true],
    // Bool
    ['Bool IsAttached', { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } }, ctx(), true],
    ['Bool IsAttached, not attached', { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } }, bare, false],
    ['Bool is case-insensitive', { Bool: { 'aws:SecureTransport': 'TRUE' } }, ctx(), true],
    ['Bool SecureTransport false', { Bool: { 'aws:SecureTransport': 'false' } }, ctx(), false],
    ['Bool, key missing', { Bool: { 'iot:Connection.Thing.Attributes[enabled]': 'true' } }, ctx(), false],
    [
      'BoolIfExists, key missing',
      { BoolIfExists: { 'iot:Connection.Thing.Attributes[enabled]': 'true' } },
      ctx(),
      true,
    ],
    // Binary
    ['BinaryEquals', { BinaryEquals: { 'iot:ClientId': 'cGktMDE=' } }, ctx(), true],
    ['BinaryEquals, other bytes', { BinaryEquals: { 'iot:ClientId': 'cGktMDI=' } }, ctx(), false],
    ['BinaryEquals, key missing', { BinaryEquals: { 'iot:Connection.Thing.ThingTypeName': 'c2Vuc29y' } }, bare, false],
    [
      'BinaryEqualsIfExists, key missing',
      { BinaryEqualsIfExists: { 'iot:Connection.Thing.ThingTypeName': 'eA==' } },
      bare,
      true,
    ],
    // IP address (the Developer Guide's example: IpAddress on aws:SourceIp)
    ['IpAddress, one address', { IpAddress: { 'aws:SourceIp': '203.0.113.7' } }, ctx(), true],
    ['IpAddress, CIDR', { IpAddress: { 'aws:SourceIp': ['198.51.100.0/24', '203.0.113.0/24'] } }, ctx(), true],
    ['IpAddress, outside', { IpAddress: { 'aws:SourceIp': '123.45.167.89' } }, ctx(), false],
    [
      'IpAddress, IPv6',
      { IpAddress: { 'aws:SourceIp': '2001:DB8:1234:5678::/64' } },
      ctx({ sourceIp: '2001:db8:1234:5678:a::1' }),
      true,
    ],
    [
      'IpAddress, IPv4-mapped client',
      { IpAddress: { 'aws:SourceIp': '127.0.0.0/8' } },
      ctx({ sourceIp: '::ffff:127.0.0.1' }),
      true,
    ],
    ['IpAddress, key missing', { IpAddress: { 'aws:SourceIp': '0.0.0.0/0' } }, bare, false],
    ['IpAddressIfExists, key missing', { IpAddressIfExists: { 'aws:SourceIp': '10.0.0.0/8' } }, bare, true],
    ['NotIpAddress, outside', { NotIpAddress: { 'aws:SourceIp': '10.0.0.0/8' } }, ctx(), true],
    ['NotIpAddress, inside', { NotIpAddress: { 'aws:SourceIp': '203.0.113.0/24' } }, ctx(), false],
    ['NotIpAddress, key missing', { NotIpAddress: { 'aws:SourceIp': '10.0.0.0/8' } }, bare, true],
    // ARN: six colon-delimited components, each matched on its own
    [
      'ArnEquals',
      { ArnEquals: { 'iot:Connection.Thing.Attributes[role]': 'arn:aws:iam::123456789012:role/sensor' } },
      ctx(),
      true,
    ],
    [
      'ArnEquals takes wildcards, as ArnLike',
      { ArnEquals: { 'iot:Connection.Thing.Attributes[role]': 'arn:aws:iam::*:role/*' } },
      ctx(),
      true,
    ],
    [
      'ArnLike',
      { ArnLike: { 'iot:Connection.Thing.Attributes[role]': 'arn:aws:iam::123456789012:role/sen*' } },
      ctx(),
      true,
    ],
    [
      'ArnLike, * does not cross a component',
      { ArnLike: { 'iot:Connection.Thing.Attributes[role]': 'arn:aws:*:role/sensor' } },
      ctx(),
      false,
    ],
    [
      'ArnLike, another account',
      { ArnLike: { 'iot:Connection.Thing.Attributes[role]': 'arn:aws:iam::210987654321:role/*' } },
      ctx(),
      false,
    ],
    ['ArnLike, value not an ARN', { ArnLike: { 'iot:Connection.Thing.Attributes[site]': '*' } }, ctx(), false],
    ['ArnLike, key missing', { ArnLike: { 'iot:Connection.Thing.Attributes[role]': 'arn:*:*:*:*:*' } }, bare, false],
    [
      'ArnLikeIfExists, key missing',
      { ArnLikeIfExists: { 'iot:Connection.Thing.Attributes[role]': 'arn:x:y:z:1:r' } },
      bare,
      true,
    ],
    [
      'ArnNotEquals',
      { ArnNotEquals: { 'iot:Connection.Thing.Attributes[role]': 'arn:aws:iam::123456789012:role/other' } },
      ctx(),
      true,
    ],
    [
      'ArnNotLike, matching',
      { ArnNotLike: { 'iot:Connection.Thing.Attributes[role]': 'arn:aws:iam::*:role/*' } },
      ctx(),
      false,
    ],
    [
      'ArnNotLike, key missing',
      { ArnNotLike: { 'iot:Connection.Thing.Attributes[role]': 'arn:*:*:*:*:*' } },
      bare,
      true,
    ],
    // Null
    ['Null true, key missing', { Null: { 'iot:Connection.Thing.ThingTypeName': 'true' } }, bare, true],
    ['Null true, key present', { Null: { 'iot:Connection.Thing.ThingTypeName': 'true' } }, ctx(), false],
    ['Null false, key present', { Null: { 'iot:Connection.Thing.Attributes[site]': 'false' } }, ctx(), true],
    ['Null false, key missing', { Null: { 'aws:SourceIp': 'false' } }, bare, false],
    // Blocks: every operator, every key
    [
      'the Developer Guide thing policy example',
      {
        StringEquals: {
          'iot:Connection.Thing.Attributes[site]': 'plant-a',
          'iot:Connection.Thing.ThingTypeName': 'sensor',
        },
        Bool: { 'iot:Connection.Thing.IsAttached': 'true' },
      },
      ctx(),
      true,
    ],
    [
      'one key of two failing fails the block',
      {
        StringEquals: {
          'iot:Connection.Thing.Attributes[site]': 'plant-a',
          'iot:Connection.Thing.ThingTypeName': 'gateway',
        },
      },
      ctx(),
      false,
    ],
  ])('%s', (_name, condition, c, expected) => {
    expect(holds(condition, c)).toBe(expected);
  });

  it('reads operator and key names case-insensitively, a thing attribute name as written', () => {
    expect(holds({ STRINGEQUALS: { 'IOT:CONNECTION.THING.ATTRIBUTES[site]': 'plant-a' } })).toBe(true);
    expect(holds({ StringEquals: { 'iot:Connection.Thing.Attributes[SITE]': 'plant-a' } })).toBe(false);
    expect(holds({ StringEquals: { 'iot:connection.thing.thingtypename': 'sensor' } })).toBe(true);
  });

  it('has no thing facts for a client id that is not the attached thing', () => {
    const other = ctx({ clientId: 'pi-02' });
    expect(holds({ Null: { 'iot:Connection.Thing.Attributes[site]': 'true' } }, other)).toBe(true);
    expect(holds({ Null: { 'iot:Connection.Thing.ThingTypeName': 'true' } }, other)).toBe(true);
    expect(holds({ Bool: { 'iot:Connection.Thing.IsAttached': 'false' } }, other)).toBe(true);
  });
});

describe('set operators on iot:ConnectAttributes (the Developer Guide connect policy examples)', () => {
  const persistent = ctx({ connectAttributes: ['PersistentConnect'] });
  const will = ctx({ connectAttributes: ['LastWill'] });
  const both = ctx({ connectAttributes: ['PersistentConnect', 'LastWill'] });
  const none = ctx({ connectAttributes: [] });
  const allowOnlyPersistent = { 'ForAllValues:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] } };
  const disallowPersistent = { 'ForAllValues:StringNotEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] } };
  const anyPersistent = { 'ForAnyValue:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] } };
  const anyNotPersistent = { 'ForAnyValue:StringNotEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] } };

  it.each<[string, Condition, PolicyContext, boolean]>([
    ['ForAllValues:StringEquals, PersistentConnect', allowOnlyPersistent, persistent, true],
    ['ForAllValues:StringEquals, LastWill', allowOnlyPersistent, will, false],
    ['ForAllValues:StringEquals, both', allowOnlyPersistent, both, false],
    ['ForAllValues:StringEquals, none (empty set: true)', allowOnlyPersistent, none, true],
    ['ForAllValues:StringNotEquals, PersistentConnect', disallowPersistent, persistent, false],
    ['ForAllValues:StringNotEquals, LastWill', disallowPersistent, will, true],
    ['ForAllValues:StringNotEquals, none', disallowPersistent, none, true],
    ['ForAnyValue:StringEquals, both', anyPersistent, both, true],
    ['ForAnyValue:StringEquals, LastWill', anyPersistent, will, false],
    ['ForAnyValue:StringEquals, none (empty set: false)', anyPersistent, none, false],
    ['ForAnyValue:StringNotEquals, both', anyNotPersistent, both, true],
    ['ForAnyValue:StringNotEquals, PersistentConnect', anyNotPersistent, persistent, false],
    ['ForAnyValue:StringNotEquals, none (empty set: false)', anyNotPersistent, none, false],
    [
      'ForAnyValue:StringEqualsIfExists, none',
      { 'ForAnyValue:StringEqualsIfExists': { 'iot:ConnectAttributes': 'LastWill' } },
      none,
      true,
    ],
    ['ForAnyValue:StringLike', { 'ForAnyValue:StringLike': { 'iot:ConnectAttributes': 'Last*' } }, both, true],
    [
      'a multi-valued key under a single-valued operator reads as any',
      { StringEquals: { 'iot:ConnectAttributes': 'LastWill' } },
      both,
      true,
    ],
    ['Null true on the empty set', { Null: { 'iot:ConnectAttributes': 'true' } }, none, true],
  ])('%s', (_name, condition, c, expected) => {
    expect(holds(condition, c)).toBe(expected);
  });
});

describe('time keys', () => {
  it('leaves a condition on aws:CurrentTime or aws:EpochTime to the request time, and decides the rest once', () => {
    const values = contextValues(ctx());
    const window = {
      DateLessThan: { 'aws:CurrentTime': '2026-03-01T12:00:00Z' },
      Bool: { 'aws:SecureTransport': 'true' },
    };
    const compiled = compileCondition(window, values);
    expect(typeof compiled).toBe('function');
    const at = compiled as (now: number) => boolean;
    expect(at(NOW - 1000)).toBe(true);
    expect(at(NOW)).toBe(false);
    expect(compileCondition({ Bool: { 'aws:SecureTransport': 'true' } }, values)).toBe(true);
    // A static part that fails decides the block whatever the time.
    expect(compileCondition({ ...window, Bool: { 'aws:SecureTransport': 'false' } }, values)).toBe(false);
    expect(typeof compileCondition({ NumericGreaterThan: { 'aws:EpochTime': '0' } }, values)).toBe('function');
  });

  it('gives aws:CurrentTime to the second, so DateEquals can name a second', () => {
    expect(holds({ DateEquals: { 'aws:CurrentTime': '2026-03-01T12:00:00Z' } }, ctx(), NOW + 999)).toBe(true);
    expect(holds({ NumericEquals: { 'aws:EpochTime': EPOCH } }, ctx(), NOW + 999)).toBe(true);
  });

  it('answers time conditions as the general comparison of the same instant does (many generated cases)', () => {
    // The time keys take a numeric fast path; a certificate date key holding the same instant goes
    // through the general one (text in, parsed per question). They must agree everywhere.
    const operators = [
      'DateEquals',
      'DateNotEquals',
      'DateLessThan',
      'DateLessThanEquals',
      'DateGreaterThan',
      'DateGreaterThanEquals',
    ];
    const limits = ['2026-03-01T12:00:00Z', '2026-03-01T12:00:01Z', '1772366400', '2026-03-01', '2026', 'not a date'];
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      const now = NOW + (rand(5) - 2) * 1000 + rand(1000) - 86_400_000 * rand(2) * (rand(2) ? 1 : -1);
      const operator = `${operators[rand(operators.length)]}${rand(4) === 0 ? 'IfExists' : ''}`;
      const value = limits[rand(limits.length)] as string;
      const general = holds(
        { [operator]: { 'iot:Certificate.Validity.NotAfter': value } },
        ctx({ certificate: { notAfter: new Date(Math.floor(now / 1000) * 1000).toUTCString() } }),
        now,
      );
      expect(holds({ [operator]: { 'aws:CurrentTime': value } }, ctx(), now), `${operator} ${value} at ${now}`).toBe(
        general,
      );
      expect(holds({ [operator]: { 'aws:EpochTime': value } }, ctx(), now), `${operator} ${value} at ${now}`).toBe(
        general,
      );
    }
    for (const op of ['NumericEquals', 'NumericLessThan', 'NumericGreaterThanEquals', 'NumericNotEquals']) {
      for (const delta of [-1, 0, 1]) {
        const limit = String(Number(EPOCH) + delta);
        const general = holds(
          { [op]: { 'iot:Connection.Thing.Attributes[floor]': limit } },
          ctx({ thing: { attributes: { floor: EPOCH } } }),
        );
        expect(holds({ [op]: { 'aws:EpochTime': limit } }, ctx(), NOW + 999)).toBe(general);
      }
    }
  });

  it('answers undefined for an operator it does not know (the caller fails closed)', () => {
    expect(holds({ StringMaybe: { 'iot:ClientId': 'pi-01' } })).toBeUndefined();
    expect(holds({ 'ForAnyValue:Null': { 'iot:ClientId': 'true' } })).toBeUndefined();
    expect(holds({ NullIfExists: { 'iot:ClientId': 'true' } })).toBeUndefined();
  });
});
