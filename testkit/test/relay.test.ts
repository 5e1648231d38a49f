import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NetworkCut, startRelay } from '../src/relay.js';

let echo: net.Server;
let relay: NetworkCut;

beforeAll(async () => {
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  relay = await startRelay((echo.address() as net.AddressInfo).port);
});

afterAll(async () => {
  await relay?.close();
  await new Promise((resolve) => echo.close(resolve));
});

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(relay.port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

const echoed = (socket: net.Socket, text: string) =>
  new Promise<string>((resolve) => {
    socket.once('data', (d) => resolve(d.toString()));
    socket.write(text);
  });

const closed = (socket: net.Socket) => new Promise<void>((resolve) => socket.once('close', () => resolve()));

describe('startRelay', () => {
  it('relays both ways, drops every connection when down, refuses new ones, and relays again when up', async () => {
    const before = await connect();
    expect(await echoed(before, 'hello')).toBe('hello');

    const dropped = closed(before);
    relay.down();
    await dropped;
    const refused = await connect();
    await closed(refused);

    relay.up();
    const after = await connect();
    expect(await echoed(after, 'again')).toBe('again');
    after.destroy();
  });
});
