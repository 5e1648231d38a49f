import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  appTopicFilters,
  decodeTelemetryBatch,
  desiredStateJsonSchema,
  isValidThingName,
  type JsonObject,
  type JsonValue,
  parseAppTopic,
  parseJson,
  parsePresenceTopic,
  parseShadowTopic,
  presenceTopics,
  validateDesiredState,
} from '@pifleet/protocol';
import type { Broker, BusMessage } from '../broker/index.js';
import { isJsonObject, jsonEqual } from '../core/shadow/json.js';
import { CloudError } from '../errors.js';
import type { RouteGroup } from '../http/server.js';
import { type Logger, silentLogger } from '../logger.js';
import type { Registry } from '../registry/sqlite-registry.js';
import type { ShadowService } from '../shadow/service.js';
import { CONSOLE_PREFIX, type ConsoleAuth, createConsoleAuth } from './auth.js';
import { createFleetState, type FleetState, type FleetStateOptions } from './fleet-state.js';
import { createSseHub, type SseHub } from './sse.js';

/**
 * The local IoT Core's web console: a fleet view and a thing view served at `/console/` on the
 * core's HTTP listener, without SigV4 (see auth.ts for the cookie scheme). It listens on the
 * broker's in-process bus (presence, telemetry, shadow documents, alerts), keeps a bounded picture
 * of the fleet in memory, and pushes changes to browsers over Server-Sent Events: fleet summaries
 * coalesced every `flushMs`, a followed thing's readings, shadow and alerts at once.
 *
 * Static files are plain HTML/JS/CSS in `assets/` (no build step); uPlot is served from its npm
 * package's dist file.
 */

export interface WebConsoleDeps {
  readonly registry: Registry;
  readonly broker: Broker;
  readonly shadows: ShadowService;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  readonly logger?: Logger;
  /** Console token (default: random per start). */
  readonly token?: string;
  /** Host names besides the loopback names that a request's Host may carry (e.g. the bind address). */
  readonly allowedHosts?: readonly string[];
  /** Fleet summaries are sent at most this often (default 250 ms). */
  readonly flushMs?: number;
  readonly heartbeatMs?: number;
  readonly history?: FleetStateOptions;
  /** Directory of index.html, app.js, app.css (default: `assets/` beside this module). */
  readonly assetsDir?: string;
}

export interface WebConsole {
  /** Loads the assets, reads the registry and the shadows, subscribes to the bus. */
  start(): Promise<void>;
  /** Unsubscribes and closes every event stream. */
  stop(): Promise<void>;
  /** The route group to give the HTTP server (unsigned requests under `/console`). */
  readonly routes: RouteGroup;
  readonly token: string;
  /** The URL that opens the console: `${httpBase}/console/?token=…`. */
  url(httpBase: string): string;
}

interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
} as const;

const MAX_BODY_BYTES = 64 * 1024;
const MAX_ALERT_BYTES = 16 * 1024;
const CONFLICT_RETRIES = 3;

function send(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  type: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': type,
    'content-length': String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, status, JSON.stringify(value), 'application/json; charset=utf-8', headers);
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

function messagePage(title: string, text: string): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` +
    `<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto"><h1>${escapeHtml(title)}</h1>` +
    `<p>${escapeHtml(text)}</p></body></html>`
  );
}

class BodyError extends Error {}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BodyError('request body too large'));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * Outside JSON (bus payloads from devices, request bodies): undefined when it is not JSON or nests
 * deeper than the hostile-input bound. A stored alert is serialized again for every page and
 * stream, so a 16 KB alert of 8,000 nested arrays would otherwise overflow `JSON.stringify`
 * there, every time.
 */
function parseJsonBody(body: Buffer): JsonValue | undefined {
  const parsed = parseJson(body.toString('utf8'));
  return parsed.ok ? parsed.value : undefined;
}

export function createWebConsole(deps: WebConsoleDeps): WebConsole {
  const log = (deps.logger ?? silentLogger()).child({ component: 'console' });
  const { registry, broker, shadows, now } = deps;
  const flushMs = deps.flushMs ?? 250;
  const auth: ConsoleAuth = createConsoleAuth({
    ...(deps.token !== undefined ? { token: deps.token } : {}),
    ...(deps.allowedHosts !== undefined ? { allowedHosts: deps.allowedHosts } : {}),
    now,
  });
  const fleet: FleetState = createFleetState(deps.history ?? {});
  const hub: SseHub = createSseHub(deps.heartbeatMs !== undefined ? { heartbeatMs: deps.heartbeatMs } : {});
  const assets = new Map<string, Asset>();
  let unsubscribes: Array<() => Promise<void>> = [];
  let flushTimer: NodeJS.Timeout | undefined;
  let running = false;
  /** Things whose shadow is being read for their followers, and whether another read is due after. */
  const shadowReads = new Map<string, boolean>();

  // ---- fleet picture ------------------------------------------------------------------------

  function scheduleFlush(): void {
    if (flushTimer !== undefined || !running) return;
    flushTimer = setTimeout(() => {
      flushTimer = undefined;
      const changed = fleet.takeDirty();
      if (changed.length === 0) return;
      hub.toFleet('things', changed);
      for (const s of changed) hub.toThing(s.thingName, 'summary', s);
    }, flushMs);
    flushTimer.unref();
  }

  /** Known thing, or a registered thing not seen yet; undefined for names that are no thing. */
  function known(thingName: string): boolean {
    if (fleet.has(thingName)) return true;
    try {
      registry.describeThing(thingName);
    } catch {
      return false;
    }
    fleet.ensure(thingName);
    return true;
  }

  function syncWithRegistry(): void {
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = registry.listThings({ pageSize: 250, token });
      for (const t of page.items) names.push(t.thingName);
      token = page.next;
    } while (token !== undefined);
    fleet.syncThings(names);
    fleet.takeDirty();
  }

  async function readShadowDocument(thingName: string): Promise<JsonObject | null> {
    const result = await shadows.getShadow(thingName);
    return result.status === 200 ? result.body : null;
  }

  /** Sends the thing's whole shadow document to its followers; coalesces bursts of updates. */
  function pushShadow(thingName: string): void {
    if (shadowReads.has(thingName)) {
      shadowReads.set(thingName, true);
      return;
    }
    shadowReads.set(thingName, false);
    readShadowDocument(thingName)
      .then((doc) => hub.toThing(thingName, 'shadow', { thingName, document: doc, at: now() }))
      .catch((err: unknown) => log.warn({ err, thingName }, 'shadow not read for the console'))
      .finally(() => {
        const again = shadowReads.get(thingName) === true;
        shadowReads.delete(thingName);
        if (again && running) pushShadow(thingName);
      });
  }

  function onPresence(message: BusMessage): void {
    const parsed = parsePresenceTopic(message.topic);
    if (parsed === undefined) return;
    const thingName = broker.bus.sessions().get(parsed.clientId)?.thingName ?? parsed.clientId;
    if (!isValidThingName(thingName) || !known(thingName)) return;
    const event = parseJsonBody(message.payload);
    const at = isJsonObject(event) && typeof event.timestamp === 'number' ? event.timestamp : now();
    const reason =
      isJsonObject(event) && typeof event.disconnectReason === 'string' ? event.disconnectReason : undefined;
    const connected = parsed.eventType === 'connected';
    const current = fleet.summary(thingName);
    // A late disconnect of an older session must not mark a reconnected thing offline.
    if (!connected && current?.connected && broker.bus.sessions().has(parsed.clientId)) return;
    fleet.presence(thingName, connected, at, reason);
    hub.toFleet('presence', { thingName, connected, at, reason: reason ?? null });
    hub.toThing(thingName, 'presence', { thingName, connected, at, reason: reason ?? null });
    scheduleFlush();
  }

  function onTelemetry(message: BusMessage): void {
    const topic = parseAppTopic(message.topic);
    if (topic === undefined || !known(topic.thingName)) return;
    const decoded = decodeTelemetryBatch(message.payload);
    if (!decoded.ok || decoded.value.thingName !== topic.thingName) return;
    fleet.telemetry(topic.thingName, decoded.value, now());
    hub.toThing(topic.thingName, 'telemetry', { thingName: topic.thingName, readings: decoded.value.readings });
    scheduleFlush();
  }

  function onAlert(message: BusMessage): void {
    const topic = parseAppTopic(message.topic);
    if (topic === undefined || message.payload.length > MAX_ALERT_BYTES || !known(topic.thingName)) return;
    const alert = parseJsonBody(message.payload);
    if (alert === undefined) return;
    const at = now();
    fleet.alert(topic.thingName, alert, at);
    hub.toThing(topic.thingName, 'alert', { thingName: topic.thingName, alert: { receivedAt: at, alert } });
    scheduleFlush();
  }

  function onShadow(message: BusMessage): void {
    const parsed = parseShadowTopic(message.topic);
    if (parsed === undefined || parsed.shadowName !== undefined || !known(parsed.thingName)) return;
    if (parsed.operation === 'delete' && parsed.response === 'accepted') {
      fleet.shadowDeleted(parsed.thingName);
    } else if (parsed.operation === 'update' && parsed.response === 'documents') {
      const event = parseJsonBody(message.payload);
      if (!isJsonObject(event) || !isJsonObject(event.current)) return;
      const current = event.current;
      const version = typeof current.version === 'number' ? current.version : 0;
      const timestamp = typeof event.timestamp === 'number' ? event.timestamp : Math.floor(now() / 1000);
      fleet.shadow(parsed.thingName, { version, timestamp, state: current.state }, now());
    } else {
      return;
    }
    if (hub.watched().has(parsed.thingName)) pushShadow(parsed.thingName);
    scheduleFlush();
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  function detail(thingName: string, shadow: JsonObject | null) {
    const t = now();
    return {
      summary: fleet.summary(thingName),
      shadow,
      history: fleet.history(thingName, t),
      alerts: fleet.alerts(thingName),
      now: t,
    };
  }

  function thingFromPath(segment: string | undefined): string | undefined {
    if (segment === undefined) return undefined;
    let name: string;
    try {
      name = decodeURIComponent(segment);
    } catch {
      return undefined;
    }
    return isValidThingName(name) ? name : undefined;
  }

  async function setDesired(req: IncomingMessage, res: ServerResponse, thingName: string): Promise<void> {
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch (err) {
      if (err instanceof BodyError) {
        sendJson(res, 413, { message: `Request body exceeds ${MAX_BODY_BYTES} bytes.` });
        return;
      }
      throw err;
    }
    const input = parseJsonBody(body);
    if (!isJsonObject(input)) {
      sendJson(res, 400, { message: 'The body must be a JSON object {desired, expected?}.', issues: [] });
      return;
    }
    const checked = validateDesiredState(input.desired);
    if (!checked.ok) {
      sendJson(res, 400, { message: 'The desired state is not valid.', issues: checked.issues });
      return;
    }
    const desired = input.desired as JsonObject;
    const expected = isJsonObject(input.expected) ? input.expected : undefined;
    const expectedVersion = typeof expected?.version === 'number' ? expected.version : undefined;
    const expectedDesired = expected && 'desired' in expected ? (expected.desired ?? {}) : undefined;

    for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
      const current = await readShadowDocument(thingName);
      const version = typeof current?.version === 'number' ? current.version : undefined;
      const currentState = isJsonObject(current?.state) ? current.state : {};
      const currentDesired = isJsonObject(currentState.desired) ? currentState.desired : {};
      // Optimistic concurrency on what the form was built from: the desired section. Reported
      // updates from the device bump the version all the time and are not a conflict.
      if (
        expectedVersion !== undefined &&
        version !== expectedVersion &&
        (expectedDesired === undefined || !jsonEqual(currentDesired, expectedDesired))
      ) {
        sendJson(res, 409, {
          message: `The desired state changed since version ${expectedVersion} (now version ${version ?? 'none'}).`,
          version: version ?? null,
          desired: currentDesired,
        });
        return;
      }
      const request: JsonObject = { state: { desired }, clientToken: `console-${now()}` };
      if (version !== undefined) request.version = version;
      const result = await shadows.updateShadow(thingName, undefined, Buffer.from(JSON.stringify(request)));
      if (result.status === 200) {
        log.info({ thingName, version: result.body.version }, 'desired state set from the console');
        sendJson(res, 200, { version: result.body.version ?? null, desired, at: now() });
        return;
      }
      if (result.status !== 409) {
        sendJson(res, result.status, { message: result.body.message ?? 'The shadow update was rejected.', issues: [] });
        return;
      }
      // A report landed between the read and the write: read again.
    }
    sendJson(res, 409, { message: 'The shadow kept changing; try again.', version: null, desired: null });
  }

  function openEvents(res: ServerResponse, thing: string | undefined): void {
    const client = hub.open(res, thing);
    if (thing === undefined) {
      syncWithRegistry();
      client.send('snapshot', { things: fleet.list(), now: now() });
      return;
    }
    readShadowDocument(thing).then(
      (doc) => client.send('detail', detail(thing, doc)),
      (err: unknown) => {
        log.warn({ err, thing }, 'shadow not read for the console');
        client.send('detail', detail(thing, null));
      },
    );
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    const path = url.pathname;
    const method = (req.method ?? 'GET').toUpperCase();
    if (!running) {
      sendJson(res, 503, { message: 'The console is not running.' });
      return;
    }
    if (path === CONSOLE_PREFIX) {
      send(res, 308, '', 'text/plain', { location: `${CONSOLE_PREFIX}/${url.search}` });
      return;
    }
    const sub = path.slice(CONSOLE_PREFIX.length);
    const isPage = sub === '/';
    const isPost = method === 'POST';
    const origin = auth.checkOrigin(req.headers, { navigation: isPage && method === 'GET', needsOrigin: isPost });
    if (!origin.ok) {
      log.warn({ path, reason: origin.reason }, 'console request refused');
      sendJson(res, origin.status, { message: `Forbidden: ${origin.reason}.` });
      return;
    }
    if (isPage && method === 'GET' && url.searchParams.has('token')) {
      if (!auth.tokenMatches(url.searchParams.get('token'))) {
        log.warn('console token refused');
        send(
          res,
          401,
          messagePage('Console token not valid', 'Open the console URL the local IoT Core printed at start-up.'),
          'text/html; charset=utf-8',
        );
        return;
      }
      // A page (not a redirect) moves on, so the next request is same-site and carries the Strict cookie.
      send(
        res,
        200,
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/console/">' +
          '<title>pifleet console</title></head><body><a href="/console/">Open the console</a></body></html>',
        'text/html; charset=utf-8',
        { 'set-cookie': auth.openSession() },
      );
      return;
    }
    if (!auth.hasSession(req.headers)) {
      if (isPage) {
        send(
          res,
          401,
          messagePage(
            'Sign-in needed',
            'Open the console URL with its token, as the local IoT Core printed it at start-up (…/console/?token=…).',
          ),
          'text/html; charset=utf-8',
        );
      } else {
        sendJson(res, 401, { message: 'No console session: open the console URL printed at start-up.' });
      }
      return;
    }

    const parts = sub.split('/').filter((s) => s !== '');
    if (method === 'GET' || method === 'HEAD') {
      if (isPage) return serveAsset(res, 'index.html');
      if (parts[0] === 'assets' && parts.length === 2) return serveAsset(res, parts[1] as string);
      if (parts[0] === 'vendor' && parts.length === 2) return serveAsset(res, `vendor/${parts[1]}`);
      if (parts[0] === 'events' && parts.length === 1) {
        const thing = url.searchParams.get('thing');
        if (thing !== null && !isValidThingName(thing)) {
          sendJson(res, 400, { message: 'Not a valid thing name.' });
          return;
        }
        openEvents(res, thing ?? undefined);
        return;
      }
      if (parts[0] === 'api') {
        if (parts[1] === 'things' && parts.length === 2) {
          syncWithRegistry();
          sendJson(res, 200, { things: fleet.list(), now: now() });
          return;
        }
        if (parts[1] === 'things' && parts.length === 3) {
          const thing = thingFromPath(parts[2]);
          if (thing === undefined || !known(thing)) {
            sendJson(res, 404, { message: 'No such thing.' });
            return;
          }
          sendJson(res, 200, detail(thing, await readShadowDocument(thing)));
          return;
        }
        if (parts[1] === 'schema' && parts[2] === 'desired' && parts.length === 3) {
          sendJson(res, 200, desiredStateJsonSchema());
          return;
        }
      }
    } else if (isPost && parts[0] === 'api' && parts[1] === 'things' && parts[3] === 'desired' && parts.length === 4) {
      const thing = thingFromPath(parts[2]);
      if (thing === undefined || !known(thing)) {
        sendJson(res, 404, { message: 'No such thing.' });
        return;
      }
      await setDesired(req, res, thing);
      return;
    } else {
      sendJson(res, 405, { message: `Method ${method} is not allowed.` });
      return;
    }
    sendJson(res, 404, { message: `Nothing at ${path}.` });
  }

  function serveAsset(res: ServerResponse, name: string): void {
    const asset = assets.get(name);
    if (asset === undefined) {
      sendJson(res, 404, { message: 'No such file.' });
      return;
    }
    send(res, 200, asset.body, asset.type);
  }

  async function loadAssets(): Promise<void> {
    const files: Array<[string, string]> = [
      ['index.html', 'text/html; charset=utf-8'],
      ['app.js', 'text/javascript; charset=utf-8'],
      ['app.css', 'text/css; charset=utf-8'],
    ];
    // Beside this module (the source tree, or a build that copied them), else the source tree
    // next to a build in the workspace.
    const dirs = deps.assetsDir
      ? [deps.assetsDir]
      : [
          fileURLToPath(new URL('./assets/', import.meta.url)),
          fileURLToPath(new URL('../../src/console/assets/', import.meta.url)),
        ];
    let loaded = false;
    for (const dir of dirs) {
      try {
        const bodies = await Promise.all(files.map(([name]) => readFile(join(dir, name))));
        files.forEach(([name, type], i) => {
          assets.set(name, { type, body: bodies[i] as Buffer });
        });
        loaded = true;
        break;
      } catch {
        // try the next place
      }
    }
    if (!loaded) {
      // The core still runs; the console page explains what is missing.
      log.warn({ dirs }, 'console assets not found: the console is unavailable');
      assets.set('index.html', {
        type: 'text/html; charset=utf-8',
        body: Buffer.from(messagePage('Console unavailable', `Its files were not found in ${dirs.join(' or ')}.`)),
      });
    }
    try {
      const require = createRequire(import.meta.url);
      const js = require.resolve('uplot/dist/uPlot.iife.min.js');
      const css = require.resolve('uplot/dist/uPlot.min.css');
      assets.set('vendor/uplot.js', { type: 'text/javascript; charset=utf-8', body: await readFile(js) });
      assets.set('vendor/uplot.css', { type: 'text/css; charset=utf-8', body: await readFile(css) });
    } catch (err) {
      // The page draws no charts without it and says so; everything else works.
      log.warn({ err }, 'uPlot not found: the console shows no charts');
    }
  }

  const routes: RouteGroup = {
    name: 'console',
    signingNames: [],
    routes: [],
    unsigned: {
      prefix: CONSOLE_PREFIX,
      handle(req, res) {
        return handle(req, res).catch((err: unknown) => {
          log.error({ err }, 'console request failed');
          if (!res.headersSent) sendJson(res, 500, { message: 'An unexpected error has occurred.' });
          else res.destroy();
        });
      },
    },
  };

  return {
    routes,
    token: auth.token,
    url: (httpBase) => `${httpBase.replace(/\/$/, '')}${CONSOLE_PREFIX}/?token=${encodeURIComponent(auth.token)}`,

    async start() {
      if (running) throw new CloudError('console.started', 'the console is already started');
      await loadAssets();
      syncWithRegistry();
      for (const session of broker.bus.sessions().values()) {
        const name = session.thingName ?? session.clientId;
        if (fleet.has(name)) fleet.presence(name, true, session.connectedAt);
      }
      for (const s of fleet.list()) {
        const doc = await readShadowDocument(s.thingName).catch(() => null);
        if (doc !== null) {
          const version = typeof doc.version === 'number' ? doc.version : 0;
          const timestamp = typeof doc.timestamp === 'number' ? doc.timestamp : 0;
          fleet.shadow(s.thingName, { version, timestamp, state: doc.state }, now());
        }
      }
      fleet.takeDirty();
      running = true;
      try {
        const subscribe = (filter: string, handler: (m: BusMessage) => void) =>
          broker.bus.subscribe(filter, (m) => {
            if (running) handler(m);
          });
        unsubscribes = await Promise.all([
          subscribe(presenceTopics.allFilter, onPresence),
          subscribe(appTopicFilters.telemetry, onTelemetry),
          subscribe(appTopicFilters.alerts, onAlert),
          subscribe('$aws/things/+/shadow/update/documents', onShadow),
          subscribe('$aws/things/+/shadow/delete/accepted', onShadow),
        ]);
      } catch (err) {
        running = false;
        throw err;
      }
      log.info({ things: fleet.size }, 'console started');
    },

    async stop() {
      running = false;
      if (flushTimer !== undefined) clearTimeout(flushTimer);
      flushTimer = undefined;
      hub.closeAll();
      const steps = unsubscribes;
      unsubscribes = [];
      await Promise.all(steps.map((u) => u().catch((err: unknown) => log.warn({ err }, 'console unsubscribe failed'))));
    },
  };
}
