/**
 * The protobuf wire bytes of the CheckResponses zpk sends, written directly. protobuf-es's
 * reflective toBinary took ~30 µs for an allow (five identity headers) on these machines, a fifth
 * of a whole Check; this writer takes a few. It writes only the fields zpk sets, with the field
 * numbers of envoy/service/auth/v3/external_auth.proto, envoy/config/core/v3/base.proto,
 * envoy/type/v3/http_status.proto and google/rpc/status.proto; test/unit/check-response-encoder
 * decodes its output with the generated schema, and the Go client decodes it with go-control-plane.
 */

/** HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD */
const OVERWRITE_IF_EXISTS_OR_ADD = 2;

export interface OkFields {
  /** google.rpc.Status.code (0). */
  code: number;
  /** OkHttpResponse.headers, each OVERWRITE_IF_EXISTS_OR_ADD. */
  headers: [string, string][];
  /** OkHttpResponse.headers_to_remove */
  remove: string[];
  /** OkHttpResponse.response_headers_to_add, each OVERWRITE_IF_EXISTS_OR_ADD. */
  client: [string, string][];
}

export interface DeniedFields {
  code: number;
  message: string;
  httpStatus: number;
  headers: [string, string][];
  body: string;
}

class Writer {
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

function status(w: Writer, code: number, message: string): void {
  // CheckResponse.status = 1: google.rpc.Status { code = 1; message = 2 }
  w.message(1, () => {
    if (code !== 0) {
      w.tag(1, 0);
      w.varint(code);
    }
    if (message !== "") w.string(2, message);
  });
}

function headerOption(w: Writer, field: number, key: string, value: string): void {
  // HeaderValueOption { header = 1: HeaderValue { key = 1; value = 2 }; append_action = 3 }
  w.message(field, () => {
    w.message(1, () => {
      w.string(1, key);
      if (value !== "") w.string(2, value);
    });
    w.tag(3, 0);
    w.varint(OVERWRITE_IF_EXISTS_OR_ADD);
  });
}

/** CheckResponse { status; ok_response = 3: OkHttpResponse { headers = 2; headers_to_remove = 5; response_headers_to_add = 6 } } */
export function encodeOk(f: OkFields): Buffer {
  const w = new Writer();
  status(w, f.code, "");
  w.message(3, () => {
    for (const [k, v] of f.headers) headerOption(w, 2, k, v);
    for (const name of f.remove) w.string(5, name);
    for (const [k, v] of f.client) headerOption(w, 6, k, v);
  });
  return w.done();
}

/** CheckResponse { status; denied_response = 2: DeniedHttpResponse { status = 1: HttpStatus { code = 1 }; headers = 2; body = 3 } } */
export function encodeDenied(f: DeniedFields): Buffer {
  const w = new Writer();
  status(w, f.code, f.message);
  w.message(2, () => {
    w.message(1, () => {
      w.tag(1, 0);
      w.varint(f.httpStatus);
    });
    for (const [k, v] of f.headers) headerOption(w, 2, k, v);
    if (f.body !== "") w.string(3, f.body);
  });
  return w.done();
}
