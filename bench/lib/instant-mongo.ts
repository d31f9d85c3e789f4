/**
 * A MongoDB wire-protocol responder that costs next to nothing, for `npm run bench -- mongo-driver`
 * (bench/mongo-driver.ts): it answers the driver's handshake (OP_QUERY `isMaster` or OP_MSG
 * `hello`) as a standalone server, every `find` with the same pre-encoded batch of key documents
 * (INSTANT_MONGO_BATCH_HEX: a BSON `{cursor: {id: 0, ns, firstBatch}, ok: 1}`), and any other
 * command with `{ok: 1}`. No storage, no query: what the official driver costs a command when the
 * database costs nothing, which a real MongoDB cannot show (it always costs something) and
 * FerretDB here hides behind its own CPU. Run as its own process (`node --import tsx
 * bench/lib/instant-mongo.ts`), so its CPU is not the measured client's; prints
 * `instant-mongo ready <port>` once it listens on 127.0.0.1 (port 0: any free one).
 */
import { createServer } from "node:net";
import { BSON } from "mongodb";

const OP_REPLY = 1;
const OP_QUERY = 2004;
const OP_MSG = 2013;

const batch = Buffer.from(process.env.INSTANT_MONGO_BATCH_HEX ?? "", "hex");
let connections = 0;

function answer(command: Record<string, unknown>): Uint8Array {
  const name = Object.keys(command)[0]!.toLowerCase();
  if (name === "find") return batch;
  if (name === "ismaster" || name === "hello") {
    return BSON.serialize({
      ismaster: true, isWritablePrimary: true, helloOk: true, maxWireVersion: 21, minWireVersion: 0,
      maxBsonObjectSize: 16 * 1024 * 1024, maxMessageSizeBytes: 48_000_000, maxWriteBatchSize: 100_000,
      localTime: new Date(), logicalSessionTimeoutMinutes: 30, connectionId: ++connections, ok: 1,
    });
  }
  return BSON.serialize({ ok: 1 });
}

/** One request message → its reply (the header's responseTo is the request's id). */
function reply(message: Buffer): Buffer {
  const requestId = message.readInt32LE(4);
  const opCode = message.readInt32LE(12);
  let body: Uint8Array;
  let head: Buffer;
  if (opCode === OP_QUERY) {
    // flags (4), fullCollectionName (cstring), numberToSkip (4), numberToReturn (4), query.
    let at = 20;
    while (message[at] !== 0) at++;
    body = answer(BSON.deserialize(message.subarray(at + 1 + 8)));
    head = Buffer.alloc(36);
    head.writeInt32LE(OP_REPLY, 12);
    head.writeInt32LE(8, 16); // AwaitCapable
    head.writeInt32LE(1, 32); // numberReturned; cursorID and startingFrom stay 0
  } else if (opCode === OP_MSG) {
    // flagBits (4), then the kind-0 section: 1 byte, the command document.
    body = answer(BSON.deserialize(message.subarray(21, 21 + message.readInt32LE(21))));
    head = Buffer.alloc(21);
    head.writeInt32LE(OP_MSG, 12);
  } else {
    throw new Error(`instant-mongo: opCode ${opCode} is not answered`);
  }
  head.writeInt32LE(head.length + body.length, 0);
  head.writeInt32LE(requestId, 8);
  return Buffer.concat([head, body]);
}

const server = createServer((socket) => {
  let pending: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= pending.readInt32LE(0)) {
      const length = pending.readInt32LE(0);
      socket.write(reply(pending.subarray(0, length)));
      pending = pending.subarray(length);
    }
  });
  socket.on("error", () => socket.destroy());
});
server.listen(Number(process.env.INSTANT_MONGO_PORT ?? "0"), "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`instant-mongo ready ${typeof address === "object" && address ? address.port : 0}\n`);
});
process.on("SIGTERM", () => process.exit(0));
