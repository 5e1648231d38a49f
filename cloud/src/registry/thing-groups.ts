import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { AttachedPolicy } from '../ports/identity.js';
import { invalid, notFound, RegistryError } from './errors.js';
import {
  checkAttributes,
  checkDescription,
  checkSearchableAttributes,
  checkThingGroupName,
  checkThingName,
  checkThingTypeName,
  MAX_GROUP_ATTRIBUTES,
} from './validation.js';

/**
 * Thing types and static thing groups of the local registry, with AWS IoT's rules (AWS IoT
 * Developer Guide, "Thing types" and "Static thing groups"; the API reference for each operation):
 * a deprecated type takes no new things and can be deleted five minutes after its deprecation when
 * no thing uses it; a group's parent is fixed at creation, a hierarchy is at most 7 deep with at
 * most 100 direct children per group, a thing is in at most 10 groups and in at most one group of
 * a hierarchy, and a group with child groups cannot be deleted. Policies attached to a group apply
 * to the things in it and in its descendants. Same SQLite file and transactions as the registry.
 */

export interface ThingTypeRecord {
  readonly thingTypeName: string;
  readonly thingTypeId: string;
  readonly thingTypeArn: string;
  readonly description?: string;
  readonly searchableAttributes: readonly string[];
  readonly deprecated: boolean;
  readonly deprecationDate?: Date;
  readonly creationDate: Date;
}

export interface GroupRef {
  readonly groupName: string;
  readonly groupArn: string;
}

export interface ThingGroupRecord {
  readonly thingGroupName: string;
  readonly thingGroupId: string;
  readonly thingGroupArn: string;
  readonly version: number;
  readonly description?: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly parentGroupName?: string;
  /** The group's ancestors, from the root down to its parent. */
  readonly rootToParentThingGroups: readonly GroupRef[];
  readonly creationDate: Date;
}

/** A thing group named by name or by ARN (AddThingToThingGroup, RemoveThingFromThingGroup). */
export interface MembershipInput {
  readonly thingGroupName?: string | undefined;
  readonly thingGroupArn?: string | undefined;
  readonly thingName?: string | undefined;
  readonly thingArn?: string | undefined;
}

/** A thing joined or left a static group, or was deleted (the jobs service follows these). */
export type MembershipChange =
  | { readonly kind: 'added' | 'removed'; readonly thingName: string; readonly thingGroupName: string }
  | { readonly kind: 'deleted'; readonly thingName: string };

/** UpdateThingGroup's fields: `merge` adds `attributes` to the group's instead of replacing them; one given an empty value goes. */
export interface UpdateThingGroupInput {
  thingGroupName: string;
  description?: string | undefined;
  attributes?: Readonly<Record<string, string>> | undefined;
  merge?: boolean | undefined;
  expectedVersion?: number | undefined;
}

export interface PageRequest {
  readonly pageSize?: number | undefined;
  readonly token?: string | undefined;
}

export interface Page<T> {
  readonly items: readonly T[];
  readonly next?: string;
}

/** AWS's documented limits; the deprecation wait is the "five minutes" of "Delete a thing type". */
export const THING_GROUP_LIMITS = {
  maxDepth: 7,
  maxDirectChildren: 100,
  maxGroupsPerThing: 10,
  deprecationWaitMs: 5 * 60_000,
} as const;

/**
 * Registry schema version 2: thing types (and a thing's type), thing groups, their members and the
 * policies attached to them. Applied once to a version-1 file, in one transaction, so a data dir of
 * an older core opens with its things, certificates and policies kept.
 */
export const MIGRATION_TO_V2 = `
CREATE TABLE thing_types (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  type_id TEXT NOT NULL,
  description TEXT,
  searchable TEXT NOT NULL,
  deprecated_at INTEGER,
  created_at INTEGER NOT NULL
);
ALTER TABLE things ADD COLUMN thing_type TEXT REFERENCES thing_types(name);
CREATE INDEX things_by_type ON things(thing_type, name);
CREATE TABLE thing_groups (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  group_id TEXT NOT NULL,
  parent TEXT REFERENCES thing_groups(name),
  description TEXT,
  attributes TEXT NOT NULL,
  version INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX thing_groups_by_parent ON thing_groups(parent, name);
CREATE TABLE thing_group_members (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  group_name TEXT NOT NULL REFERENCES thing_groups(name),
  thing_name TEXT NOT NULL REFERENCES things(name),
  UNIQUE (group_name, thing_name)
);
CREATE INDEX thing_group_members_by_thing ON thing_group_members(thing_name, group_name);
CREATE TABLE group_policy_targets (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  policy_name TEXT NOT NULL REFERENCES policies(name),
  group_name TEXT NOT NULL REFERENCES thing_groups(name),
  UNIQUE (policy_name, group_name)
);
CREATE INDEX group_policy_targets_by_group ON group_policy_targets(group_name, seq);
`;

interface TypeRow {
  seq: number;
  name: string;
  type_id: string;
  description: string | null;
  searchable: string;
  deprecated_at: number | null;
  created_at: number;
}
interface GroupRow {
  seq: number;
  name: string;
  group_id: string;
  parent: string | null;
  description: string | null;
  attributes: string;
  version: number;
  created_at: number;
}

/** What the registry lends this module: its database, clock, ARNs, paging and change events. */
export interface TypesAndGroupsContext {
  readonly db: Database.Database;
  readonly now: () => number;
  readonly arnPrefix: string;
  /** Tells the broker these certificates' access may have changed. */
  readonly changed: (certificateIds: Iterable<string>) => void;
  /** The document of a stored policy (parsed once per generation). */
  readonly policyOf: (policyName: string) => AttachedPolicy;
  readonly pageSize: (value: number | undefined) => number;
  readonly encodeToken: (value: string) => string;
  readonly decodeToken: (token: string | undefined) => string | undefined;
}

/**
 * A map of strings this module or the registry wrote (JSON.stringify of attributes that
 * checkAttributes passed); see storedAttributes in sqlite-registry.ts for why it is not re-parsed.
 */
const stored = (text: string): Record<string, string> => JSON.parse(text) as Record<string, string>;
const storedList = (text: string): string[] => JSON.parse(text) as string[];

const sameAttributes = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && b[k] === a[k]);
};
const nonEmpty = (attributes: Readonly<Record<string, string>>) =>
  Object.fromEntries(Object.entries(attributes).filter(([, v]) => v !== ''));

export function createTypesAndGroups(ctx: TypesAndGroupsContext) {
  const { db, now, arnPrefix } = ctx;
  const typeArn = (name: string) => `${arnPrefix}:thingtype/${name}`;
  const groupArn = (name: string) => `${arnPrefix}:thinggroup/${name}`;
  const ref = (name: string): GroupRef => ({ groupName: name, groupArn: groupArn(name) });

  const q = {
    typeByName: db.prepare<[string], TypeRow>('SELECT * FROM thing_types WHERE name = ?'),
    insertType: db.prepare(
      'INSERT INTO thing_types (name, type_id, description, searchable, created_at) VALUES (?, ?, ?, ?, ?)',
    ),
    typesAfter: db.prepare<[string, number], TypeRow>('SELECT * FROM thing_types WHERE name > ? ORDER BY name LIMIT ?'),
    setDeprecated: db.prepare('UPDATE thing_types SET deprecated_at = ? WHERE name = ?'),
    deleteType: db.prepare('DELETE FROM thing_types WHERE name = ?'),
    countThingsOfType: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM things WHERE thing_type = ?'),

    groupByName: db.prepare<[string], GroupRow>('SELECT * FROM thing_groups WHERE name = ?'),
    insertGroup: db.prepare(
      `INSERT INTO thing_groups (name, group_id, parent, description, attributes, version, created_at)
       VALUES (?, ?, ?, ?, ?, 1, ?)`,
    ),
    updateGroup: db.prepare(
      'UPDATE thing_groups SET description = ?, attributes = ?, version = version + 1 WHERE name = ?',
    ),
    deleteGroup: db.prepare('DELETE FROM thing_groups WHERE name = ?'),
    countChildren: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM thing_groups WHERE parent = ?'),
    // better-sqlite3 binds only anonymous or named parameters, so a prefix is passed as its length and itself.
    groupsAfter: db.prepare<[string, number, string, number], { name: string }>(
      'SELECT name FROM thing_groups WHERE name > ? AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?',
    ),
    rootGroupsAfter: db.prepare<[string, number, string, number], { name: string }>(
      `SELECT name FROM thing_groups WHERE parent IS NULL AND name > ? AND substr(name, 1, ?) = ?
       ORDER BY name LIMIT ?`,
    ),
    childrenAfter: db.prepare<[string, string, number, string, number], { name: string }>(
      'SELECT name FROM thing_groups WHERE parent = ? AND name > ? AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?',
    ),
    descendantsAfter: db.prepare<[string, string, number, string, number], { name: string }>(
      `WITH RECURSIVE tree(name) AS (
         SELECT name FROM thing_groups WHERE parent = ?
         UNION SELECT g.name FROM thing_groups g JOIN tree t ON g.parent = t.name)
       SELECT name FROM tree WHERE name > ? AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?`,
    ),
    membersAfter: db.prepare<[string, string, number], { thing_name: string }>(
      'SELECT thing_name FROM thing_group_members WHERE group_name = ? AND thing_name > ? ORDER BY thing_name LIMIT ?',
    ),
    subtreeMembersAfter: db.prepare<[string, string, number], { thing_name: string }>(
      `WITH RECURSIVE tree(name) AS (
         SELECT ? UNION SELECT g.name FROM thing_groups g JOIN tree t ON g.parent = t.name)
       SELECT DISTINCT thing_name FROM thing_group_members
       WHERE group_name IN (SELECT name FROM tree) AND thing_name > ? ORDER BY thing_name LIMIT ?`,
    ),
    /** Certificates of the things in a group or any of its descendants: whose access a group change touches. */
    subtreeCertificates: db.prepare<[string], { certificate_id: string }>(
      `WITH RECURSIVE tree(name) AS (
         SELECT ? UNION SELECT g.name FROM thing_groups g JOIN tree t ON g.parent = t.name)
       SELECT DISTINCT p.certificate_id FROM thing_group_members m
       JOIN thing_principals p ON p.thing_name = m.thing_name
       WHERE m.group_name IN (SELECT name FROM tree)`,
    ),
    certificatesOfThing: db.prepare<[string], { certificate_id: string }>(
      'SELECT certificate_id FROM thing_principals WHERE thing_name = ?',
    ),
    groupsOfThing: db.prepare<[string], { group_name: string }>(
      'SELECT group_name FROM thing_group_members WHERE thing_name = ? ORDER BY group_name',
    ),
    groupsOfThingAfter: db.prepare<[string, string, number], { group_name: string }>(
      'SELECT group_name FROM thing_group_members WHERE thing_name = ? AND group_name > ? ORDER BY group_name LIMIT ?',
    ),
    addMember: db.prepare('INSERT OR IGNORE INTO thing_group_members (group_name, thing_name) VALUES (?, ?)'),
    removeMember: db.prepare('DELETE FROM thing_group_members WHERE group_name = ? AND thing_name = ?'),
    removeMembersOfGroup: db.prepare('DELETE FROM thing_group_members WHERE group_name = ?'),
    removeGroupsOfThing: db.prepare('DELETE FROM thing_group_members WHERE thing_name = ?'),
    thingExists: db.prepare<[string], { name: string }>('SELECT name FROM things WHERE name = ?'),

    attachGroupPolicy: db.prepare('INSERT OR IGNORE INTO group_policy_targets (policy_name, group_name) VALUES (?, ?)'),
    detachGroupPolicy: db.prepare('DELETE FROM group_policy_targets WHERE policy_name = ? AND group_name = ?'),
    detachAllGroupPolicies: db.prepare('DELETE FROM group_policy_targets WHERE group_name = ?'),
    policiesOfGroup: db.prepare<[string], { policy_name: string; seq: number }>(
      'SELECT policy_name, seq FROM group_policy_targets WHERE group_name = ? ORDER BY seq',
    ),
    groupsOfPolicy: db.prepare<[string], { group_name: string }>(
      'SELECT group_name FROM group_policy_targets WHERE policy_name = ? ORDER BY group_name',
    ),
  };

  const toType = (row: TypeRow): ThingTypeRecord => ({
    thingTypeName: row.name,
    thingTypeId: row.type_id,
    thingTypeArn: typeArn(row.name),
    ...(row.description === null ? {} : { description: row.description }),
    searchableAttributes: storedList(row.searchable),
    deprecated: row.deprecated_at !== null,
    ...(row.deprecated_at === null ? {} : { deprecationDate: new Date(row.deprecated_at) }),
    creationDate: new Date(row.created_at),
  });

  /** A group's ancestors from its parent up to the root (at most maxDepth - 1 lookups). */
  function ancestorsOf(row: GroupRow): GroupRow[] {
    const chain: GroupRow[] = [];
    let parent = row.parent;
    while (parent !== null) {
      const up = q.groupByName.get(parent);
      if (!up) break;
      chain.push(up);
      parent = up.parent;
    }
    return chain;
  }

  const toGroup = (row: GroupRow): ThingGroupRecord => ({
    thingGroupName: row.name,
    thingGroupId: row.group_id,
    thingGroupArn: groupArn(row.name),
    version: row.version,
    ...(row.description === null ? {} : { description: row.description }),
    attributes: stored(row.attributes),
    ...(row.parent === null ? {} : { parentGroupName: row.parent }),
    rootToParentThingGroups: ancestorsOf(row)
      .reverse()
      .map((g) => ref(g.name)),
    creationDate: new Date(row.created_at),
  });

  function typeRow(name: string): TypeRow {
    checkThingTypeName(name);
    const row = q.typeByName.get(name);
    if (!row) throw notFound(`Thing type ${name} cannot be found.`, { thingTypeName: name });
    return row;
  }
  function groupRow(name: string): GroupRow {
    checkThingGroupName(name);
    const row = q.groupByName.get(name);
    if (!row) throw notFound(`Thing group ${name} cannot be found.`, { thingGroupName: name });
    return row;
  }

  /** The name in an ARN of this account and region of the given resource kind, or an InvalidRequest. */
  function nameInArn(arn: string, kind: 'thing' | 'thinggroup'): string {
    const prefix = `${arnPrefix}:${kind}/`;
    if (!arn.startsWith(prefix)) throw invalid(`'${arn}' is not a ${kind} ARN of this account and region.`);
    return arn.slice(prefix.length);
  }

  /** The name given directly or in the ARN; both given must agree, one is required. */
  function pick(name: string | undefined, arn: string | undefined, kind: 'thing' | 'thinggroup'): string {
    const fromArn = arn === undefined ? undefined : nameInArn(arn, kind);
    const label = kind === 'thing' ? 'thing' : 'thing group';
    if (name === undefined && fromArn === undefined) throw invalid(`A ${label} name or ARN is required.`);
    if (name !== undefined && fromArn !== undefined && name !== fromArn) {
      throw invalid(`The ${label} name and ARN name different ${label}s.`);
    }
    return (name ?? fromArn) as string;
  }

  function membership(input: MembershipInput): { group: GroupRow; thingName: string } {
    const group = groupRow(pick(input.thingGroupName, input.thingGroupArn, 'thinggroup'));
    const thingName = pick(input.thingName, input.thingArn, 'thing');
    checkThingName(thingName);
    if (!q.thingExists.get(thingName)) throw notFound(`Thing ${thingName} cannot be found.`, { thingName });
    return { group, thingName };
  }

  const rootOf = (row: GroupRow) => ancestorsOf(row).at(-1)?.name ?? row.name;
  const certsOfSubtree = (groupName: string) => q.subtreeCertificates.all(groupName).map((r) => r.certificate_id);
  const certsOfThing = (thingName: string) => q.certificatesOfThing.all(thingName).map((r) => r.certificate_id);

  function page<T>(rows: readonly T[], limit: number, key: (row: T) => string): Page<T> {
    const items = rows.slice(0, limit);
    return rows.length > limit ? { items, next: ctx.encodeToken(key(items[items.length - 1] as T)) } : { items };
  }

  const tx = <A extends unknown[], R>(fn: (...args: A) => R) => db.transaction(fn);

  return {
    /** The stored type of this name, checked as CreateThing and UpdateThing must: present and not deprecated. */
    typeForNewThing(name: string): ThingTypeRecord {
      const type = toType(typeRow(name));
      if (type.deprecated) {
        throw invalid(`Can not create or update a thing with the deprecated thing type ${name}.`, {
          thingTypeName: name,
        });
      }
      return type;
    },

    /** Removes a deleted thing from its groups (inside the deleting transaction). */
    forgetThing(thingName: string): void {
      q.removeGroupsOfThing.run(thingName);
    },

    certificatesOfThing: certsOfThing,

    /** Policies attached to the thing's groups and to their ancestors, each once, nearest group first. */
    groupPoliciesOf(thingName: string): AttachedPolicy[] {
      const seen = new Set<string>();
      const out: AttachedPolicy[] = [];
      for (const { group_name } of q.groupsOfThing.all(thingName)) {
        const row = q.groupByName.get(group_name);
        if (!row) continue;
        for (const g of [row, ...ancestorsOf(row)]) {
          for (const { policy_name } of q.policiesOfGroup.all(g.name)) {
            if (seen.has(policy_name)) continue;
            seen.add(policy_name);
            out.push(ctx.policyOf(policy_name));
          }
        }
      }
      return out;
    },

    /** The group named by a thing-group ARN of this account, or undefined when `target` is not one. */
    groupOfTarget(target: string): string | undefined {
      if (!target.startsWith(`${arnPrefix}:thinggroup/`)) return undefined;
      return groupRow(nameInArn(target, 'thinggroup')).name;
    },
    attachGroupPolicy(policyName: string, groupName: string): void {
      ctx.changed(
        tx(() => {
          q.attachGroupPolicy.run(policyName, groupName);
          return certsOfSubtree(groupName);
        })(),
      );
    },
    detachGroupPolicy(policyName: string, groupName: string): void {
      ctx.changed(
        tx(() => {
          q.detachGroupPolicy.run(policyName, groupName);
          return certsOfSubtree(groupName);
        })(),
      );
    },
    /** Policy names attached to a group, and with `recursive` to its ancestors too (nearest first). */
    policiesOfGroup(groupName: string, recursive: boolean): string[] {
      const row = groupRow(groupName);
      const groups = recursive ? [row, ...ancestorsOf(row)] : [row];
      return [...new Set(groups.flatMap((g) => q.policiesOfGroup.all(g.name).map((r) => r.policy_name)))];
    },
    groupTargetsOf(policyName: string): string[] {
      return q.groupsOfPolicy.all(policyName).map((r) => groupArn(r.group_name));
    },

    createThingType(input: {
      thingTypeName: string;
      description?: string | undefined;
      searchableAttributes?: readonly string[] | undefined;
    }): ThingTypeRecord {
      const { thingTypeName: name, description } = input;
      const searchable = input.searchableAttributes ?? [];
      checkThingTypeName(name);
      checkDescription('thing type', description);
      checkSearchableAttributes(searchable);
      return tx(() => {
        const existing = q.typeByName.get(name);
        if (existing) {
          const t = toType(existing);
          // Same properties: the existing type, as CreateThing and CreateThingGroup answer.
          if (t.description === description && JSON.stringify(t.searchableAttributes) === JSON.stringify(searchable)) {
            return t;
          }
          throw new RegistryError(
            'ResourceAlreadyExistsException',
            `Thing type ${name} already exists in account with different properties`,
            { data: { thingTypeName: name } },
          );
        }
        q.insertType.run(name, randomUUID(), description ?? null, JSON.stringify(searchable), now());
        return toType(q.typeByName.get(name) as TypeRow);
      })();
    },

    describeThingType(name: string): ThingTypeRecord {
      return toType(typeRow(name));
    },

    listThingTypes(input: PageRequest & { thingTypeName?: string | undefined }): Page<ThingTypeRecord> {
      const limit = ctx.pageSize(input.pageSize);
      if (input.thingTypeName !== undefined) {
        checkThingTypeName(input.thingTypeName);
        const row = q.typeByName.get(input.thingTypeName);
        return { items: row && ctx.decodeToken(input.token) === undefined ? [toType(row)] : [] };
      }
      const rows = q.typesAfter.all(ctx.decodeToken(input.token) ?? '', limit + 1).map(toType);
      return page(rows, limit, (t) => t.thingTypeName);
    },

    deprecateThingType(name: string, undo: boolean): void {
      tx(() => {
        const row = typeRow(name);
        // Deprecating a deprecated type keeps its first date: the five minutes run from it.
        if (undo) q.setDeprecated.run(null, name);
        else if (row.deprecated_at === null) q.setDeprecated.run(now(), name);
      })();
    },

    deleteThingType(name: string): void {
      tx(() => {
        const row = typeRow(name);
        if (row.deprecated_at === null) {
          throw invalid(
            `Thing type ${name} is not deprecated: deprecate it and wait five minutes before deleting it.`,
            {
              thingTypeName: name,
            },
          );
        }
        const waited = now() - row.deprecated_at;
        if (waited < THING_GROUP_LIMITS.deprecationWaitMs) {
          throw invalid(
            `Thing type ${name} was deprecated ${Math.floor(waited / 1000)} s ago: it can be deleted five minutes after its deprecation.`,
            { thingTypeName: name },
          );
        }
        const users = (q.countThingsOfType.get(name) as { n: number }).n;
        if (users > 0) {
          throw invalid(`Thing type ${name} is associated with ${users} thing(s): remove the type from them first.`, {
            thingTypeName: name,
          });
        }
        q.deleteType.run(name);
      })();
    },

    createThingGroup(input: {
      thingGroupName: string;
      parentGroupName?: string | undefined;
      description?: string | undefined;
      attributes?: Readonly<Record<string, string>> | undefined;
    }): ThingGroupRecord {
      const { thingGroupName: name, parentGroupName: parent, description } = input;
      const attributes = nonEmpty(input.attributes ?? {});
      checkThingGroupName(name);
      if (parent !== undefined) checkThingGroupName(parent);
      checkDescription('thing group', description);
      checkAttributes(input.attributes ?? {}, MAX_GROUP_ATTRIBUTES, 'A thing group');
      return tx(() => {
        const existing = q.groupByName.get(name);
        if (existing) {
          const same =
            (existing.parent ?? undefined) === parent &&
            (existing.description ?? undefined) === description &&
            sameAttributes(stored(existing.attributes), attributes);
          if (same) return toGroup(existing);
          throw new RegistryError(
            'ResourceAlreadyExistsException',
            `Thing group ${name} already exists in account with different properties`,
            { data: { thingGroupName: name } },
          );
        }
        if (parent !== undefined) {
          const parentRow = groupRow(parent);
          if (ancestorsOf(parentRow).length + 2 > THING_GROUP_LIMITS.maxDepth) {
            throw invalid(
              `Thing group ${name} cannot be a child of ${parent}: a group hierarchy is at most ${THING_GROUP_LIMITS.maxDepth} levels deep.`,
            );
          }
          if ((q.countChildren.get(parent) as { n: number }).n >= THING_GROUP_LIMITS.maxDirectChildren) {
            throw invalid(
              `Thing group ${parent} already has ${THING_GROUP_LIMITS.maxDirectChildren} child groups, the most a group can have.`,
            );
          }
        }
        q.insertGroup.run(name, randomUUID(), parent ?? null, description ?? null, JSON.stringify(attributes), now());
        return toGroup(q.groupByName.get(name) as GroupRow);
      })();
    },

    describeThingGroup(name: string): ThingGroupRecord {
      return toGroup(groupRow(name));
    },

    listThingGroups(
      input: PageRequest & {
        parentGroup?: string | undefined;
        namePrefixFilter?: string | undefined;
        recursive?: boolean | undefined;
      },
    ): Page<GroupRef> {
      const limit = ctx.pageSize(input.pageSize);
      const after = ctx.decodeToken(input.token) ?? '';
      const prefix = input.namePrefixFilter ?? '';
      let rows: { name: string }[];
      if (input.parentGroup !== undefined) {
        const parent = groupRow(input.parentGroup).name;
        rows =
          input.recursive === true
            ? q.descendantsAfter.all(parent, after, prefix.length, prefix, limit + 1)
            : q.childrenAfter.all(parent, after, prefix.length, prefix, limit + 1);
      } else {
        // Without a parent every group is listed unless recursive is false: then the roots only.
        rows =
          input.recursive === false
            ? q.rootGroupsAfter.all(after, prefix.length, prefix, limit + 1)
            : q.groupsAfter.all(after, prefix.length, prefix, limit + 1);
      }
      const p = page(rows, limit, (r) => r.name);
      return { ...p, items: p.items.map((r) => ref(r.name)) };
    },

    updateThingGroup(input: UpdateThingGroupInput): number {
      const { thingGroupName: name, description, attributes, merge = false, expectedVersion } = input;
      checkDescription('thing group', description);
      if (attributes !== undefined) checkAttributes(attributes, MAX_GROUP_ATTRIBUTES, 'A thing group');
      return tx(() => {
        const row = groupRow(name);
        if (expectedVersion !== undefined && expectedVersion !== row.version) {
          throw new RegistryError(
            'VersionConflictException',
            `The version for thing group ${name} does not match the expected version.`,
            { data: { thingGroupName: name, version: row.version, expectedVersion } },
          );
        }
        let next = stored(row.attributes);
        if (attributes !== undefined) {
          next = nonEmpty(merge ? { ...next, ...attributes } : { ...attributes });
          checkAttributes(next, MAX_GROUP_ATTRIBUTES, 'A thing group');
        }
        q.updateGroup.run(description ?? row.description, JSON.stringify(next), name);
        return row.version + 1;
      })();
    },

    deleteThingGroup(input: { thingGroupName: string; expectedVersion?: number | undefined }): void {
      const { thingGroupName: name, expectedVersion } = input;
      checkThingGroupName(name);
      const affected = tx(() => {
        const row = q.groupByName.get(name);
        // Deleting a group that is not there succeeds: DeleteThingGroup has no ResourceNotFoundException.
        if (!row) return [];
        if (expectedVersion !== undefined && expectedVersion !== row.version) {
          throw new RegistryError(
            'VersionConflictException',
            `The version for thing group ${name} does not match the expected version.`,
            { data: { thingGroupName: name, version: row.version, expectedVersion } },
          );
        }
        if ((q.countChildren.get(name) as { n: number }).n > 0) {
          throw invalid(
            `Cannot delete thing group ${name} when it still has child groups. Only thing groups with no child groups can be deleted.`,
            { thingGroupName: name },
          );
        }
        const certs = certsOfSubtree(name);
        q.removeMembersOfGroup.run(name);
        q.detachAllGroupPolicies.run(name);
        q.deleteGroup.run(name);
        return certs;
      })();
      ctx.changed(affected);
    },

    /** The membership added (undefined when the thing was already in the group). */
    addThingToThingGroup(input: MembershipInput): MembershipChange | undefined {
      let added: MembershipChange | undefined;
      const affected = tx(() => {
        const { group, thingName } = membership(input);
        const current = q.groupsOfThing.all(thingName).map((r) => r.group_name);
        if (current.includes(group.name)) return [];
        if (current.length >= THING_GROUP_LIMITS.maxGroupsPerThing) {
          throw invalid(
            `Thing ${thingName} is already in ${THING_GROUP_LIMITS.maxGroupsPerThing} thing groups, the most a thing can be in.`,
            { thingName },
          );
        }
        const root = rootOf(group);
        const sameHierarchy = current.find((g) => {
          const row = q.groupByName.get(g);
          return row !== undefined && rootOf(row) === root;
        });
        if (sameHierarchy !== undefined) {
          throw invalid(
            `Thing ${thingName} is already in thing group ${sameHierarchy} of the same hierarchy as ${group.name}: a thing can be in only one group of a hierarchy.`,
            { thingName },
          );
        }
        q.addMember.run(group.name, thingName);
        added = { kind: 'added', thingName, thingGroupName: group.name };
        return certsOfThing(thingName);
      })();
      ctx.changed(affected);
      return added;
    },

    /** The membership removed (undefined when the thing was not in the group). */
    removeThingFromThingGroup(input: MembershipInput): MembershipChange | undefined {
      let removed: MembershipChange | undefined;
      const affected = tx(() => {
        const { group, thingName } = membership(input);
        if (q.removeMember.run(group.name, thingName).changes === 0) return [];
        removed = { kind: 'removed', thingName, thingGroupName: group.name };
        return certsOfThing(thingName);
      })();
      ctx.changed(affected);
      return removed;
    },

    listThingsInThingGroup(name: string, input: PageRequest & { recursive?: boolean | undefined }): Page<string> {
      const limit = ctx.pageSize(input.pageSize);
      const group = groupRow(name).name;
      const after = ctx.decodeToken(input.token) ?? '';
      const rows = (input.recursive === true ? q.subtreeMembersAfter : q.membersAfter)
        .all(group, after, limit + 1)
        .map((r) => r.thing_name);
      return page(rows, limit, (n) => n);
    },

    listThingGroupsForThing(thingName: string, input: PageRequest): Page<GroupRef> {
      checkThingName(thingName);
      if (!q.thingExists.get(thingName)) throw notFound(`Thing ${thingName} cannot be found.`, { thingName });
      const limit = ctx.pageSize(input.pageSize);
      const rows = q.groupsOfThingAfter
        .all(thingName, ctx.decodeToken(input.token) ?? '', limit + 1)
        .map((r) => r.group_name);
      const p = page(rows, limit, (n) => n);
      return { ...p, items: p.items.map(ref) };
    },
  };
}

export type TypesAndGroups = ReturnType<typeof createTypesAndGroups>;
