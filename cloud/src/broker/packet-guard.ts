import { LIMITS } from '@pifleet/protocol';

/**
 * Refusing an oversized MQTT packet from its fixed header, before any of it is buffered.
 *
 * aedes hands every byte of a connection to mqtt-packet's parser, which has no size limit: it
 * keeps what arrives until the packet its fixed header declared is complete (a PUBLISH declaring
 * 200 MB was read for 32 MB before anything happened). This scanner follows the packet framing of
 * the same bytes (one fixed-header byte, the remaining length as a variable byte integer, then the
 * rest skipped by counting) and reports a packet too large as soon as its length is decoded,
 * so the broker closes the connection after a handful of bytes.
 */

/**
 * The largest remaining length (the packet after its fixed header) the broker accepts: a 128 KB
 * payload (IoT Core's message limit) with the longest topic (2 + 256 bytes) and a packet id, or a
 * CONNECT whose 128 KB will comes with a client id, a will topic, a username and a password, with
 * room to spare. A larger packet cannot carry an acceptable message; smaller ones over the payload
 * limit are still refused by the publish authorization, which sees the payload.
 */
export const MAX_PACKET_REMAINING_LENGTH = LIMITS.maxMessageBytes + 4 * 1024;

export type PacketScan =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'too-large'; readonly declaredBytes: number; readonly limitBytes: number }
  | { readonly ok: false; readonly reason: 'malformed' };

export interface PacketSizeGuard {
  /** Follows the connection's next bytes; a refusal is final (later calls repeat it). */
  scan(chunk: Uint8Array): PacketScan;
}

const OK: PacketScan = Object.freeze({ ok: true });

export function createPacketSizeGuard(limitBytes: number = MAX_PACKET_REMAINING_LENGTH): PacketSizeGuard {
  let phase: 'header' | 'length' | 'body' = 'header';
  /** The remaining length decoded so far (a lower bound while its bytes keep coming). */
  let length = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  /** Bytes of the current packet's body still to skip. */
  let toSkip = 0;
  let refused: PacketScan | undefined;

  return {
    scan(chunk) {
      if (refused) return refused;
      let i = 0;
      while (i < chunk.length) {
        if (phase === 'body') {
          const n = Math.min(toSkip, chunk.length - i);
          i += n;
          toSkip -= n;
          if (toSkip === 0) phase = 'header';
          continue;
        }
        if (phase === 'header') {
          // The packet type and flags: mqtt-packet judges those; only the length matters here.
          i++;
          phase = 'length';
          length = 0;
          multiplier = 1;
          lengthBytes = 0;
          continue;
        }
        const byte = chunk[i++] as number;
        length += (byte & 0x7f) * multiplier;
        lengthBytes++;
        // Later length bytes only add to it, so a partial length over the limit is already final.
        if (length > limitBytes) {
          refused = Object.freeze({ ok: false, reason: 'too-large', declaredBytes: length, limitBytes });
          return refused;
        }
        if (byte & 0x80) {
          // MQTT 3.1.1 section 2.2.3: at most four length bytes.
          if (lengthBytes === 4) {
            refused = Object.freeze({ ok: false, reason: 'malformed' });
            return refused;
          }
          multiplier *= 128;
          continue;
        }
        if (length === 0) {
          phase = 'header';
        } else {
          toSkip = length;
          phase = 'body';
        }
      }
      return OK;
    },
  };
}
