/**
 * A protobuf wire writer for the few responses zpk encodes by hand on hot paths (Envoy's
 * CheckResponse, AuthenticateResponse): protobuf-es's reflective toBinary walks the descriptor
 * and grows its buffers per field, which was a visible share of a call that does little else.
 * Callers write fields in field-number order, as toBinary does, so the bytes are the same; each
 * encoder's unit test decodes them with the generated schema and compares with toBinary.
 */
export class ProtobufWriter {
  private buf = Buffer.allocUnsafe(512);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  varint(v: number): void {
    this.ensure(10);
    while (v > 0x7f) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }

  tag(field: number, wireType: 0 | 2): void {
    this.varint((field << 3) | wireType);
  }

  /** A varint field (uint32, bool, enum), left out when 0 as proto3 does. */
  uint(field: number, v: number): void {
    if (v === 0) return;
    this.tag(field, 0);
    this.varint(v);
  }

  /** A length-delimited field whose bytes are already encoded (a cached sub-message). */
  bytes(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.varint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  string(field: number, s: string): void {
    // Header names and values are nearly always ASCII: copied in JS, without a call into C++.
    let ascii = s.length < 256;
    for (let i = 0; ascii && i < s.length; i++) ascii = s.charCodeAt(i) < 0x80;
    if (ascii) {
      this.tag(field, 2);
      this.varint(s.length);
      this.ensure(s.length);
      for (let i = 0; i < s.length; i++) this.buf[this.pos++] = s.charCodeAt(i);
      return;
    }
    const n = Buffer.byteLength(s);
    this.tag(field, 2);
    this.varint(n);
    this.ensure(n);
    this.buf.write(s, this.pos, "utf8");
    this.pos += n;
  }

  /** A length-delimited sub-message written by `fn` (its length is patched in afterwards). */
  message(field: number, fn: () => void): void {
    this.tag(field, 2);
    // Sub-messages here are short: reserve 2 bytes for the length (up to 16383), move if longer.
    this.ensure(2);
    const at = this.pos;
    this.pos += 2;
    fn();
    const len = this.pos - at - 2;
    if (len < 128) {
      this.buf[at] = len;
      this.buf.copy(this.buf, at + 1, at + 2, this.pos);
      this.pos -= 1;
    } else if (len < 16384) {
      this.buf[at] = (len & 0x7f) | 0x80;
      this.buf[at + 1] = len >> 7;
    } else {
      const body = Buffer.from(this.buf.subarray(at + 2, this.pos));
      this.pos = at;
      this.varint(len);
      this.ensure(len);
      body.copy(this.buf, this.pos);
      this.pos += len;
    }
  }

  done(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}
