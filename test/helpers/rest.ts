import type { RunningServer } from "./server.js";

/** A REST response as a test sees it. */
export interface RestResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/**
 * `fetch` against the server's /v1 routes. `key` goes in `Authorization: Bearer`; pass
 * `headers` to send something else. The body is parsed as JSON when there is one.
 */
export async function rest<T = any>(
  server: Pick<RunningServer, "url">,
  method: string,
  path: string,
  opts: { key?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<RestResponse<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  let body: string | undefined = opts.rawBody;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers["content-type"] = "application/json";
  }
  const res = await fetch(`${server.url}${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** Issues a key for `customerId` with the internal credential; returns the key object + secret. */
export async function issueAsInternal(
  server: Pick<RunningServer, "url" | "internalToken">,
  customerId: string,
  fields: Record<string, unknown> = {},
) {
  const res = await rest(server, "POST", "/v1/api-keys", {
    key: server.internalToken,
    body: { name: "bootstrap", customer_id: customerId, ...fields },
  });
  if (res.status !== 201) throw new Error(`issue failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { id: string; secret: string; prefix: string; [k: string]: unknown };
}

export const uuid = () => crypto.randomUUID();
