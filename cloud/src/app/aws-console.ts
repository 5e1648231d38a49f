import { randomBytes } from 'node:crypto';
import { DescribeEndpointCommand, IoTClient, ListThingsCommand } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { type ApiCredentials, createCommandApiClient } from '../adapters/command-api-client.js';
import { createIotWebSocketConnection } from '../adapters/iot-websocket.js';
import { createAwsConsoleBackend } from '../console/aws-backend.js';
import { createWebConsole, type WebConsole } from '../console/console.js';
import { CloudError } from '../errors.js';
import { createHttpServer } from '../http/server.js';
import { type Logger, silentLogger } from '../logger.js';

/**
 * The web console for a deployed stack: the same pages as the local core's, served by this process
 * on 127.0.0.1, reading an AWS account with the operator's credentials (aws-backend.ts). The
 * credentials never reach the browser; it holds only the console's session cookie.
 */

export interface AwsConsoleOptions {
  readonly region: string;
  /** The operator's credentials (the SDK's default chain, a profile, …), asked again as they expire. */
  readonly credentials: () => Promise<ApiCredentials>;
  /** The stack's command/query API base URL (its `ApiUrl` output). */
  readonly apiUrl: string;
  /** `wss://…/mqtt`; default the account's `iot:Data-ATS` endpoint on 443. */
  readonly wsUrl?: string;
  /**
   * The data plane's HTTPS endpoint; default `AWS_ENDPOINT_URL_IOT_DATA_PLANE` (the SDK's own
   * setting) when set, else the account's `iot:Data-ATS` endpoint. (`AWS_ENDPOINT_URL_IOT` points
   * the control plane elsewhere, as the SDK does.)
   */
  readonly dataEndpoint?: string;
  /** CA certificates (PEM) for the WebSocket endpoint instead of Node's (the local IoT Core's CA). */
  readonly caPem?: string;
  /** Listener; default 127.0.0.1 and port 8890 (0: any free port). */
  readonly host?: string;
  readonly port?: number;
  /** Console token (default: random per start). */
  readonly token?: string;
  /** A thing heard of longer ago than this is flagged silent (default 15 minutes). */
  readonly silentAfterMs?: number;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** Where the endpoint settings are read (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface AwsConsole {
  /** Connects to the account (first WebSocket connection, registry, shadows) and listens. */
  start(): Promise<{ readonly url: string; readonly wsUrl: string }>;
  stop(): Promise<void>;
}

export const AWS_CONSOLE_DEFAULT_PORT = 8890;

export function createAwsConsole(options: AwsConsoleOptions): AwsConsole {
  const logger = options.logger ?? silentLogger();
  const now = options.now ?? Date.now;
  const env = options.env ?? process.env;
  let webConsole: WebConsole | undefined;
  let server: ReturnType<typeof createHttpServer> | undefined;

  async function endpoints(controlPlane: IoTClient): Promise<{ ws: string; data: string }> {
    const configured = options.dataEndpoint ?? env.AWS_ENDPOINT_URL_IOT_DATA_PLANE;
    const configuredData = configured === '' ? undefined : configured;
    if (options.wsUrl !== undefined && configuredData !== undefined) return { ws: options.wsUrl, data: configuredData };
    const { endpointAddress } = await controlPlane.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }));
    if (endpointAddress === undefined || endpointAddress === '') {
      throw new CloudError('CONSOLE_ENDPOINT', 'DescribeEndpoint (iot:Data-ATS) returned no address');
    }
    const host = endpointAddress.replace(/:\d+$/, '');
    return { ws: options.wsUrl ?? `wss://${host}/mqtt`, data: configuredData ?? `https://${host}` };
  }

  return {
    async start() {
      const { region, credentials } = options;
      // The SDK's endpoint settings, read from the given environment (the CLI's, which may not be the process's).
      const controlEndpoint = env.AWS_ENDPOINT_URL_IOT;
      const controlPlane = new IoTClient({
        region,
        credentials,
        ...(controlEndpoint !== undefined && controlEndpoint !== '' ? { endpoint: controlEndpoint } : {}),
      });
      // One cheap call first: bad credentials or a missing permission are named here by the
      // service, instead of a WebSocket upgrade refused without a reason mqtt.js passes on.
      const found = await controlPlane
        .send(new ListThingsCommand({ maxResults: 1 }))
        .catch((err: unknown) => {
          const name = (err as { name?: string }).name ?? 'Error';
          throw new CloudError('CONSOLE_ACCOUNT', `ListThings failed: ${name}: ${(err as Error).message}`, {
            cause: err,
            data: { awsError: name },
          });
        })
        .then(() => endpoints(controlPlane))
        .catch((err: unknown) => {
          controlPlane.destroy();
          throw err;
        });
      const dataPlane = new IoTDataPlaneClient({ region, credentials, endpoint: found.data });
      const live = createIotWebSocketConnection({
        url: found.ws,
        region,
        credentials,
        clientId: `pifleet-console-${randomBytes(6).toString('hex')}`,
        log: logger,
        ...(options.caPem === undefined ? {} : { ca: options.caPem }),
      });
      try {
        await live.start();
      } catch (err) {
        controlPlane.destroy();
        dataPlane.destroy();
        await live.close();
        throw new CloudError('CONSOLE_WEBSOCKET', `cannot connect to ${found.ws}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      const backend = createAwsConsoleBackend({
        controlPlane,
        dataPlane,
        api: createCommandApiClient({ baseUrl: options.apiUrl, region, credentials }),
        live,
        log: logger,
        now,
      });
      const host = options.host ?? '127.0.0.1';
      webConsole = createWebConsole({
        backend,
        now,
        logger,
        allowedHosts: [host],
        ...(options.token === undefined ? {} : { token: options.token }),
        ...(options.silentAfterMs === undefined ? {} : { silentAfterMs: options.silentAfterMs }),
      });
      try {
        await webConsole.start();
        server = createHttpServer({
          host,
          port: options.port ?? AWS_CONSOLE_DEFAULT_PORT,
          region,
          // No SigV4 route here: the console group checks its own session.
          credentials: { secretFor: () => undefined },
          routes: [webConsole.routes],
          now,
          logger,
        });
        const listening = await server.start();
        return { url: webConsole.url(listening.url), wsUrl: found.ws };
      } catch (err) {
        await this.stop();
        throw err;
      }
    },

    async stop() {
      const s = server;
      server = undefined;
      await s?.stop();
      const c = webConsole;
      webConsole = undefined;
      await c?.stop();
    },
  };
}
