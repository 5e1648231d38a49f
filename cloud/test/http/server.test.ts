import {
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  IoTDataPlaneClient,
  ListRetainedMessagesCommand,
  PublishCommand,
} from '@aws-sdk/client-iot-data-plane';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudError } from '../../src/errors.js';
import { generateCredentials, singleCredentialStore } from '../../src/http/credentials.js';
import { ApiError } from '../../src/http/errors.js';
import {
  createHttpServer,
  type HttpServerHandle,
  type RouteGroup,
  type UnmatchedRequest,
} from '../../src/http/server.js';
import { http } from './plain-request.js';

/**
 * Route groups other parts add: a stand-in IoT data plane, signed by the real data-plane SDK, and a
 * group with its own authentication (what the web console is) on the same listener — its admission
 * runs before routing and before the body is read, its routes get the server's matching, body
 * limit and error mapping in a plain shape, and a route may stream.
 */

const credentials = generateCredentials();
const published: Array<{ topic: string; body: string; service: string }> = [];
let server: HttpServerHandle;
let data: IoTDataPlaneClient;
let base: string;

const pass = { 'x-pass': 'yes' };

const panel: RouteGroup = {
  name: 'panel',
  signingNames: [],
  ownAuth: {
    prefix: '/panel',
    headers: { 'x-panel': '1', 'cache-control': 'no-store' },
    maxBodyBytes: 16,
    admit(request) {
      if (request.rawPath === '/panel') return { status: 308, headers: { location: '/panel/' }, body: '' };
      if (request.headers['x-pass'] !== 'yes') return { status: 401, json: { message: 'no pass' } };
      return undefined;
    },
    unmatched: ({ method, rawPath }) => ({ status: 404, json: { message: `nothing for ${method} ${rawPath}` } }),
  },
  routes: [
    {
      method: 'GET',
      path: '/panel/items/{id}',
      operation: 'GetItem',
      handle: (r) => ({ json: { id: r.params.id, query: Object.fromEntries(r.query), signed: r.principal ?? null } }),
    },
    {
      method: 'POST',
      path: '/panel/items',
      operation: 'PutItem',
      handle: (r) => ({ status: 201, headers: { 'cache-control': 'private' }, json: { bytes: r.body.length } }),
    },
    {
      method: 'GET',
      path: '/panel/gone',
      operation: 'Gone',
      handle() {
        throw new ApiError('ResourceNotFoundException', 404, 'It went away.', { fields: { item: 'x' } });
      },
    },
    {
      method: 'GET',
      path: '/panel/boom',
      operation: 'Boom',
      handle() {
        throw new Error('a bug');
      },
    },
    {
      method: 'GET',
      path: '/panel/stream',
      operation: 'Stream',
      handle: () => ({
        stream(res) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: one\n\n');
          res.end('data: two\n\n');
        },
      }),
    },
  ],
};

beforeAll(async () => {
  server = createHttpServer({
    host: '127.0.0.1',
    port: 0,
    region: 'us-east-1',
    credentials: singleCredentialStore(credentials),
    now: Date.now,
    routes: [
      {
        name: 'data-plane',
        signingNames: ['iotdata'],
        routes: [
          {
            method: 'GET',
            path: '/things/{thingName}/shadow',
            operation: 'GetThingShadow',
            handle(request) {
              if (request.params.thingName === 'missing') {
                throw new ApiError('ResourceNotFoundException', 404, 'No shadow exists with name: missing');
              }
              return { json: { state: { reported: { thing: request.params.thingName } } } };
            },
          },
        ],
        fallback(request: UnmatchedRequest) {
          const m = /^\/topics\/([^/]+)$/.exec(request.rawPath);
          if (!m || request.method !== 'POST') return undefined;
          published.push({
            topic: decodeURIComponent(m[1] as string),
            body: request.body.toString(),
            service: request.principal.service,
          });
          return { json: {} };
        },
      },
      panel,
    ],
  });
  base = (await server.start()).url;
  data = new IoTDataPlaneClient({ region: 'us-east-1', endpoint: base, credentials, maxAttempts: 1 });
});

afterAll(async () => {
  data?.destroy();
  await server?.stop();
});

describe('createHttpServer route groups', () => {
  it('routes a templated operation signed for iotdata, with percent-decoded labels', async () => {
    const out = await data.send(new GetThingShadowCommand({ thingName: 'pi:01' }));
    expect(JSON.parse(new TextDecoder().decode(out.payload))).toEqual({ state: { reported: { thing: 'pi:01' } } });
  });

  it('maps a thrown ApiError to the SDK exception class', async () => {
    await expect(data.send(new GetThingShadowCommand({ thingName: 'missing' }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      $metadata: { httpStatusCode: 404 },
    });
  });

  it("gives an ApiError AWS's error code, the x-amzn-ErrorType name, as its code", () => {
    const err = new ApiError('ResourceNotFoundException', 404, 'It went away.');
    expect(err).toBeInstanceOf(CloudError);
    expect(err).toMatchObject({
      name: 'ApiError',
      code: 'ResourceNotFoundException',
      errorType: 'ResourceNotFoundException',
      status: 404,
    });
  });

  it("hands unmatched signed requests to the group's fallback", async () => {
    await data.send(new PublishCommand({ topic: 'pifleet/pi-01/commands', payload: Buffer.from('{"a":1}'), qos: 1 }));
    expect(published).toEqual([{ topic: 'pifleet/pi-01/commands', body: '{"a":1}', service: 'iotdata' }]);
  });

  it('answers 405 for a known path with another method and 404 for a path nobody serves', async () => {
    await expect(data.send(new DeleteThingShadowCommand({ thingName: 'pi-01' }))).rejects.toMatchObject({
      name: 'MethodNotAllowedException',
      $metadata: { httpStatusCode: 405 },
    });
    await expect(data.send(new ListRetainedMessagesCommand({}))).rejects.toMatchObject({
      name: 'UnknownOperationException',
      $metadata: { httpStatusCode: 404 },
    });
  });

  it('refuses to start twice', async () => {
    await expect(server.start()).rejects.toMatchObject({ code: 'HTTP_ALREADY_STARTED' });
  });
});

describe('a route group with its own authentication', () => {
  it('admits before routing: a refused request gets the refusal on any path, with the group headers and no AWS ones', async () => {
    for (const path of ['/panel/items/a', '/panel/nowhere']) {
      const r = await http(base, 'GET', path);
      expect(r.status).toBe(401);
      expect(r.json()).toEqual({ message: 'no pass' });
      expect(r.headers['x-panel']).toBe('1');
      expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(Object.keys(r.headers).filter((h) => h.startsWith('x-amzn-'))).toEqual([]);
    }
    const redirect = await http(base, 'GET', '/panel');
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe('/panel/');
  });

  it('refuses before the body is read: an oversized body without a pass is 401, not 413', async () => {
    const r = await http(base, 'POST', '/panel/items', {}, 'x'.repeat(1000));
    expect(r.status).toBe(401);
  });

  it('routes admitted requests through the templates, decoding labels and reading the query as a form', async () => {
    const r = await http(base, 'GET', '/panel/items/a%3Ab?x=a+b&x=c&y=%ZZ', pass);
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ id: 'a:b', query: { x: 'a b', y: '%ZZ' }, signed: null });
    expect(r.headers['x-panel']).toBe('1');
    expect(r.headers['x-amzn-requestid']).toBeUndefined();
  });

  it("lets a response's own headers win over the group's", async () => {
    const r = await http(base, 'POST', '/panel/items', pass, '{"a":1}');
    expect(r.status).toBe(201);
    expect(r.json()).toEqual({ bytes: 7 });
    expect(r.headers['cache-control']).toBe('private');
  });

  it('answers unmatched paths and methods with the group’s own answer', async () => {
    for (const [method, path] of [
      ['GET', '/panel/nowhere'],
      ['DELETE', '/panel/items/a'],
      ['GET', '/panel/items/%ZZ'],
    ] as const) {
      const r = await http(base, method, path, pass);
      expect(r.status).toBe(404);
      expect(r.json()).toEqual({ message: `nothing for ${method} ${path}` });
    }
  });

  it('limits the body to the group’s size with 413 in the plain shape and closes the connection', async () => {
    const r = await http(base, 'POST', '/panel/items', pass, 'x'.repeat(17));
    expect(r.status).toBe(413);
    expect(r.json()).toEqual({ message: 'Request body exceeds 16 bytes.' });
    expect(r.headers['x-amzn-errortype']).toBeUndefined();
    expect(r.headers.connection).toBe('close');
    expect(r.headers['x-panel']).toBe('1');
  });

  it('maps thrown errors as for the signed APIs, without the AWS error header', async () => {
    const gone = await http(base, 'GET', '/panel/gone', pass);
    expect(gone.status).toBe(404);
    expect(gone.json()).toEqual({ message: 'It went away.', item: 'x' });
    expect(gone.headers['x-amzn-errortype']).toBeUndefined();
    const boom = await http(base, 'GET', '/panel/boom', pass);
    expect(boom.status).toBe(500);
    expect(boom.json()).toEqual({ message: 'An unexpected error has occurred.' });
    expect(boom.headers['x-panel']).toBe('1');
  });

  it('hands a streaming route the response: its own head and body', async () => {
    const r = await http(base, 'GET', '/panel/stream', pass);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/event-stream');
    expect(r.headers['x-panel']).toBeUndefined();
    expect(r.text).toBe('data: one\n\ndata: two\n\n');
  });
});

describe('the signed APIs beside it', () => {
  it('still refuse unsigned requests (the SDK calls above go through beside the group)', async () => {
    const unsigned = await http(base, 'GET', '/things/pi-01/shadow', pass);
    expect(unsigned.status).toBe(403);
    expect(unsigned.headers['x-amzn-errortype']).toBe('MissingAuthenticationTokenException');
  });

  it('never see the group’s prefix: a path under it is the group’s, signature or not', async () => {
    const r = await http(base, 'GET', '/panel/things/pi-01/shadow', { authorization: 'AWS4-HMAC-SHA256 bogus' });
    expect(r.status).toBe(401);
    expect(r.json()).toEqual({ message: 'no pass' });
  });

  it('refuses a group whose route lies outside its prefix when the server is created', () => {
    const stray: RouteGroup = {
      ...panel,
      routes: [{ method: 'GET', path: '/elsewhere', operation: 'Stray', handle: () => ({}) }],
    };
    expect(() =>
      createHttpServer({
        host: '127.0.0.1',
        port: 0,
        region: 'us-east-1',
        credentials: singleCredentialStore(credentials),
        now: Date.now,
        routes: [stray],
      }),
    ).toThrow(/outside its prefix/);
  });
});
