import {
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  IoTDataPlaneClient,
  ListRetainedMessagesCommand,
  PublishCommand,
} from '@aws-sdk/client-iot-data-plane';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCredentials, singleCredentialStore } from '../../src/http/credentials.js';
import { ApiError } from '../../src/http/errors.js';
import { createHttpServer, type HttpServerHandle, type UnmatchedRequest } from '../../src/http/server.js';

/** Route groups other parts add (here a stand-in IoT data plane), signed by the real data-plane SDK. */

const credentials = generateCredentials();
const published: Array<{ topic: string; body: string; service: string }> = [];
let server: HttpServerHandle;
let data: IoTDataPlaneClient;

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
    ],
  });
  const { url } = await server.start();
  data = new IoTDataPlaneClient({ region: 'us-east-1', endpoint: url, credentials, maxAttempts: 1 });
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
    await expect(server.start()).rejects.toMatchObject({ code: 'http.started' });
  });
});
