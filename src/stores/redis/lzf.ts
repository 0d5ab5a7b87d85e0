import { RdbError } from './rdb-reader';

/**
 * LZF decompression (liblzf's format, which Redis uses for long strings in an
 * RDB with `rdbcompression yes`). lifeboat only decompresses keys, which it
 * needs as text for RESTORE; values pass through in their stored form.
 */
export function lzfDecompress(input: Buffer, outLen: number): Buffer {
  const out = Buffer.allocUnsafe(outLen);
  let ip = 0;
  let op = 0;
  while (ip < input.length) {
    let ctrl = input[ip++]!;
    if (ctrl < 32) {
      // A literal run of ctrl + 1 bytes.
      ctrl++;
      if (op + ctrl > outLen || ip + ctrl > input.length) throw new RdbError('an LZF-compressed string is damaged (literal run past its end)');
      input.copy(out, op, ip, ip + ctrl);
      op += ctrl;
      ip += ctrl;
    } else {
      // A back reference: length in the top 3 bits (7 = one more length byte), offset in the rest.
      let len = ctrl >> 5;
      let ref = op - ((ctrl & 0x1f) << 8) - 1;
      if (len === 7) {
        if (ip >= input.length) throw new RdbError('an LZF-compressed string is damaged (cut in a back reference)');
        len += input[ip++]!;
      }
      if (ip >= input.length) throw new RdbError('an LZF-compressed string is damaged (cut in a back reference)');
      ref -= input[ip++]!;
      len += 2;
      if (ref < 0 || op + len > outLen) throw new RdbError('an LZF-compressed string is damaged (back reference out of range)');
      // Byte by byte: the source may overlap what is being written (runs).
      for (let k = 0; k < len; k++) out[op++] = out[ref++]!;
    }
  }
  if (op !== outLen) throw new RdbError(`an LZF-compressed string is damaged (${op} bytes instead of ${outLen})`);
  return out;
}
