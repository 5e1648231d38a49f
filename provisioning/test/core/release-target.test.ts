import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isInstallBuiltModule, nativeModuleTarget } from '../../src/core/release-target.js';

describe('nativeModuleTarget', () => {
  it("reads the architecture of the i2c-bus this machine built for the agent (node-gyp's build/Release)", () => {
    const pkg = createRequire(path.resolve(import.meta.dirname, '../../../device-agent/package.json')).resolve(
      'i2c-bus/package.json',
    );
    const t = nativeModuleTarget(readFileSync(path.join(path.dirname(pkg), 'build/Release/i2c.node')));
    expect(t.arch).toBe(process.arch);
    // NAN's static registration exports no versioned symbol: the ABI is not in the file's symbols.
    expect(t.nodeAbi).toBeUndefined();
  });

  it('reads the ABI from a module that exports node_register_module_v<ABI>', () => {
    const b = Buffer.concat([Buffer.alloc(64), Buffer.from('\0node_register_module_v137\0')]);
    expect(nativeModuleTarget(b).nodeAbi).toBe(137);
  });

  it.each([
    ['little-endian aarch64', [2, 1], 0xb7, 'arm64'],
    ['little-endian x86-64', [2, 1], 0x3e, 'x64'],
    ['32-bit ARM', [1, 1], 0x28, 'arm'],
    ['big-endian s390x', [2, 2], 0x16, 's390x'],
  ] as const)('%s', (_, [cls, data], machine, arch) => {
    const b = Buffer.alloc(64);
    Buffer.from([0x7f, 0x45, 0x4c, 0x46, cls, data]).copy(b);
    if (data === 2) b.writeUInt16BE(machine, 18);
    else b.writeUInt16LE(machine, 18);
    expect(nativeModuleTarget(b)).toEqual({ arch, machine, nodeAbi: undefined });
  });

  it.each([
    ['a Mach-O file', Buffer.from([0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])],
    ['a short file', Buffer.from([0x7f, 0x45, 0x4c, 0x46])],
    ['nothing', Buffer.alloc(0)],
  ])('%s: nothing known', (_, bytes) => {
    expect(nativeModuleTarget(bytes)).toEqual({ arch: undefined, machine: undefined, nodeAbi: undefined });
  });
});

describe('isInstallBuiltModule', () => {
  it.each([
    ['node_modules/better-sqlite3/build/Release/better_sqlite3.node', true],
    ['node_modules/epoll/build/Release/epoll.node', true],
    ['node_modules/epoll/build/Release/obj.target/epoll.node', false],
    ['node_modules/aws-crt/dist/bin/linux-x64-glibc/aws-crt-nodejs.node', false],
    ['node_modules/better-sqlite3/prebuilds/linux-arm64.node', false],
    ['node_modules/better-sqlite3/build/Release/better_sqlite3.node.d', false],
  ])('%s: %s', (file, expected) => {
    expect(isInstallBuiltModule(file)).toBe(expected);
  });
});
