/**
 * One serving status for both ports' gRPC health services (`grpc.health.v1`): SERVING while the
 * process accepts work, NOT_SERVING once it drains, so load balancers stop sending first.
 */
export class HealthState {
  private serving = true;
  private readonly listeners = new Set<(serving: boolean) => void>();

  get isServing(): boolean {
    return this.serving;
  }

  setServing(serving: boolean): void {
    if (serving === this.serving) return;
    this.serving = serving;
    for (const l of this.listeners) l(serving);
  }

  /** Calls `fn` on every change; returns the unsubscribe function. */
  watch(fn: (serving: boolean) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/** The service names health checks answer for ("" is the whole server). */
export const HEALTH_SERVICES = ["", "apikeys.v1.ApiKeyService"];
