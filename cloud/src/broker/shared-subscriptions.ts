import { checkTopicFilter, MQTT5_REASON } from '@pifleet/protocol';
import type { Aedes, AedesPublishPacket, Client, PublishPacket, Subscription } from 'aedes';
import type { Logger } from '../logger.js';
import { beforeAedesHandles, onPublishWritten, type WrittenPublish } from './aedes-internals.js';

/**
 * Shared subscriptions (`$share/{ShareName}/{TopicFilter}`), which IoT Core serves to MQTT 3.1.1
 * and MQTT 5 clients alike: each message matching the filter goes to one member of the group
 * instead of to every subscriber.
 *
 * aedes 2.0.0-beta.1 has none: it answers an MQTT 5 `$share/...` SUBSCRIBE with 0x9E before any
 * hook runs, and subscribes an MQTT 3.1.1 client to the literal `$share/...` filter. So:
 *
 * 1. Every SUBSCRIBE and UNSUBSCRIBE is seen before aedes handles it ({@link rewriteSubscribe},
 *    {@link rewriteUnsubscribe}); a `$share/...` entry is renamed to an internal filter
 *    (`\u0000share/{ShareName}/{TopicFilter}`) that no client can publish to (a NUL is never valid
 *    in a topic name) nor subscribe to itself (a client's own filter that starts so is renamed as
 *    an invalid one). aedes then treats it as an ordinary subscription:
 *    it answers SUBACK/UNSUBACK in the right position, keeps the entry in a persistent session
 *    (and restores it on reconnect), and sends no retained message for it, since none is stored
 *    under that name — IoT Core sends no retained messages to shared subscriptions either.
 * 2. The broker's authorizeSubscribe hands internal filters to {@link SharedSubscriptions.authorize},
 *    which checks iot:Subscribe on `topicfilter/$share/{ShareName}/{TopicFilter}` (the resource IoT
 *    Core checks) and makes the client a member of the group.
 * 3. One bus subscription per group receives each matching message and gives it to one connected
 *    member that may receive its topic (iot:Receive on the topic, as for any delivery), taking the
 *    members in turn (IoT Core documents the choice as random; a rotation spreads the same way and
 *    keeps tests deterministic), at the QoS that member was granted. The group's last member
 *    leaving (UNSUBSCRIBE or closed connection) removes that bus subscription.
 *
 * A member whose connection is gone gets nothing more. A QoS 1 message written to it and not
 * acknowledged stays with its session when the session persists (aedes sends it again on resume),
 * and goes to another member when the session ended with the connection (MQTT 5.0 section 4.8.2:
 * the server should then send it to another member of the group).
 *
 * Not done: a message for a group with no connected member that may take it is dropped, not queued
 * for a disconnected persistent member; messages a persistent member held when its session expires
 * unresumed go with the session; IoT Core's quotas on groups and members are not enforced.
 */

/** What the broker advertises as Shared Subscription Available (CONNACK, MQTT 5). */
export const SHARED_SUBSCRIPTIONS_AVAILABLE = true;

const SHARE_PREFIX = '$share/';
/** The internal names of `$share/...` filters: a NUL never occurs in a client's topic or filter. */
const INTERNAL_PREFIX = '\u0000share/';
/**
 * The internal name of an invalid `$share/...` filter: its UTF-8 bytes in hex after this prefix,
 * so that it passes aedes's own filter check whatever the client sent (a `#` in the wrong place
 * would otherwise close the connection) and two invalid filters stay two SUBACK entries.
 */
const INVALID_PREFIX = `${INTERNAL_PREFIX}/`;

/** A well-formed shared subscription filter. */
export interface SharedFilter {
  readonly shareName: string;
  readonly filter: string;
  /** `$share/{ShareName}/{TopicFilter}`, the name iot:Subscribe is checked on and the group's key. */
  readonly resource: string;
}

export type ParsedShare = SharedFilter | { readonly invalid: string };

/**
 * Parses `$share/{ShareName}/{TopicFilter}`: undefined when the filter is not a shared one, else the
 * parts or why they are invalid (MQTT 5.0 section 4.8.2: the share name is at least one character
 * with no `/`, `+` or `#`, followed by `/` and a topic filter; the filter follows IoT's rules).
 */
export function parseSharedFilter(topic: string): ParsedShare | undefined {
  if (!topic.startsWith(SHARE_PREFIX)) return undefined;
  const rest = topic.slice(SHARE_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return { invalid: 'a shared subscription needs a share name and a topic filter' };
  const shareName = rest.slice(0, slash);
  const filter = rest.slice(slash + 1);
  if (shareName.length === 0) return { invalid: 'the share name is empty' };
  if (shareName.includes('+') || shareName.includes('#')) return { invalid: 'the share name contains a wildcard' };
  if (filter.length === 0) return { invalid: 'the topic filter is empty' };
  const problem = checkTopicFilter(filter);
  if (problem) return { invalid: problem };
  return { shareName, filter, resource: topic };
}

/** The internal name aedes subscribes for a shared filter. */
export function internalFilter(share: SharedFilter): string {
  return `${INTERNAL_PREFIX}${share.shareName}/${share.filter}`;
}

function invalidInternalFilter(topic: string): string {
  return `${INVALID_PREFIX}${Buffer.from(topic, 'utf8').toString('hex')}`;
}

/** What an internal filter stands for: undefined when the topic is not one of ours. */
export function fromInternalFilter(topic: string): ParsedShare | undefined {
  if (!topic.startsWith(INTERNAL_PREFIX)) return undefined;
  if (topic.startsWith(INVALID_PREFIX)) {
    return { invalid: Buffer.from(topic.slice(INVALID_PREFIX.length), 'hex').toString('utf8') };
  }
  return parseSharedFilter(`${SHARE_PREFIX}${topic.slice(INTERNAL_PREFIX.length)}`) ?? { invalid: topic };
}

function isOurs(topic: string): boolean {
  return topic.startsWith(SHARE_PREFIX) || topic.startsWith(INTERNAL_PREFIX);
}

/** A SUBSCRIBE entry as mqtt-packet parses it (only the fields touched here). */
interface SubscribeEntry {
  topic: string;
  qos: number;
}

/**
 * Renames the `$share/...` entries of a parsed SUBSCRIBE to their internal filters, in place. A
 * valid one asks for at most QoS 1 (IoT Core grants no more, and aedes reports the requested QoS in
 * SUBACK); an invalid one asks for the failure code itself — 0x8F Topic Filter invalid for MQTT 5,
 * 0x80 for 3.1.1 — which aedes copies into SUBACK, having no other way to answer anything but
 * 0x87/0x80 for a subscription it is told to refuse. A client's own filter that starts like an
 * internal one (a NUL) is invalid too. Returns the entries renamed.
 */
export function rewriteSubscribe(subscriptions: readonly SubscribeEntry[], protocolVersion: number): number {
  let renamed = 0;
  for (const entry of subscriptions) {
    if (!isOurs(entry.topic)) continue;
    renamed++;
    const parsed = entry.topic.startsWith(SHARE_PREFIX) ? parseSharedFilter(entry.topic) : undefined;
    if (parsed && !('invalid' in parsed)) {
      entry.topic = internalFilter(parsed);
      entry.qos = Math.min(entry.qos, 1);
    } else {
      entry.topic = invalidInternalFilter(entry.topic);
      entry.qos = protocolVersion === 5 ? MQTT5_REASON.TOPIC_FILTER_INVALID : MQTT5_REASON.UNSPECIFIED_ERROR;
    }
  }
  return renamed;
}

/**
 * Renames the `$share/...` entries of a parsed UNSUBSCRIBE to the internal filters aedes holds, in
 * place, and returns the groups the client leaves.
 */
export function rewriteUnsubscribe(unsubscriptions: string[]): SharedFilter[] {
  const left: SharedFilter[] = [];
  for (let i = 0; i < unsubscriptions.length; i++) {
    const topic = unsubscriptions[i] as string;
    if (!isOurs(topic)) continue;
    const parsed = topic.startsWith(SHARE_PREFIX) ? parseSharedFilter(topic) : undefined;
    if (parsed && !('invalid' in parsed)) {
      unsubscriptions[i] = internalFilter(parsed);
      left.push(parsed);
    } else {
      unsubscriptions[i] = invalidInternalFilter(topic);
    }
  }
  return left;
}

/** A group's members in join order and whose turn is next. */
export interface Rotation<M> {
  readonly members: readonly M[];
  /** Index of the member to try first. */
  next: number;
}

/**
 * The next member, in turn, that `accepts` the message, advancing the rotation past it; undefined
 * when none does (the rotation is left as it was).
 */
export function pickMember<M>(rotation: Rotation<M>, accepts: (member: M) => boolean): M | undefined {
  const n = rotation.members.length;
  for (let i = 0; i < n; i++) {
    const index = (rotation.next + i) % n;
    const member = rotation.members[index] as M;
    if (accepts(member)) {
      rotation.next = (index + 1) % n;
      return member;
    }
  }
  return undefined;
}

// ---- the registry ------------------------------------------------------------------------------

/** The part of aedes the registry uses: its message bus, the API aedes documents. */
export type SharedBus = Pick<Aedes, 'subscribe' | 'unsubscribe'>;

export interface SharedSubscriptionsDeps {
  readonly bus: SharedBus;
  /** Whether the client may receive a message on the topic (iot:Receive). */
  readonly canReceive: (client: Client, topic: string) => boolean;
  readonly logger: Logger;
}

export interface SharedSubscriptions {
  /** Renames the connection's `$share/...` SUBSCRIBE/UNSUBSCRIBE entries before aedes handles them. */
  attach(client: Client): void;
  /**
   * For the broker's authorizeSubscribe: undefined when the subscription is not a shared one (the
   * broker decides as usual); otherwise what to answer aedes with — the subscription, having made
   * the client a member of its group, or null when `maySubscribe` refuses the `$share/...` resource.
   * An invalid shared filter is answered with the subscription as is, so that the failure code
   * {@link rewriteSubscribe} put in it reaches SUBACK; nothing is ever published to its name.
   */
  authorize(
    client: Client,
    sub: Subscription,
    maySubscribe: (resource: string) => boolean,
  ): Subscription | null | undefined;
  /** Groups and their member client ids (for tests and diagnostics). */
  groups(): ReadonlyMap<string, readonly string[]>;
}

interface Member {
  readonly client: Client;
  qos: 0 | 1;
}

interface Group extends Rotation<Member> {
  readonly share: SharedFilter;
  readonly members: Member[];
  deliver: (packet: AedesPublishPacket, cb: () => void) => void;
}

/** A message as the group hands it to a member. */
interface SharedMessage {
  readonly topic: string;
  readonly payload: Buffer | string;
  readonly qos: 0 | 1 | 2;
  readonly properties?: PublishPacket['properties'] | undefined;
  readonly messageExpiry?: unknown;
}

/**
 * aedes skips a message a client already got: same `brokerId`, `brokerCounter` not above the last
 * one seen from that id. A group's copies carry the message's own counter under an id of their own
 * (`{origin}\u0000{group}`), so a member's ordinary subscription to the same topic and each of its
 * groups count apart (MQTT 5.0 section 4.8.2: they are separate subscriptions, each gets the
 * message), and the group is readable from the packet aedes writes.
 */
function groupBrokerId(origin: unknown, resource: string): string {
  return `${String(origin)}\u0000${resource}`;
}

function groupOfBrokerId(brokerId: unknown): string | undefined {
  if (typeof brokerId !== 'string') return undefined;
  const nul = brokerId.indexOf('\u0000');
  return nul < 0 ? undefined : brokerId.slice(nul + 1);
}

/** The origin of messages handed to another member after the first one's session ended. */
const REDELIVERY = 'shared-redelivery';

export function createSharedSubscriptions(deps: SharedSubscriptionsDeps): SharedSubscriptions {
  const log = deps.logger.child({ component: 'shared-subscriptions' });
  const groups = new Map<string, Group>();
  /** The groups each connection is a member of. */
  const memberships = new Map<Client, Set<string>>();
  /** QoS 1 copies written to each connection and not acknowledged yet, by packet identifier. */
  const unacknowledged = new Map<Client, Map<number, SharedMessage & { readonly group: string }>>();
  /** Counter of redeliveries, their own duplicate-check sequence (see groupBrokerId). */
  let redeliveries = 0;

  /** Gives a message to the next member in turn; false when no member may take it. */
  function handOver(
    group: Group,
    message: SharedMessage,
    dedupe: { brokerId: string; brokerCounter: unknown },
    cb: () => void,
  ): boolean {
    const member = pickMember(group, (m) => !m.client.closed && deps.canReceive(m.client, message.topic));
    if (!member) return false;
    const copy: PublishPacket & { brokerId: string; brokerCounter: unknown; messageExpiry?: unknown } = {
      cmd: 'publish',
      topic: message.topic,
      payload: message.payload,
      qos: Math.min(message.qos, member.qos) as 0 | 1,
      retain: false,
      dup: false,
      ...dedupe,
    };
    if (message.properties) copy.properties = message.properties;
    if (typeof message.messageExpiry === 'number') copy.messageExpiry = message.messageExpiry;
    // client.publish: aedes's documented way to send one client a message, QoS 1 kept in a persistent
    // session's outgoing store until acknowledged, iot:Receive checked again by authorizeForward.
    member.client.publish(copy, (err) => {
      if (err) log.debug({ err, clientId: member.client.id, topic: message.topic }, 'shared delivery failed');
      cb();
    });
    return true;
  }

  function deliverer(group: Group): (packet: AedesPublishPacket, cb: () => void) => void {
    // As for aedes's own subscriptions: a filter starting with a wildcard matches no `$` topic.
    const wildcardFirst = group.share.filter.startsWith('+') || group.share.filter.startsWith('#');
    return (packet, cb) => {
      if (wildcardFirst && packet.topic.startsWith('$')) {
        cb();
        return;
      }
      const message: SharedMessage = {
        topic: packet.topic,
        payload: packet.payload,
        qos: packet.qos,
        properties: packet.properties,
        messageExpiry: (packet as { messageExpiry?: unknown }).messageExpiry,
      };
      const dedupe = {
        brokerId: groupBrokerId(packet.brokerId, group.share.resource),
        brokerCounter: packet.brokerCounter,
      };
      if (!handOver(group, message, dedupe, cb)) cb();
    };
  }

  /** Notes a QoS 1 copy aedes writes to a member, until the member acknowledges it. */
  function written(client: Client, packet: WrittenPublish): void {
    if (packet.qos !== 1 || packet.messageId === undefined) return;
    const group = groupOfBrokerId(packet.brokerId);
    if (group === undefined) return;
    let pending = unacknowledged.get(client);
    if (!pending) {
      pending = new Map();
      unacknowledged.set(client, pending);
    }
    // Keyed by packet identifier, so at most 65,535 per connection.
    pending.set(packet.messageId, {
      group,
      topic: packet.topic,
      payload: packet.payload,
      qos: 1,
      properties: packet.properties,
      messageExpiry: packet.messageExpiry,
    });
  }

  /**
   * A connection closed: it leaves its groups, and when its session ended with it (clean session or
   * session expiry 0), the QoS 1 copies it had not acknowledged go to other members of their groups
   * (MQTT 5.0 section 4.8.2: the server should send such a message to another member). A persistent
   * session keeps its own: aedes sends them again when it resumes.
   */
  function closed(client: Client): void {
    leaveAll(client);
    const pending = unacknowledged.get(client);
    unacknowledged.delete(client);
    if (!pending || pending.size === 0 || !client.clean) return;
    for (const message of pending.values()) {
      const group = groups.get(message.group);
      const dedupe = { brokerId: groupBrokerId(REDELIVERY, message.group), brokerCounter: ++redeliveries };
      const handed = group !== undefined && handOver(group, message, dedupe, () => {});
      log.debug(
        { clientId: client.id, group: message.group, topic: message.topic, handed },
        'unacknowledged shared message of an ended session',
      );
    }
  }

  function join(client: Client, share: SharedFilter, qos: 0 | 1): void {
    let group = groups.get(share.resource);
    if (!group) {
      const created: Group = { share, members: [], next: 0, deliver: () => {} };
      const deliver = deliverer(created);
      created.deliver = deliver;
      group = created;
      groups.set(share.resource, created);
      deps.bus.subscribe(share.filter, deliver, () => {
        log.debug({ group: share.resource }, 'shared subscription group created');
      });
    }
    const existing = group.members.find((m) => m.client === client);
    if (existing) existing.qos = qos;
    else group.members.push({ client, qos });
    let mine = memberships.get(client);
    if (!mine) {
      mine = new Set();
      memberships.set(client, mine);
    }
    mine.add(share.resource);
  }

  function leave(client: Client, resource: string): void {
    memberships.get(client)?.delete(resource);
    const group = groups.get(resource);
    if (!group) return;
    const index = group.members.findIndex((m) => m.client === client);
    if (index < 0) return;
    group.members.splice(index, 1);
    if (index < group.next) group.next--;
    if (group.next >= group.members.length) group.next = 0;
    if (group.members.length > 0) return;
    groups.delete(resource);
    deps.bus.unsubscribe(group.share.filter, group.deliver, () => {
      log.debug({ group: resource }, 'shared subscription group removed');
    });
  }

  function leaveAll(client: Client): void {
    const mine = memberships.get(client);
    memberships.delete(client);
    for (const resource of mine ?? []) leave(client, resource);
  }

  return {
    attach(client) {
      beforeAedesHandles(client, (packet) => {
        if (packet.cmd === 'subscribe') {
          // The version is known once aedes has handled the CONNECT; a SUBSCRIBE parsed from the
          // CONNECT's own read gets 0x80 for an invalid filter, a failure in both versions.
          rewriteSubscribe(packet.subscriptions, client.version ?? 0);
        } else if (packet.cmd === 'unsubscribe') {
          for (const share of rewriteUnsubscribe(packet.unsubscriptions)) leave(client, share.resource);
        } else if (packet.cmd === 'puback') {
          unacknowledged.get(client)?.delete(packet.messageId);
        }
      });
      onPublishWritten(client.conn, (packet) => written(client, packet));
      // A connection that ends leaves every group it was in (a persistent session rejoins from
      // aedes's restored subscriptions when it reconnects).
      client.conn.once('close', () => closed(client));
    },
    authorize(client, sub, maySubscribe) {
      const parsed = fromInternalFilter(sub.topic);
      if (parsed === undefined) return undefined;
      if ('invalid' in parsed) {
        log.debug({ clientId: client.id, reason: parsed.invalid }, 'shared subscription refused: invalid filter');
        return sub;
      }
      if (!maySubscribe(parsed.resource)) return null;
      const qos: 0 | 1 = sub.qos >= 1 ? 1 : 0;
      // A closing connection is not made a member: aedes would not subscribe it either.
      if (!client.closed) join(client, parsed, qos);
      return sub.qos === qos ? sub : { ...sub, qos };
    },
    groups() {
      const out = new Map<string, readonly string[]>();
      for (const [resource, group] of groups)
        out.set(
          resource,
          group.members.map((m) => m.client.id),
        );
      return out;
    },
  };
}
