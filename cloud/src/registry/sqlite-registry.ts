import { createHash, X509Certificate as NodeX509, randomUUID } from 'node:crypto';
import type { IotPolicyDocument } from '@pifleet/protocol';
import { isJsonObject, ownValue, parseJson } from '@pifleet/protocol';
import { DATA_FILE_ROLES, DataFileError, dataFileError, openSqliteFile } from '../adapters/sqlite-open.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import type {
  AccountContext,
  CertificateStatus,
  DeviceIdentity,
  IdentityDirectory,
  ThingFacts,
} from '../ports/identity.js';
import { invalid, notFound, RegistryError } from './errors.js';
import {
  createTypesAndGroups,
  type GroupRef,
  type MembershipChange,
  type MembershipInput,
  MIGRATION_TO_V2,
  type ThingGroupRecord,
  type ThingTypeRecord,
  type UpdateThingGroupInput,
} from './thing-groups.js';
import {
  checkAttributes,
  checkCertificateId,
  checkPolicyDocument,
  checkPolicyName,
  checkThingName,
  checkThingTypeName,
  MAX_ATTRIBUTES,
  MAX_UNTYPED_ATTRIBUTES,
  parsePolicyDocument,
} from './validation.js';

export type { GroupRef, MembershipChange, MembershipInput, ThingGroupRecord, ThingTypeRecord } from './thing-groups.js';

/**
 * The registry of the local IoT Core: things, certificates, policies and their attachments, with
 * AWS IoT's semantics (names, versions, ARNs, delete constraints). Persisted in SQLite (WAL,
 * synchronous writes) so it survives restarts and `kill -9`. It is the broker's IdentityDirectory.
 */

export interface ThingRecord {
  readonly thingName: string;
  readonly thingId: string;
  readonly thingArn: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly version: number;
  readonly thingTypeName?: string;
}

export interface CertificateRecord {
  readonly certificateId: string;
  readonly certificateArn: string;
  readonly certificatePem: string;
  readonly status: CertificateStatus;
  readonly creationDate: Date;
  readonly lastModifiedDate: Date;
  readonly generationId: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface PolicyRecord {
  readonly policyName: string;
  readonly policyArn: string;
  readonly policyDocument: string;
  readonly defaultVersionId: string;
  readonly creationDate: Date;
  readonly lastModifiedDate: Date;
  readonly generationId: string;
}

export interface Page<T> {
  readonly items: readonly T[];
  /** Present when more items follow; pass it back to get the next page. */
  readonly next?: string;
}

export interface PageRequest {
  readonly pageSize?: number | undefined;
  readonly token?: string | undefined;
}

export interface Registry extends IdentityDirectory {
  readonly account: AccountContext;
  createThing(input: {
    thingName: string;
    thingTypeName?: string | undefined;
    attributes?: Record<string, string> | undefined;
  }): ThingRecord;
  describeThing(thingName: string): ThingRecord;
  listThings(
    input: PageRequest & {
      attributeName?: string | undefined;
      attributeValue?: string | undefined;
      usePrefixAttributeValue?: boolean | undefined;
      thingTypeName?: string | undefined;
    },
  ): Page<ThingRecord>;
  updateThing(input: {
    thingName: string;
    thingTypeName?: string | undefined;
    removeThingType?: boolean | undefined;
    attributes?: Record<string, string> | undefined;
    merge?: boolean | undefined;
    expectedVersion?: number | undefined;
  }): ThingRecord;
  deleteThing(input: { thingName: string; expectedVersion?: number | undefined }): void;

  /** PENDING_ACTIVATION: a certificate fleet provisioning created, until RegisterThing sets its status. */
  registerCertificate(input: {
    certificatePem: string;
    status: 'ACTIVE' | 'INACTIVE' | 'PENDING_ACTIVATION';
  }): CertificateRecord;
  describeCertificate(certificateId: string): CertificateRecord;
  listCertificates(input: PageRequest & { ascending?: boolean | undefined }): Page<CertificateRecord>;
  updateCertificate(certificateId: string, newStatus: string): void;
  deleteCertificate(certificateId: string, forceDelete?: boolean): void;

  createPolicy(policyName: string, policyDocument: string): PolicyRecord;
  getPolicy(policyName: string): PolicyRecord;
  listPolicies(input: PageRequest & { ascending?: boolean | undefined }): Page<PolicyRecord>;
  deletePolicy(policyName: string): void;
  attachPolicy(policyName: string, target: string): void;
  detachPolicy(policyName: string, target: string): void;
  /** `target`: a certificate ARN or a thing-group ARN; `recursive` adds a group's ancestors' policies. */
  listAttachedPolicies(target: string, page: PageRequest, recursive?: boolean): Page<PolicyRecord>;
  /** Certificate and thing-group ARNs a policy is attached to. */
  listTargetsForPolicy(policyName: string, page: PageRequest): Page<string>;

  createThingType(input: {
    thingTypeName: string;
    description?: string | undefined;
    searchableAttributes?: readonly string[] | undefined;
  }): ThingTypeRecord;
  describeThingType(thingTypeName: string): ThingTypeRecord;
  listThingTypes(input: PageRequest & { thingTypeName?: string | undefined }): Page<ThingTypeRecord>;
  deprecateThingType(thingTypeName: string, undoDeprecate: boolean): void;
  deleteThingType(thingTypeName: string): void;

  createThingGroup(input: {
    thingGroupName: string;
    parentGroupName?: string | undefined;
    description?: string | undefined;
    attributes?: Readonly<Record<string, string>> | undefined;
  }): ThingGroupRecord;
  describeThingGroup(thingGroupName: string): ThingGroupRecord;
  listThingGroups(
    input: PageRequest & {
      parentGroup?: string | undefined;
      namePrefixFilter?: string | undefined;
      recursive?: boolean | undefined;
    },
  ): Page<GroupRef>;
  /** Returns the group's new version. */
  updateThingGroup(input: UpdateThingGroupInput): number;
  deleteThingGroup(input: { thingGroupName: string; expectedVersion?: number | undefined }): void;
  addThingToThingGroup(input: MembershipInput): void;
  removeThingFromThingGroup(input: MembershipInput): void;
  /**
   * Calls `listener` after a thing joins or leaves a static group, or is deleted (and so leaves
   * every group); returns a function that removes it.
   */
  onMembershipChange(listener: (change: MembershipChange) => void): () => void;
  listThingsInThingGroup(
    thingGroupName: string,
    input: PageRequest & { recursive?: boolean | undefined },
  ): Page<string>;
  listThingGroupsForThing(thingName: string, page: PageRequest): Page<GroupRef>;

  attachThingPrincipal(thingName: string, principal: string): void;
  detachThingPrincipal(thingName: string, principal: string): void;
  listThingPrincipals(thingName: string, page: PageRequest): Page<string>;

  close(): void;
}

export interface SqliteRegistryOptions {
  /** SQLite file path, or ':memory:'. */
  readonly file: string;
  readonly account: AccountContext;
  /** Current time in ms since the epoch. */
  readonly now: () => number;
  readonly logger?: Logger;
}

/** 1: things, certificates, policies. 2: thing types and thing groups ({@link MIGRATION_TO_V2}). */
const SCHEMA_VERSION = 2;
const DEFAULT_PAGE = 50;
const MAX_PAGE = 250;
const SETTABLE_STATUSES = new Set(['ACTIVE', 'INACTIVE', 'REVOKED']);
const ALL_STATUSES = new Set([
  'ACTIVE',
  'INACTIVE',
  'REVOKED',
  'PENDING_TRANSFER',
  'REGISTER_ACTIVE',
  'REGISTER_INACTIVE',
  'PENDING_ACTIVATION',
]);

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS things (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  thing_id TEXT NOT NULL,
  attributes TEXT NOT NULL,
  version INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  pem TEXT NOT NULL,
  status TEXT NOT NULL,
  generation TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS policies (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  document TEXT NOT NULL,
  generation TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS policy_targets (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  policy_name TEXT NOT NULL REFERENCES policies(name),
  certificate_id TEXT NOT NULL REFERENCES certificates(id),
  UNIQUE (policy_name, certificate_id)
);
CREATE INDEX IF NOT EXISTS policy_targets_by_cert ON policy_targets(certificate_id, seq);
CREATE TABLE IF NOT EXISTS thing_principals (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  thing_name TEXT NOT NULL REFERENCES things(name),
  certificate_id TEXT NOT NULL REFERENCES certificates(id),
  UNIQUE (thing_name, certificate_id)
);
CREATE INDEX IF NOT EXISTS thing_principals_by_cert ON thing_principals(certificate_id);
`;

interface ThingRow {
  seq: number;
  name: string;
  thing_id: string;
  attributes: string;
  version: number;
  thing_type: string | null;
}
interface CertRow {
  seq: number;
  id: string;
  pem: string;
  status: string;
  generation: string;
  not_before: number;
  not_after: number;
  created_at: number;
  updated_at: number;
}
interface PolicyRow {
  seq: number;
  name: string;
  document: string;
  generation: string;
  created_at: number;
  updated_at: number;
}

function encodeToken(value: number | string): string {
  return Buffer.from(JSON.stringify({ k: value })).toString('base64url');
}

/**
 * The key a page token carries (undefined for no token). A token comes back from the client, so
 * it is outside input: decoded with the depth-bounded parser, its `k` read as an own key, and
 * anything that is not a token of this kind refused.
 */
function decodeToken(token: string | undefined, kind: 'number'): number | undefined;
function decodeToken(token: string | undefined, kind: 'string'): string | undefined;
function decodeToken(token: string | undefined, kind: 'number' | 'string'): number | string | undefined {
  if (token === undefined || token === '') return undefined;
  const k = decodeAnyToken(token);
  if ((kind === 'number' && typeof k === 'number') || (kind === 'string' && typeof k === 'string')) return k;
  throw invalid('The pagination token is not valid.');
}

/** A token's key, number or string (a list in two parts tells them apart by kind). */
function decodeAnyToken(token: string): number | string {
  const json = parseJson(Buffer.from(token, 'base64url').toString('utf8'));
  const k = json.ok && isJsonObject(json.value) ? ownValue(json.value, 'k') : undefined;
  if (typeof k === 'number' || typeof k === 'string') return k;
  throw invalid('The pagination token is not valid.');
}

/**
 * A thing's attributes as this module stored them. The column is written only here (createThing,
 * updateThing), as `JSON.stringify` of a map of strings that {@link checkAttributes} passed, in
 * the same transaction as the read that precedes it; the schema version check at open refuses
 * files of another layout. So the text is our own write of a known shape, and it is not parsed
 * again against a schema on every describe and every row of a ListThings scan.
 */
const storedAttributes = (text: string): Record<string, string> => JSON.parse(text) as Record<string, string>;

function pageSize(value: number | undefined): number {
  if (value === undefined) return DEFAULT_PAGE;
  if (!Number.isInteger(value) || value < 1 || value > MAX_PAGE) {
    throw invalid(`The page size must be an integer from 1 to ${MAX_PAGE}.`);
  }
  return value;
}

function sortedEntries(attributes: Readonly<Record<string, string>>): string {
  return JSON.stringify(
    Object.fromEntries(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  );
}

/** Opens (creating if needed) the registry database. Synchronous: call it from start(). */
export function openSqliteRegistry(options: SqliteRegistryOptions): Registry {
  const { account, now } = options;
  const logger = options.logger ?? silentLogger();
  const db = openSqliteFile(options.file, DATA_FILE_ROLES.registry);
  let version: { value: string } | undefined;
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.exec(SCHEMA);
    version = db.prepare('SELECT value FROM meta WHERE key = ?').get('schema_version') as { value: string } | undefined;
    // A new file gets the version-1 layout above, then every migration, as an older data dir does.
    if (version === undefined || version.value === '1') {
      db.transaction(() => {
        db.exec(MIGRATION_TO_V2);
        db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run('schema_version', '2');
      })();
      version = { value: String(SCHEMA_VERSION) };
    }
  } catch (err) {
    db.close();
    throw dataFileError(err, options.file, DATA_FILE_ROLES.registry);
  }
  if (version !== undefined && Number(version.value) !== SCHEMA_VERSION) {
    db.close();
    throw new DataFileError(
      'DATA_FILE_UNSUPPORTED',
      `${options.file} has registry schema version ${version.value}, this core reads version ${SCHEMA_VERSION}: ` +
        'run the pifleet version that wrote it, or move the file aside to start with an empty registry',
      { data: { file: options.file, schemaVersion: version.value } },
    );
  }

  const arnPrefix = `arn:aws:iot:${account.region}:${account.accountId}`;
  const thingArn = (name: string) => `${arnPrefix}:thing/${name}`;
  const certArn = (id: string) => `${arnPrefix}:cert/${id}`;
  const policyArn = (name: string) => `${arnPrefix}:policy/${name}`;

  const q = {
    thingByName: db.prepare<[string], ThingRow>('SELECT * FROM things WHERE name = ?'),
    insertThing: db.prepare(
      'INSERT INTO things (name, thing_id, attributes, version, created_at) VALUES (?, ?, ?, 1, ?)',
    ),
    insertTypedThing: db.prepare(
      'INSERT INTO things (name, thing_id, attributes, version, created_at, thing_type) VALUES (?, ?, ?, 1, ?, ?)',
    ),
    updateThing: db.prepare('UPDATE things SET attributes = ?, thing_type = ?, version = version + 1 WHERE name = ?'),
    deleteThing: db.prepare('DELETE FROM things WHERE name = ?'),
    thingsAfter: db.prepare<[string, number], ThingRow>('SELECT * FROM things WHERE name > ? ORDER BY name LIMIT ?'),
    certById: db.prepare<[string], CertRow>('SELECT * FROM certificates WHERE id = ?'),
    insertCert: db.prepare(
      `INSERT INTO certificates (id, pem, status, generation, not_before, not_after, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    updateCertStatus: db.prepare('UPDATE certificates SET status = ?, generation = ?, updated_at = ? WHERE id = ?'),
    deleteCert: db.prepare('DELETE FROM certificates WHERE id = ?'),
    certsAsc: db.prepare<[number, number], CertRow>('SELECT * FROM certificates WHERE seq > ? ORDER BY seq LIMIT ?'),
    certsDesc: db.prepare<[number, number], CertRow>(
      'SELECT * FROM certificates WHERE seq < ? ORDER BY seq DESC LIMIT ?',
    ),
    policyByName: db.prepare<[string], PolicyRow>('SELECT * FROM policies WHERE name = ?'),
    insertPolicy: db.prepare(
      'INSERT INTO policies (name, document, generation, created_at, updated_at) VALUES (?, ?, ?, ?, ?)',
    ),
    deletePolicy: db.prepare('DELETE FROM policies WHERE name = ?'),
    policiesAsc: db.prepare<[number, number], PolicyRow>('SELECT * FROM policies WHERE seq > ? ORDER BY seq LIMIT ?'),
    policiesDesc: db.prepare<[number, number], PolicyRow>(
      'SELECT * FROM policies WHERE seq < ? ORDER BY seq DESC LIMIT ?',
    ),
    attachPolicy: db.prepare('INSERT OR IGNORE INTO policy_targets (policy_name, certificate_id) VALUES (?, ?)'),
    detachPolicy: db.prepare('DELETE FROM policy_targets WHERE policy_name = ? AND certificate_id = ?'),
    detachAllPolicies: db.prepare('DELETE FROM policy_targets WHERE certificate_id = ?'),
    targetsOfPolicy: db.prepare<[string], { certificate_id: string }>(
      'SELECT certificate_id FROM policy_targets WHERE policy_name = ?',
    ),
    targetsOfPolicyPage: db.prepare<[string, number, number], { certificate_id: string; seq: number }>(
      'SELECT certificate_id, seq FROM policy_targets WHERE policy_name = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    thingsOfTypeAfter: db.prepare<[string, string, number], ThingRow>(
      'SELECT * FROM things WHERE thing_type = ? AND name > ? ORDER BY name LIMIT ?',
    ),
    policiesOfCert: db.prepare<[string, number, number], PolicyRow & { t_seq: number }>(
      `SELECT p.*, t.seq AS t_seq FROM policy_targets t JOIN policies p ON p.name = t.policy_name
       WHERE t.certificate_id = ? AND t.seq > ? ORDER BY t.seq LIMIT ?`,
    ),
    attachThing: db.prepare('INSERT OR IGNORE INTO thing_principals (thing_name, certificate_id) VALUES (?, ?)'),
    detachThing: db.prepare('DELETE FROM thing_principals WHERE thing_name = ? AND certificate_id = ?'),
    principalsOfThing: db.prepare<[string, number, number], { certificate_id: string; seq: number }>(
      'SELECT certificate_id, seq FROM thing_principals WHERE thing_name = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    countPrincipalsOfThing: db.prepare<[string], { n: number }>(
      'SELECT COUNT(*) AS n FROM thing_principals WHERE thing_name = ?',
    ),
    thingsOfCert: db.prepare<[string], { thing_name: string }>(
      'SELECT thing_name FROM thing_principals WHERE certificate_id = ? ORDER BY thing_name',
    ),
    countPoliciesOfCert: db.prepare<[string], { n: number }>(
      'SELECT COUNT(*) AS n FROM policy_targets WHERE certificate_id = ?',
    ),
  };

  const listeners = new Set<(certificateId: string) => void>();
  const membershipListeners = new Set<(change: MembershipChange) => void>();
  function membershipChanged(change: MembershipChange | undefined): void {
    if (change === undefined) return;
    for (const listener of membershipListeners) {
      try {
        listener(change);
      } catch (err) {
        logger.error({ err, change }, 'membership change listener failed');
      }
    }
  }
  const identities = new Map<string, DeviceIdentity | null>();
  const parsedPolicies = new Map<string, IotPolicyDocument>();

  function changed(certificateIds: Iterable<string>): void {
    for (const id of certificateIds) {
      identities.delete(id);
      for (const listener of listeners) {
        try {
          listener(id);
        } catch (err) {
          logger.error({ err, certificateId: id }, 'identity change listener failed');
        }
      }
    }
  }

  const toThing = (row: ThingRow): ThingRecord => ({
    thingName: row.name,
    thingId: row.thing_id,
    thingArn: thingArn(row.name),
    attributes: storedAttributes(row.attributes),
    version: row.version,
    ...(row.thing_type === null ? {} : { thingTypeName: row.thing_type }),
  });
  const toCert = (row: CertRow): CertificateRecord => ({
    certificateId: row.id,
    certificateArn: certArn(row.id),
    certificatePem: row.pem,
    status: row.status as CertificateStatus,
    creationDate: new Date(row.created_at),
    lastModifiedDate: new Date(row.updated_at),
    generationId: row.generation,
    notBefore: new Date(row.not_before),
    notAfter: new Date(row.not_after),
  });
  const toPolicy = (row: PolicyRow): PolicyRecord => ({
    policyName: row.name,
    policyArn: policyArn(row.name),
    policyDocument: row.document,
    defaultVersionId: '1',
    creationDate: new Date(row.created_at),
    lastModifiedDate: new Date(row.updated_at),
    generationId: row.generation,
  });

  function thingRow(thingName: string): ThingRow {
    checkThingName(thingName);
    const row = q.thingByName.get(thingName);
    if (!row) throw notFound(`Thing ${thingName} cannot be found.`, { thingName });
    return row;
  }
  function certRow(certificateId: string): CertRow {
    checkCertificateId(certificateId);
    const row = q.certById.get(certificateId);
    if (!row) throw notFound(`Certificate ${certificateId} cannot be found.`, { certificateId });
    return row;
  }
  function policyRow(policyName: string): PolicyRow {
    checkPolicyName(policyName);
    const row = q.policyByName.get(policyName);
    if (!row) throw notFound(`Policy ${policyName} cannot be found.`, { policyName });
    return row;
  }
  /** Resolves a certificate ARN principal of this account and region to the stored certificate. */
  function principalRow(principal: string): CertRow {
    const match = /^arn:aws:iot:([^:]+):([^:]+):cert\/([a-f0-9]{64})$/.exec(principal);
    if (!match) throw invalid(`Principal '${principal}' is not a certificate ARN.`, { principal });
    const row =
      match[1] === account.region && match[2] === account.accountId ? q.certById.get(match[3] as string) : undefined;
    if (!row) throw notFound(`Certificate ${principal} cannot be found.`, { principal });
    return row;
  }
  function policyDocumentOf(row: PolicyRow): IotPolicyDocument {
    const key = `${row.name}\u0000${row.generation}`;
    let doc = parsedPolicies.get(key);
    if (!doc) {
      doc = parsePolicyDocument(row.document);
      parsedPolicies.set(key, doc);
    }
    return doc;
  }

  const tx = <A extends unknown[], R>(fn: (...args: A) => R) => db.transaction(fn);

  const groups = createTypesAndGroups({
    db,
    now,
    arnPrefix,
    changed,
    policyOf: (name) => {
      const row = q.policyByName.get(name) as PolicyRow;
      return Object.freeze({ name: row.name, document: policyDocumentOf(row) });
    },
    pageSize,
    encodeToken,
    decodeToken: (token) => decodeToken(token, 'string'),
  });

  /** The attribute limit of a thing of this type (or none): AWS's 50 with a thing type, 3 without. */
  const attributeLimit = (thingTypeName: string | null | undefined) =>
    thingTypeName === null || thingTypeName === undefined ? MAX_UNTYPED_ATTRIBUTES : MAX_ATTRIBUTES;

  const registry: Registry = {
    account,

    identityOf(certificateId) {
      const cached = identities.get(certificateId);
      if (cached !== undefined) return cached ?? undefined;
      const row = q.certById.get(certificateId);
      if (!row) {
        identities.set(certificateId, null);
        return undefined;
      }
      const thingNames = Object.freeze(q.thingsOfCert.all(row.id).map((r) => r.thing_name));
      const things = new Map<string, ThingFacts>();
      for (const name of thingNames) {
        const thing = q.thingByName.get(name);
        if (!thing) continue;
        things.set(
          name,
          Object.freeze({
            attributes: Object.freeze(storedAttributes(thing.attributes)),
            ...(thing.thing_type === null ? {} : { thingTypeName: thing.thing_type }),
            groupPolicies: Object.freeze(groups.groupPoliciesOf(name)),
          }),
        );
      }
      const identity: DeviceIdentity = Object.freeze({
        certificateId: row.id,
        certificateArn: certArn(row.id),
        status: row.status as CertificateStatus,
        thingNames,
        things,
        policies: Object.freeze(
          q.policiesOfCert
            .all(row.id, 0, 1_000_000)
            .map((p) => Object.freeze({ name: p.name, document: policyDocumentOf(p) })),
        ),
      });
      identities.set(certificateId, identity);
      return identity;
    },

    onIdentityChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },

    createThing({ thingName, thingTypeName, attributes = {} }) {
      checkThingName(thingName);
      const clean = Object.fromEntries(Object.entries(attributes).filter(([, v]) => v !== ''));
      return tx(() => {
        // The type is looked up first: AWS answers a missing type with 404 before the attributes' checks.
        if (thingTypeName !== undefined) groups.describeThingType(thingTypeName);
        checkAttributes(attributes, attributeLimit(thingTypeName));
        const existing = q.thingByName.get(thingName);
        if (existing) {
          if (
            sortedEntries(storedAttributes(existing.attributes)) === sortedEntries(clean) &&
            (existing.thing_type ?? undefined) === thingTypeName
          ) {
            return toThing(existing);
          }
          throw new RegistryError(
            'ResourceAlreadyExistsException',
            `Thing ${thingName} already exists in account with different attributes`,
            { data: { thingName } },
          );
        }
        if (thingTypeName === undefined) q.insertThing.run(thingName, randomUUID(), JSON.stringify(clean), now());
        else {
          groups.typeForNewThing(thingTypeName);
          q.insertTypedThing.run(thingName, randomUUID(), JSON.stringify(clean), now(), thingTypeName);
        }
        return toThing(q.thingByName.get(thingName) as ThingRow);
      })();
    },

    describeThing(thingName) {
      return toThing(thingRow(thingName));
    },

    listThings({ pageSize: size, token, attributeName, attributeValue, usePrefixAttributeValue, thingTypeName }) {
      const limit = pageSize(size);
      // An unknown type lists no things: ListThings has no ResourceNotFoundException in AWS's model.
      if (thingTypeName !== undefined) checkThingTypeName(thingTypeName);
      const matches = (t: ThingRecord) => {
        if (attributeName === undefined) return true;
        // Own keys only: an attribute named `constructor` is not Object.prototype.constructor.
        const v = Object.hasOwn(t.attributes, attributeName) ? t.attributes[attributeName] : undefined;
        if (v === undefined) return false;
        if (attributeValue === undefined) return true;
        return usePrefixAttributeValue ? v.startsWith(attributeValue) : v === attributeValue;
      };
      const items: ThingRecord[] = [];
      let after = decodeToken(token, 'string') ?? '';
      // Scan in name order, filtering in memory; stop one item past the page to know if more follow.
      for (;;) {
        const rows =
          thingTypeName === undefined
            ? q.thingsAfter.all(after, 500)
            : q.thingsOfTypeAfter.all(thingTypeName, after, 500);
        for (const row of rows) {
          const thing = toThing(row);
          if (!matches(thing)) continue;
          if (items.length === limit) {
            return { items, next: encodeToken((items[items.length - 1] as ThingRecord).thingName) };
          }
          items.push(thing);
        }
        if (rows.length < 500) return { items };
        after = (rows[rows.length - 1] as ThingRow).name;
      }
    },

    updateThing({ thingName, thingTypeName, removeThingType = false, attributes, merge = false, expectedVersion }) {
      if (attributes !== undefined) checkAttributes(attributes);
      if (removeThingType && thingTypeName !== undefined) {
        throw invalid('A thing type cannot be given together with removeThingType.', { thingName });
      }
      const result = tx(() => {
        const row = thingRow(thingName);
        if (thingTypeName !== undefined && thingTypeName !== row.thing_type) groups.typeForNewThing(thingTypeName);
        if (expectedVersion !== undefined && expectedVersion !== row.version) {
          throw new RegistryError(
            'VersionConflictException',
            `The version for thing ${thingName} does not match the expected version.`,
            { data: { thingName, version: row.version, expectedVersion } },
          );
        }
        let next = storedAttributes(row.attributes);
        if (attributes !== undefined) {
          next = merge ? { ...next, ...attributes } : { ...attributes };
          next = Object.fromEntries(Object.entries(next).filter(([, v]) => v !== ''));
        }
        const type = removeThingType ? null : (thingTypeName ?? row.thing_type);
        checkAttributes(next, attributeLimit(type));
        q.updateThing.run(JSON.stringify(next), type, thingName);
        return toThing(q.thingByName.get(thingName) as ThingRow);
      })();
      // Attributes and type are policy variables of the thing's connections.
      changed(groups.certificatesOfThing(thingName));
      return result;
    },

    deleteThing({ thingName, expectedVersion }) {
      checkThingName(thingName);
      const deleted = tx(() => {
        const row = q.thingByName.get(thingName);
        if (!row) return false;
        if (expectedVersion !== undefined && expectedVersion !== row.version) {
          throw new RegistryError(
            'VersionConflictException',
            `The version for thing ${thingName} does not match the expected version.`,
            { data: { thingName, version: row.version, expectedVersion } },
          );
        }
        if ((q.countPrincipalsOfThing.get(thingName) as { n: number }).n > 0) {
          throw invalid(`Cannot delete thing ${thingName}: principals are attached to it; detach them first.`, {
            thingName,
          });
        }
        groups.forgetThing(thingName);
        q.deleteThing.run(thingName);
        return true;
      })();
      if (deleted) membershipChanged({ kind: 'deleted', thingName });
    },

    registerCertificate({ certificatePem, status }) {
      let cert: NodeX509;
      try {
        cert = new NodeX509(certificatePem);
      } catch (err) {
        throw new RegistryError('InvalidRequestException', 'The certificate is not a valid PEM certificate.', {
          cause: err,
        });
      }
      const id = createHash('sha256').update(cert.raw).digest('hex');
      const at = now();
      tx(() => {
        if (q.certById.get(id)) {
          throw new RegistryError('ResourceAlreadyExistsException', `Certificate ${id} already exists.`, {
            data: { certificateId: id },
          });
        }
        q.insertCert.run(
          id,
          cert.toString(),
          status,
          randomUUID(),
          Date.parse(cert.validFrom),
          Date.parse(cert.validTo),
          at,
          at,
        );
      })();
      changed([id]);
      return toCert(q.certById.get(id) as CertRow);
    },

    describeCertificate(certificateId) {
      return toCert(certRow(certificateId));
    },

    listCertificates({ pageSize: size, token, ascending = false }) {
      const limit = pageSize(size);
      const after = decodeToken(token, 'number') ?? (ascending ? 0 : Number.MAX_SAFE_INTEGER);
      const rows = (ascending ? q.certsAsc : q.certsDesc).all(after, limit + 1);
      const items = rows.slice(0, limit).map(toCert);
      return rows.length > limit ? { items, next: encodeToken((rows[limit - 1] as CertRow).seq) } : { items };
    },

    updateCertificate(certificateId, newStatus) {
      if (!ALL_STATUSES.has(newStatus)) throw invalid(`Certificate status '${newStatus}' is not valid.`);
      if (!SETTABLE_STATUSES.has(newStatus)) {
        throw invalid(`The local IoT Core sets certificates only to ACTIVE, INACTIVE or REVOKED, not ${newStatus}.`);
      }
      const updated = tx(() => {
        const row = certRow(certificateId);
        if (row.status === 'REVOKED' && newStatus !== 'REVOKED') {
          throw new RegistryError(
            'CertificateStateException',
            `Certificate ${certificateId} is revoked and cannot be ${newStatus.toLowerCase()}d.`,
            {
              data: { certificateId, status: row.status },
            },
          );
        }
        if (row.status === newStatus) return false;
        q.updateCertStatus.run(newStatus, randomUUID(), now(), certificateId);
        return true;
      })();
      if (updated) changed([certificateId]);
    },

    deleteCertificate(certificateId, forceDelete = false) {
      tx(() => {
        const row = certRow(certificateId);
        if (row.status === 'ACTIVE') {
          throw new RegistryError(
            'CertificateStateException',
            `Certificate ${certificateId} is ACTIVE; set it INACTIVE or REVOKED before deleting it.`,
            { data: { certificateId, status: row.status } },
          );
        }
        if (q.thingsOfCert.all(certificateId).length > 0) {
          throw new RegistryError(
            'DeleteConflictException',
            `Certificate ${certificateId} is attached to one or more things; detach it first.`,
            { data: { certificateId } },
          );
        }
        if ((q.countPoliciesOfCert.get(certificateId) as { n: number }).n > 0) {
          if (!forceDelete) {
            throw new RegistryError(
              'DeleteConflictException',
              `Certificate ${certificateId} has policies attached; detach them first or use forceDelete.`,
              { data: { certificateId } },
            );
          }
          q.detachAllPolicies.run(certificateId);
        }
        q.deleteCert.run(certificateId);
      })();
      changed([certificateId]);
    },

    createPolicy(policyName, policyDocument) {
      checkPolicyName(policyName);
      checkPolicyDocument(policyDocument);
      const at = now();
      tx(() => {
        if (q.policyByName.get(policyName)) {
          throw new RegistryError('ResourceAlreadyExistsException', `Policy ${policyName} already exists.`, {
            data: { policyName },
          });
        }
        q.insertPolicy.run(policyName, policyDocument, randomUUID(), at, at);
      })();
      return toPolicy(q.policyByName.get(policyName) as PolicyRow);
    },

    getPolicy(policyName) {
      return toPolicy(policyRow(policyName));
    },

    listPolicies({ pageSize: size, token, ascending = false }) {
      const limit = pageSize(size);
      const after = decodeToken(token, 'number') ?? (ascending ? 0 : Number.MAX_SAFE_INTEGER);
      const rows = (ascending ? q.policiesAsc : q.policiesDesc).all(after, limit + 1);
      const items = rows.slice(0, limit).map(toPolicy);
      return rows.length > limit ? { items, next: encodeToken((rows[limit - 1] as PolicyRow).seq) } : { items };
    },

    deletePolicy(policyName) {
      const affected = tx(() => {
        policyRow(policyName);
        const targets = q.targetsOfPolicy.all(policyName).map((r) => r.certificate_id);
        const all = targets.length + groups.groupTargetsOf(policyName).length;
        if (all > 0) {
          throw new RegistryError(
            'DeleteConflictException',
            `Policy ${policyName} is attached to ${all} target(s); detach it first.`,
            { data: { policyName } },
          );
        }
        q.deletePolicy.run(policyName);
        return targets;
      })();
      changed(affected);
    },

    attachPolicy(policyName, target) {
      policyRow(policyName);
      const group = groups.groupOfTarget(target);
      if (group !== undefined) return groups.attachGroupPolicy(policyName, group);
      const id = tx(() => {
        policyRow(policyName);
        const cert = principalRow(target);
        q.attachPolicy.run(policyName, cert.id);
        return cert.id;
      })();
      changed([id]);
    },

    detachPolicy(policyName, target) {
      policyRow(policyName);
      const group = groups.groupOfTarget(target);
      if (group !== undefined) return groups.detachGroupPolicy(policyName, group);
      const id = tx(() => {
        policyRow(policyName);
        const cert = principalRow(target);
        q.detachPolicy.run(policyName, cert.id);
        return cert.id;
      })();
      changed([id]);
    },

    listAttachedPolicies(target, { pageSize: size, token }, recursive = false) {
      const limit = pageSize(size);
      const group = groups.groupOfTarget(target);
      if (group !== undefined) {
        // A group has few policies (each attach is an API call): page over the list in memory.
        const names = groups.policiesOfGroup(group, recursive);
        const start = decodeToken(token, 'number') ?? 0;
        const items = names.slice(start, start + limit).map((n) => toPolicy(q.policyByName.get(n) as PolicyRow));
        return start + limit < names.length ? { items, next: encodeToken(start + limit) } : { items };
      }
      const cert = principalRow(target);
      const after = decodeToken(token, 'number') ?? 0;
      const rows = q.policiesOfCert.all(cert.id, after, limit + 1);
      const items = rows.slice(0, limit).map(toPolicy);
      return rows.length > limit
        ? { items, next: encodeToken((rows[limit - 1] as { t_seq: number }).t_seq) }
        : { items };
    },

    listTargetsForPolicy(policyName, { pageSize: size, token }) {
      const limit = pageSize(size);
      policyRow(policyName);
      // Certificates first (in attachment order, keyed by seq), then thing groups (by name, keyed by
      // a string), so one token kind tells which part a page continues.
      const key = token === undefined || token === '' ? undefined : decodeAnyToken(token);
      const items: string[] = [];
      if (key === undefined || typeof key === 'number') {
        const rows = q.targetsOfPolicyPage.all(policyName, key ?? 0, limit + 1);
        items.push(...rows.slice(0, limit).map((r) => certArn(r.certificate_id)));
        if (rows.length > limit) return { items, next: encodeToken((rows[limit - 1] as { seq: number }).seq) };
      }
      const groupArns = groups.groupTargetsOf(policyName).filter((arn) => typeof key !== 'string' || arn > key);
      const room = limit - items.length;
      items.push(...groupArns.slice(0, room));
      return groupArns.length > room ? { items, next: encodeToken(items[items.length - 1] as string) } : { items };
    },

    createThingType: (input) => groups.createThingType(input),
    describeThingType: (name) => groups.describeThingType(name),
    listThingTypes: (input) => groups.listThingTypes(input),
    deprecateThingType: (name, undo) => groups.deprecateThingType(name, undo),
    deleteThingType: (name) => groups.deleteThingType(name),
    createThingGroup: (input) => groups.createThingGroup(input),
    describeThingGroup: (name) => groups.describeThingGroup(name),
    listThingGroups: (input) => groups.listThingGroups(input),
    updateThingGroup: (input) => groups.updateThingGroup(input),
    deleteThingGroup: (input) => groups.deleteThingGroup(input),
    addThingToThingGroup: (input) => membershipChanged(groups.addThingToThingGroup(input)),
    removeThingFromThingGroup: (input) => membershipChanged(groups.removeThingFromThingGroup(input)),
    onMembershipChange(listener) {
      membershipListeners.add(listener);
      return () => {
        membershipListeners.delete(listener);
      };
    },
    listThingsInThingGroup: (name, input) => groups.listThingsInThingGroup(name, input),
    listThingGroupsForThing: (name, page) => groups.listThingGroupsForThing(name, page),

    attachThingPrincipal(thingName, principal) {
      const id = tx(() => {
        thingRow(thingName);
        const cert = principalRow(principal);
        q.attachThing.run(thingName, cert.id);
        return cert.id;
      })();
      changed([id]);
    },

    detachThingPrincipal(thingName, principal) {
      const id = tx(() => {
        thingRow(thingName);
        const cert = principalRow(principal);
        q.detachThing.run(thingName, cert.id);
        return cert.id;
      })();
      changed([id]);
    },

    listThingPrincipals(thingName, { pageSize: size, token }) {
      const limit = pageSize(size);
      thingRow(thingName);
      const after = decodeToken(token, 'number') ?? 0;
      const rows = q.principalsOfThing.all(thingName, after, limit + 1);
      const items = rows.slice(0, limit).map((r) => certArn(r.certificate_id));
      return rows.length > limit ? { items, next: encodeToken((rows[limit - 1] as { seq: number }).seq) } : { items };
    },

    close() {
      listeners.clear();
      membershipListeners.clear();
      identities.clear();
      if (db.open) db.close();
    },
  };
  return registry;
}
