import { readFile } from 'node:fs/promises';
import { consoleOperatorPolicy, describeIssues, formatPath, parseIotPolicyDocument } from '@pifleet/protocol';
import type { Broker } from '../broker/broker.js';
import { createWebSocketListener, MQTT_WEBSOCKET_PATH } from '../broker/websocket-listener.js';
import { ConfigError } from '../config/local-core.js';
import { documentProblems, type NamedPolicy } from '../core/policy/index.js';
import { type LocalCredentials, singleCredentialStore } from '../http/credentials.js';
import type { Logger } from '../logger.js';
import type { AccountContext, ServerTlsMaterial } from '../ports/identity.js';

/**
 * The local core's MQTT-over-WebSocket listener: SigV4-presigned upgrades checked against the
 * core's key pair, each connection authorized by one IAM policy, the console operator's unless
 * `--ws-policy` names another, as an operator's IAM user or role is in AWS.
 */

/** The name the default policy is evaluated under (in decisions and logs). */
export const OPERATOR_POLICY_NAME = 'pifleet-console-operator';

/**
 * The policy of WebSocket callers: `file` ('' = the console operator's, `@pifleet/protocol`'s
 * document for this core's account). A file that cannot be read, is not a policy document, or
 * holds what the evaluator would not apply as AWS does is a configuration error (exit 78).
 */
export async function loadWebSocketPolicy(file: string, account: AccountContext): Promise<NamedPolicy> {
  if (file === '') return { name: OPERATOR_POLICY_NAME, document: consoleOperatorPolicy(account) };
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`--ws-policy: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`]);
  }
  const parsed = parseIotPolicyDocument(text);
  if (!parsed.ok) {
    const problems =
      parsed.reason === 'schema'
        ? describeIssues(parsed.issues.map((i) => ({ path: formatPath(i.path), message: i.message })))
        : parsed.message;
    throw new ConfigError([`--ws-policy ${file}: not a policy document: ${problems}`]);
  }
  const unevaluable = documentProblems(parsed.value);
  if (unevaluable.length > 0) {
    throw new ConfigError(unevaluable.map((p) => `--ws-policy ${file}: Statement[${p.statement}]: ${p.message}`));
  }
  return { name: file, document: parsed.value };
}

export interface LocalWebSocketDeps {
  readonly broker: Pick<Broker, 'serveSigned'>;
  readonly tls: ServerTlsMaterial;
  /** The address to bind, and the host of the URL unless `publicHost` differs (a wildcard bind). */
  readonly host: string;
  readonly publicHost: string;
  readonly port: number;
  readonly region: string;
  readonly credentials: LocalCredentials;
  readonly policy: NamedPolicy;
  readonly now: () => number;
  readonly logger: Logger;
}

/** The listener of the local core; `start()` resolves to its `wss://…/mqtt` URL. */
export function createLocalWebSocket(deps: LocalWebSocketDeps) {
  const listener = createWebSocketListener({
    broker: deps.broker,
    tls: deps.tls,
    host: deps.host,
    port: deps.port,
    region: deps.region,
    credentials: singleCredentialStore(deps.credentials),
    policies: [deps.policy],
    now: deps.now,
    logger: deps.logger,
  });
  return {
    async start(): Promise<string> {
      const { port } = await listener.start();
      const host = deps.publicHost.includes(':') ? `[${deps.publicHost}]` : deps.publicHost;
      return `wss://${host}:${port}${MQTT_WEBSOCKET_PATH}`;
    },
    stop: () => listener.stop(),
  };
}
