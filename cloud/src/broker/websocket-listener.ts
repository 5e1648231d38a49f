import { type IncomingMessage, STATUS_CODES } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { IOT_WEBSOCKET_SERVICE } from '../adapters/iot-websocket.js';
import type { NamedPolicy } from '../core/policy/index.js';
import type { CredentialStore } from '../http/credentials.js';
import { verifySigV4Query } from '../http/sigv4.js';
import { type Logger, silentLogger } from '../logger.js';
import type { ServerTlsMaterial } from '../ports/identity.js';
import type { Broker } from './broker.js';
import { MAX_PACKET_REMAINING_LENGTH } from './packet-guard.js';

/**
 * MQTT over WebSocket, as AWS IoT Core serves operators and browsers: `wss://host:port/mqtt`, the
 * upgrade presigned with SigV4 for the `iotdevicegateway` service (the signature in the query
 * string, a session token appended after signing), subprotocol `mqtt`. A refused signature is an
 * HTTP 403 on the upgrade, before any MQTT. An accepted connection goes to the broker with the
 * caller's IAM policies, which then authorize its CONNECT, SUBSCRIBE, PUBLISH and deliveries as a
 * device's IoT policies authorize a device's.
 */

export const MQTT_WEBSOCKET_PATH = '/mqtt';
/** The WebSocket subprotocol of MQTT 3.1.1 and 5 (MQTT 5.0 §6). */
export const MQTT_WEBSOCKET_SUBPROTOCOL = 'mqtt';
/**
 * The longest upgrade URL read (path and query). A presigned URL is ~400 characters, ~1.5 KB more
 * with an STS session token; AWS's HTTP endpoints stop at 8 KB too. (Node's parser answers a
 * request line and headers over 16 KiB with 431 itself, before the upgrade event.)
 */
export const MAX_UPGRADE_URL_CHARS = 8_192;
/**
 * The largest WebSocket message accepted. ws holds a whole message before handing it on (its
 * default allows 100 MiB); a client writes one MQTT packet, or a few, per message, and the broker
 * takes no packet over MAX_PACKET_REMAINING_LENGTH: twice that leaves room for a packet with the
 * ones written beside it.
 */
const MAX_MESSAGE_BYTES = 2 * (MAX_PACKET_REMAINING_LENGTH + 5);
/** An upgrade request must arrive complete within this long (Node's default is 60 s). */
const HEADERS_TIMEOUT_MS = 10_000;

/** The key pairs SigV4 signatures are checked against; a session token for temporary ones. */
export interface WebSocketCredentials extends CredentialStore {
  sessionTokenFor?(accessKeyId: string): string | undefined;
}

export interface WebSocketListenerDeps {
  readonly broker: Pick<Broker, 'serveSigned'>;
  readonly tls: Pick<ServerTlsMaterial, 'serverCertPem' | 'serverKeyPem'>;
  readonly host: string;
  /** 0 picks an ephemeral port; `start()` reports the real one. */
  readonly port: number;
  /** The region signatures must be scoped to. */
  readonly region: string;
  readonly credentials: WebSocketCredentials;
  /** The IAM policies of the callers (the core's one key pair has one policy set). */
  readonly policies: readonly NamedPolicy[];
  /** Milliseconds since the epoch, for the signature's date. Default Date.now. */
  readonly now?: () => number;
  readonly logger?: Logger;
}

export interface WebSocketListener {
  /** Listens; resolves to the address bound. Rejects as `listen` does (EADDRINUSE, EACCES). */
  start(): Promise<{ host: string; port: number }>;
  /** Closes the listener and every WebSocket it still holds. Idempotent. */
  stop(): Promise<void>;
}

/** Answers an upgrade request with an HTTP error and closes the connection (no WebSocket is made). */
function refuseUpgrade(socket: Duplex, status: number, body: string, errorType?: string): void {
  const headers = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...(errorType === undefined ? [] : [`x-amzn-ErrorType: ${errorType}`]),
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
}

/** The subprotocols an upgrade offers (`Sec-WebSocket-Protocol`, comma-separated, maybe repeated). */
function offeredProtocols(header: string | string[] | undefined): string[] {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  return values.flatMap((v) => v.split(',')).map((p) => p.trim());
}

export function createWebSocketListener(deps: WebSocketListenerDeps): WebSocketListener {
  const log = (deps.logger ?? silentLogger()).child({ component: 'websocket' });
  const now = deps.now ?? Date.now;
  const secretFor = (accessKeyId: string) => deps.credentials.secretFor(accessKeyId);
  const sessionTokenFor = (accessKeyId: string) => deps.credentials.sessionTokenFor?.(accessKeyId);
  let server: Server | undefined;
  let wss: WebSocketServer | undefined;
  /** Raw connections, so stop() also ends those still in TLS or in their upgrade. */
  const sockets = new Set<Socket>();

  function onUpgrade(ws: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer) {
    socket.on('error', (err) => log.debug({ err: err.message }, 'websocket connection error'));
    const remoteAddress = req.socket.remoteAddress;
    const url = req.url ?? '';
    if (url.length > MAX_UPGRADE_URL_CHARS) {
      log.info({ remoteAddress, urlChars: url.length }, 'websocket upgrade refused: URL too long');
      refuseUpgrade(socket, 414, `The request URL is longer than ${MAX_UPGRADE_URL_CHARS} characters.`);
      return;
    }
    const q = url.indexOf('?');
    const rawPath = q === -1 ? url : url.slice(0, q);
    const rawQuery = q === -1 ? '' : url.slice(q + 1);
    if (rawPath !== MQTT_WEBSOCKET_PATH) {
      refuseUpgrade(socket, 404, `MQTT over WebSocket is served on ${MQTT_WEBSOCKET_PATH}.`);
      return;
    }
    const verified = verifySigV4Query(
      { method: req.method ?? 'GET', rawPath, rawQuery, rawHeaders: req.rawHeaders },
      { region: deps.region, services: [IOT_WEBSOCKET_SERVICE], secretFor, sessionTokenFor, now },
    );
    if (!verified.ok) {
      // The reason and where from; never the URL (it carries the signature and maybe a session token).
      log.info({ remoteAddress, errorType: verified.errorType }, 'websocket upgrade refused: signature');
      refuseUpgrade(socket, 403, verified.message, verified.errorType);
      return;
    }
    if (!offeredProtocols(req.headers['sec-websocket-protocol']).includes(MQTT_WEBSOCKET_SUBPROTOCOL)) {
      log.info({ remoteAddress }, 'websocket upgrade refused: no mqtt subprotocol');
      refuseUpgrade(socket, 400, `Sec-WebSocket-Protocol must offer '${MQTT_WEBSOCKET_SUBPROTOCOL}'.`);
      return;
    }
    const servername = (req.socket as TLSSocket).servername;
    ws.handleUpgrade(req, socket, head, (websocket) => {
      const stream = createWebSocketStream(websocket);
      // aedes listens for the stream's errors once it has it; until then, and after, they are logged here.
      stream.on('error', (err) => log.debug({ err: err.message }, 'websocket stream error'));
      log.debug({ remoteAddress, accessKeyId: verified.accessKeyId }, 'websocket connection accepted');
      deps.broker.serveSigned(stream, {
        principalId: verified.accessKeyId,
        policies: deps.policies,
        ...(remoteAddress === undefined ? {} : { sourceIp: remoteAddress }),
        ...(typeof servername === 'string' && servername !== '' ? { domainName: servername } : {}),
      });
    });
  }

  return {
    async start() {
      if (server) throw new Error('the WebSocket listener is already started');
      const ws = new WebSocketServer({
        noServer: true,
        maxPayload: MAX_MESSAGE_BYTES,
        perMessageDeflate: false,
        handleProtocols: (protocols) =>
          protocols.has(MQTT_WEBSOCKET_SUBPROTOCOL) ? MQTT_WEBSOCKET_SUBPROTOCOL : false,
      });
      const srv = createServer({
        cert: deps.tls.serverCertPem,
        key: deps.tls.serverKeyPem,
        minVersion: 'TLSv1.2',
        handshakeTimeout: 10_000,
        headersTimeout: HEADERS_TIMEOUT_MS,
        requestTimeout: HEADERS_TIMEOUT_MS,
      });
      srv.on('connection', (socket: Socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
      });
      srv.on('upgrade', (req, socket, head) => onUpgrade(ws, req, socket, head));
      srv.on('request', (req, res) => {
        const path = (req.url ?? '').split('?')[0];
        const status = path === MQTT_WEBSOCKET_PATH ? 426 : 404;
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
        res.end(status === 426 ? 'Upgrade to a WebSocket with subprotocol mqtt.' : 'Not found.');
      });
      srv.on('tlsClientError', (err, socket) => {
        log.debug({ err: err.message, remoteAddress: socket.remoteAddress }, 'TLS handshake refused');
      });
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(deps.port, deps.host, () => {
          srv.off('error', reject);
          resolve();
        });
      });
      server = srv;
      wss = ws;
      const address = srv.address() as AddressInfo;
      log.info({ host: deps.host, port: address.port }, 'websocket listener listening');
      return { host: deps.host, port: address.port };
    },

    async stop() {
      const srv = server;
      const ws = wss;
      server = undefined;
      wss = undefined;
      if (!srv) return;
      const closed = new Promise<void>((resolve) => srv.close(() => resolve()));
      for (const client of ws?.clients ?? []) client.terminate();
      ws?.close();
      for (const socket of sockets) socket.destroy();
      await closed;
      log.info('websocket listener stopped');
    },
  };
}
