import { it } from "vitest";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { startServer } from "../helpers/server.js";
it("probe", async () => {
  let t = Date.now();
  const s = await startServer();
  console.log("start", Date.now() - t); t = Date.now();
  const k = await issueAsInternal(s, uuid());
  await rest(s, "GET", "/v1/api-keys", { key: k.secret });
  console.log("reqs", Date.now() - t); t = Date.now();
  console.log(await s.stop(), "stop", Date.now() - t);
});
