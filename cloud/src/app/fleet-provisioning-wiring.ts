import { certificateRequestFilters, provisionRequestFilter } from '@pifleet/protocol';
import type { Broker, BusMessage } from '../broker/index.js';
import type { LocalCa } from '../ca/local-ca.js';
import { CloudError } from '../errors.js';
import { type CertificatesMqtt, createCertificatesMqtt } from '../fleet-provisioning/certificates-mqtt.js';
import {
  createOwnershipTokens,
  type OwnershipTokenConsumer,
  type OwnershipTokens,
} from '../fleet-provisioning/ownership-tokens.js';
import {
  createRegisterThing,
  type HookResolver,
  type PreProvisioningHookFunction,
  type RegisterThingService,
} from '../fleet-provisioning/register-thing.js';
import { type Logger, silentLogger } from '../logger.js';
import type { ProvisioningTemplates } from '../provisioning/templates.js';
import type { Registry } from '../registry/sqlite-registry.js';

/**
 * The device side of fleet provisioning in the local core: an in-process broker subscription to
 * `$aws/certificates/create/json` and `…/create-from-csr/json` feeding the MQTT adapter, whose
 * answers go back through the broker addressed to the requesting connection (so they are still
 * checked against its iot:Receive, and no other client sees them); and RegisterThing on
 * `$aws/provisioning-templates/+/provision/json`, answered the same way, which consumes the tokens
 * and calls a template's pre-provisioning hook: a function of {@link LocalFleetProvisioningDeps.hooks}
 * named by the hook's Lambda ARN (`arn:aws:lambda:…:function:NAME`), run in process.
 */

/** The function name of a Lambda ARN (`arn:aws:lambda:region:account:function:NAME[:qualifier]`), or undefined. */
export function lambdaFunctionName(arn: string): string | undefined {
  const parts = arn.split(':');
  if (parts.length < 7 || parts.length > 8 || parts[0] !== 'arn' || parts[2] !== 'lambda' || parts[5] !== 'function') {
    return undefined;
  }
  return parts[6] || undefined;
}

export interface LocalFleetProvisioningDeps {
  readonly broker: Broker;
  readonly registry: Registry;
  readonly ca: LocalCa;
  /** The provisioning templates RegisterThing provisions with. */
  readonly templates: Pick<ProvisioningTemplates, 'getTemplateForProvisioning'>;
  /**
   * Pre-provisioning hooks by Lambda function name. A template whose hook names a function not here
   * is denied, as AWS denies when its Lambda fails.
   */
  readonly hooks?: Readonly<Record<string, PreProvisioningHookFunction>>;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  readonly logger?: Logger;
  /** The tokens to use instead of a fresh in-memory table (tests shorten the hour). */
  readonly tokens?: OwnershipTokens;
  /**
   * How often certificates whose token expired are looked for, besides at every request. Default a
   * minute: a pending certificate outlives its hour by at most that.
   */
  readonly sweepIntervalMs?: number;
}

export interface LocalFleetProvisioning {
  /** Subscribes to the certificate request topics; adopts pending certificates a restart left. */
  start(): Promise<void>;
  /** Unsubscribes and waits for the answers in flight. */
  stop(): Promise<void>;
  /** The tokens RegisterThing consumes (`consumeOwnershipToken(token)`). */
  readonly ownershipTokens: OwnershipTokenConsumer;
}

export function createLocalFleetProvisioning(deps: LocalFleetProvisioningDeps): LocalFleetProvisioning {
  const log = (deps.logger ?? silentLogger()).child({ component: 'fleet-provisioning-wiring' });
  const tokens = deps.tokens ?? createOwnershipTokens({ now: deps.now });
  let mqtt: CertificatesMqtt | undefined;
  let registerThing: RegisterThingService | undefined;
  const hooks = new Map(Object.entries(deps.hooks ?? {}));
  const resolveHook: HookResolver = (targetArn) => {
    const name = lambdaFunctionName(targetArn);
    return name === undefined ? undefined : hooks.get(name);
  };
  let unsubscribes: Array<() => Promise<void>> = [];
  let timer: NodeJS.Timeout | undefined;

  /**
   * Certificates still PENDING_ACTIVATION when the core starts lost their tokens with the last
   * process: they expire an hour after they were made, as if their token had.
   */
  function adoptOrphans(): void {
    let token: string | undefined;
    do {
      const page = deps.registry.listCertificates({ pageSize: 250, token, ascending: true });
      for (const cert of page.items) {
        if (cert.status === 'PENDING_ACTIVATION') tokens.adoptOrphan(cert.certificateId, cert.creationDate.getTime());
      }
      token = page.next;
    } while (token !== undefined);
  }

  function onMessage(message: BusMessage): void {
    // Not awaited: one device's CSR check must not hold every other device's request behind it.
    void mqtt?.handle(message);
  }

  function onProvision(message: BusMessage): void {
    void registerThing?.handle(message);
  }

  return {
    ownershipTokens: { consumeOwnershipToken: (token) => tokens.consumeOwnershipToken(token) },

    async start() {
      if (mqtt !== undefined) {
        throw new CloudError('FLEET_PROVISIONING_ALREADY_STARTED', 'the fleet provisioning transports are started');
      }
      const { broker } = deps;
      adoptOrphans();
      // QoS 0: an answer goes to the connection that asked or nowhere (see the bus's `to`).
      const reply = (clientId: string, topic: string, payload: string) =>
        broker.bus.publish(topic, payload, { qos: 0, to: clientId });
      const certificateOf = (clientId: string) => broker.bus.session(clientId)?.certificateId;
      const created = createCertificatesMqtt({
        ca: deps.ca,
        registry: deps.registry,
        tokens,
        reply,
        certificateOf,
        logger: deps.logger ?? silentLogger(),
      });
      mqtt = created;
      registerThing = createRegisterThing({
        templates: deps.templates,
        registry: deps.registry,
        tokens,
        hooks: resolveHook,
        reply,
        certificateOf,
        logger: deps.logger ?? silentLogger(),
      });
      try {
        for (const filter of certificateRequestFilters)
          unsubscribes.push(await broker.bus.subscribe(filter, onMessage));
        unsubscribes.push(await broker.bus.subscribe(provisionRequestFilter, onProvision));
      } catch (err) {
        await this.stop();
        throw err;
      }
      created.sweep();
      timer = setInterval(() => created.sweep(), deps.sweepIntervalMs ?? 60_000);
      timer.unref();
      log.info('fleet provisioning device transports started');
    },

    async stop() {
      const running = mqtt;
      const steps = unsubscribes;
      unsubscribes = [];
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      for (const unsubscribe of steps) {
        try {
          await unsubscribe();
        } catch (err) {
          log.warn({ err }, 'fleet provisioning subscription not removed');
        }
      }
      const registering = registerThing;
      mqtt = undefined;
      registerThing = undefined;
      await Promise.all([running?.idle(), registering?.idle()]);
    },
  };
}
