/**
 * MD2 (RFC 1319), for IoT SQL's `md2()`. Node's OpenSSL 3 ships MD2 in no provider, so it is
 * written here from the RFC's description: pad to a multiple of 16 bytes, append the 16-byte
 * checksum, then run the 18-round compression over a 48-byte state.
 */

/** RFC 1319 §3.2: the permutation of 0..255 "constructed from the digits of pi". */
const PI_SUBST = new Uint8Array([
  41, 46, 67, 201, 162, 216, 124, 1, 61, 54, 84, 161, 236, 240, 6, 19, 98, 167, 5, 243, 192, 199, 115, 140, 152, 147,
  43, 217, 188, 76, 130, 202, 30, 155, 87, 60, 253, 212, 224, 22, 103, 66, 111, 24, 138, 23, 229, 18, 190, 78, 196, 214,
  218, 158, 222, 73, 160, 251, 245, 142, 187, 47, 238, 122, 169, 104, 121, 145, 21, 178, 7, 63, 148, 194, 16, 137, 11,
  34, 95, 33, 128, 127, 93, 154, 90, 144, 50, 39, 53, 62, 204, 231, 191, 247, 151, 3, 255, 25, 48, 179, 72, 165, 181,
  209, 215, 94, 146, 42, 172, 86, 170, 198, 79, 184, 56, 210, 150, 164, 125, 182, 118, 252, 107, 226, 156, 116, 4, 241,
  69, 157, 112, 89, 100, 113, 135, 32, 134, 91, 207, 101, 230, 45, 168, 2, 27, 96, 37, 173, 174, 176, 185, 246, 28, 70,
  97, 105, 52, 64, 126, 15, 85, 71, 163, 35, 221, 81, 175, 58, 195, 92, 249, 206, 186, 197, 234, 38, 44, 83, 13, 110,
  133, 40, 132, 9, 211, 223, 205, 244, 65, 129, 77, 82, 106, 220, 55, 200, 108, 193, 171, 250, 36, 225, 123, 8, 12, 189,
  177, 74, 120, 136, 149, 139, 227, 99, 232, 109, 233, 203, 213, 254, 59, 0, 29, 57, 242, 239, 183, 14, 102, 88, 208,
  228, 166, 119, 114, 248, 235, 117, 75, 10, 49, 68, 80, 180, 143, 237, 31, 26, 219, 153, 141, 51, 159, 17, 131, 20,
]);

/** The MD2 digest of `data` (16 bytes). */
export function md2(data: Uint8Array): Uint8Array {
  // §3.1: always pad, with i bytes of value i (1..16), to a multiple of 16.
  const padLen = 16 - (data.length % 16);
  const padded = new Uint8Array(data.length + padLen + 16);
  padded.set(data);
  padded.fill(padLen, data.length, data.length + padLen);
  const blocks = (data.length + padLen) / 16;

  // §3.2: the checksum block, appended after the padding.
  const checksum = new Uint8Array(16);
  let l = 0;
  for (let i = 0; i < blocks; i++) {
    for (let j = 0; j < 16; j++) {
      const c = padded[i * 16 + j] as number;
      checksum[j] = (checksum[j] as number) ^ (PI_SUBST[c ^ l] as number);
      l = checksum[j] as number;
    }
  }
  padded.set(checksum, data.length + padLen);

  // §3.3–3.4: the 48-byte buffer X, 18 rounds per block.
  const x = new Uint8Array(48);
  for (let i = 0; i < blocks + 1; i++) {
    for (let j = 0; j < 16; j++) {
      const b = padded[i * 16 + j] as number;
      x[16 + j] = b;
      x[32 + j] = b ^ (x[j] as number);
    }
    let t = 0;
    for (let round = 0; round < 18; round++) {
      for (let k = 0; k < 48; k++) {
        t = (x[k] as number) ^ (PI_SUBST[t] as number);
        x[k] = t;
      }
      t = (t + round) & 0xff;
    }
  }
  return x.slice(0, 16);
}
