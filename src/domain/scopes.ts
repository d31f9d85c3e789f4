/**
 * Scopes (SPEC §2): an empty list means unrestricted. These three guard key management; other
 * scopes are the platform's own and only checked by `Authenticate`'s `required_scopes`.
 */
export const SCOPE = {
  keysRead: "api_keys:read",
  keysWrite: "api_keys:write",
  auditRead: "audit:read",
} as const;

/** True when a key with `granted` scopes holds every scope in `required`. */
export function grants(granted: readonly string[], required: readonly string[]): boolean {
  if (granted.length === 0) return true;
  return required.every((s) => granted.includes(s));
}

/** Scopes of `requested` that `granted` does not cover: non-empty means escalation. */
export function escalation(granted: readonly string[], requested: readonly string[]): string[] {
  if (granted.length === 0) return [];
  if (requested.length === 0) return ["(unrestricted)"];
  return requested.filter((s) => !granted.includes(s));
}
