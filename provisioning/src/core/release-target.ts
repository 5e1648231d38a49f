import { RELEASE_ARCHS, type ReleaseTarget } from '@pifleet/protocol';

/**
 * What a native module (`.node`) was built for, read from its own bytes: the CPU from the ELF
 * header's `e_machine`, the Node ABI from the `node_register_module_v<ABI>` symbol a module
 * registered with `NODE_MODULE_INIT` exports. The agent's node-gyp modules today (epoll, i2c-bus,
 * NAN's static registration) export no such symbol, so their ABI is not read here (it sits in a
 * relocated data structure); better-sqlite3 13 ships Node-API prebuilds for every platform and
 * loads the right one at run time (any ABI).
 */
export interface NativeModuleTarget {
  /** `process.arch` spelling, or undefined for a file that is not ELF or a machine we do not map. */
  readonly arch: ReleaseTarget['arch'] | undefined;
  /** The raw `e_machine` (for the error message), undefined when not ELF. */
  readonly machine: number | undefined;
  readonly nodeAbi: number | undefined;
}

/** ELF `e_machine` values (System V ABI, the processor supplements) → Node's `process.arch`. */
const ELF_MACHINES: Readonly<Record<number, ReleaseTarget['arch']>> = {
  3: 'ia32',
  8: 'mips',
  20: 'ppc',
  21: 'ppc64',
  22: 's390x',
  40: 'arm',
  62: 'x64',
  183: 'arm64',
  243: 'riscv64',
  258: 'loong64',
};

const ABI_SYMBOL = Buffer.from('node_register_module_v');

/** Reads a `.node` file's bytes (the whole file: the ABI symbol sits in its dynamic symbol table). */
export function nativeModuleTarget(bytes: Uint8Array): NativeModuleTarget {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const elf = buf.length >= 20 && buf[0] === 0x7f && buf.toString('latin1', 1, 4) === 'ELF';
  // EI_DATA (byte 5): 1 little-endian, 2 big-endian; e_machine is the half-word at offset 18.
  const machine = elf ? (buf[5] === 2 ? buf.readUInt16BE(18) : buf.readUInt16LE(18)) : undefined;
  const arch = machine === undefined ? undefined : ELF_MACHINES[machine];
  let nodeAbi: number | undefined;
  const at = buf.indexOf(ABI_SYMBOL);
  if (at >= 0) {
    const digits = /^\d{1,4}/.exec(buf.toString('latin1', at + ABI_SYMBOL.length, at + ABI_SYMBOL.length + 4));
    if (digits) nodeAbi = Number(digits[0]);
  }
  return { arch: arch && (RELEASE_ARCHS as readonly string[]).includes(arch) ? arch : undefined, machine, nodeAbi };
}

/**
 * Whether a `.node` file is the one built for this install: node-gyp (and prebuild-install) put
 * it in `build/Release/`. Packages that ship binaries for every platform and choose one at run
 * time (aws-crt's `dist/bin/<platform>-<arch>/`, `prebuilds/<platform>-<arch>/`) say nothing about
 * what the deploy directory was built for.
 */
export function isInstallBuiltModule(relativePath: string): boolean {
  const parts = relativePath.split(/[\\/]/);
  const n = parts.length;
  return n >= 3 && parts[n - 1]?.endsWith('.node') === true && parts[n - 2] === 'Release' && parts[n - 3] === 'build';
}
