import { gzipSync } from 'node:zlib';

/**
 * Hand-built tar archives for the entries no well-behaved tar writer produces (node-tar strips an
 * absolute path and refuses `..` when it creates an archive): ustar headers written field by field.
 */
export interface RawEntry {
  readonly path: string;
  /** '0' file, '1' hard link, '2' symbolic link, '3' character device, '4' block device, '5' directory, '6' FIFO. */
  readonly type?: '0' | '1' | '2' | '3' | '4' | '5' | '6';
  readonly body?: string;
  readonly linkpath?: string;
  readonly mode?: number;
}

function field(header: Buffer, offset: number, length: number, value: string): void {
  header.write(value.slice(0, length), offset, length, 'utf8');
}

function octal(header: Buffer, offset: number, length: number, value: number): void {
  field(header, offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
}

export function rawTar(entries: readonly RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? '0';
    const body = Buffer.from(type === '0' ? (e.body ?? '') : '');
    const header = Buffer.alloc(512);
    field(header, 0, 100, e.path);
    octal(header, 100, 8, e.mode ?? (type === '5' ? 0o755 : 0o644));
    octal(header, 108, 8, 1000);
    octal(header, 116, 8, 1000);
    octal(header, 124, 12, body.byteLength);
    octal(header, 136, 12, 1_700_000_000);
    header.fill(' ', 148, 156);
    field(header, 156, 1, type);
    field(header, 157, 100, e.linkpath ?? '');
    field(header, 257, 6, 'ustar\0');
    field(header, 263, 2, '00');
    let sum = 0;
    for (const byte of header) sum += byte;
    field(header, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    blocks.push(header, body, Buffer.alloc((512 - (body.byteLength % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** A launcher and package.json, so an archive is otherwise a runnable agent directory. */
export const AGENT_ENTRIES: readonly RawEntry[] = [
  { path: 'bin/', type: '5' },
  { path: 'bin/pifleet-agent.js', body: 'process.exit(0);\n' },
  { path: 'package.json', body: '{"type":"module"}' },
];
