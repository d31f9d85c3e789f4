import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ApiKeyService } from "../../../../gen/apikeys/v1/api_key_service_pb.js";

/**
 * The same ApiKeyService every other client uses, over the Connect protocol, with the session
 * cookie as the credential (sent by the browser; the page never sees or stores a key).
 */
export const api = createClient(
  ApiKeyService,
  createConnectTransport({ baseUrl: location.origin, useBinaryFormat: true, fetch: (input, init) => fetch(input, { ...init, credentials: "same-origin" }) }),
);

export interface SessionInfo {
  kind: "key" | "portal";
  customer_id: string;
  key: { id: string; prefix: string; name: string } | null;
  scopes: string[];
  instance_id: string | null;
  return_url: string | null;
  expires_at: string;
}

/** The dashboard's own endpoints (sign-in, sign-out, who am I): POST, same origin, JSON. */
export async function dashboardPost(path: string, body?: unknown): Promise<Response> {
  return fetch(`/dashboard/api/${path}`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: body === undefined ? "{}" : JSON.stringify(body),
  });
}

export async function errorText(res: Response): Promise<string> {
  try {
    const j = (await res.json()) as { error?: { message?: string } };
    return j.error?.message ?? `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

export const messageOf = (err: unknown) => (err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err));

/** True when a call failed because the session is gone (signed out, key revoked, expired). */
export const isSessionGone = (err: unknown) => err instanceof ConnectError && err.code === 16;

/** What the session may do, from its scopes (empty = unrestricted); the server enforces it anyway. */
export function abilities(s: SessionInfo) {
  const has = (scope: string) => s.scopes.length === 0 || s.scopes.includes(scope);
  return { read: has("api_keys:read"), write: has("api_keys:write"), audit: has("audit:read") };
}
