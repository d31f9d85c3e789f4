"""zpk's internal gRPC surface driven from Python (grpcio), the way an internal service would.

It shares no code with the server, only proto/ (through buf generate into gen/). Flow: issue a key
for a fresh customer with the internal credential, authenticate it, check a bad-checksum (MALFORMED)
and a missing-scope (MISSING_SCOPE) denial, charge the customer's bucket until it is refused, revoke
the key and see REVOKED. Each step is printed; any mismatch exits 1.

    python3 test/clients/python/client.py --addr 127.0.0.1:9090 --token "$INTERNAL_TOKEN"
"""

import argparse
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402

from apikeys.v1 import api_key_service_pb2 as pb  # noqa: E402
from apikeys.v1 import api_key_service_pb2_grpc as pb_grpc  # noqa: E402


class Mismatch(Exception):
    pass


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise Mismatch(message)


def ok(step: str, detail: str) -> None:
    print(f"ok   {step:<38} {detail}", flush=True)


def reason(value: int) -> str:
    return pb.DenialReason.Name(value)


def run(addr: str, token: str, expect_limit: int, timeout: float) -> None:
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(addr) as channel:
        stub = pb_grpc.ApiKeyServiceStub(channel)
        print(f"python client: gRPC to {addr} (grpcio {grpc.__version__})", flush=True)

        def call(method, request):
            try:
                return method(request, metadata=metadata, timeout=timeout)
            except grpc.RpcError as e:
                raise Mismatch(f"{type(request).__name__}: {e.code().name}: {e.details()}") from None

        # 1. Issue a key for a fresh customer.
        customer_id = str(uuid.uuid4())
        issued = call(stub.IssueKey, pb.IssueKeyRequest(customer_id=customer_id, name="python client", scopes=["read"]))
        key, secret = issued.key, issued.secret
        expect(key.customer_id == customer_id, f"IssueKey: customer_id {key.customer_id!r}, want {customer_id!r}")
        expect(secret.startswith(key.prefix) and len(secret) > len(key.prefix),
               f"IssueKey: secret does not start with prefix {key.prefix!r}")
        expect(list(key.scopes) == ["read"], f"IssueKey: scopes {list(key.scopes)}, want ['read']")
        ok("IssueKey", f"customer={customer_id} id={key.id} prefix={key.prefix} scopes={list(key.scopes)}")

        # 2. Authenticate it.
        res = call(stub.Authenticate, pb.AuthenticateRequest(key=secret, client_ip="127.0.0.1", user_agent="zpk-python-client"))
        p = res.principal
        expect(res.valid, f"Authenticate: valid=false ({reason(res.denial_reason)}), want a valid key")
        expect(res.denial_reason == pb.DENIAL_REASON_UNSPECIFIED, f"Authenticate: denial_reason {reason(res.denial_reason)} on a valid key")
        expect(res.HasField("principal"), "Authenticate: no principal on a valid key")
        expect(p.customer_id == customer_id, f"Authenticate: principal.customer_id {p.customer_id!r}, want {customer_id!r}")
        expect(p.prefix == key.prefix, f"Authenticate: principal.prefix {p.prefix!r}, want {key.prefix!r}")
        expect(p.key_id == key.id, f"Authenticate: principal.key_id {p.key_id!r}, want {key.id!r}")
        expect(list(p.scopes) == ["read"], f"Authenticate: principal.scopes {list(p.scopes)}, want ['read']")
        ok("Authenticate", f"valid=true key_id={p.key_id} customer={p.customer_id} prefix={p.prefix} env={p.environment}")

        # 3. A bad checksum: the same key with its last character changed (to another base62 char).
        tampered = secret[:-1] + ("B" if secret[-1] == "A" else "A")
        res = call(stub.Authenticate, pb.AuthenticateRequest(key=tampered))
        expect(not res.valid and res.denial_reason == pb.DENIAL_REASON_MALFORMED,
               f"Authenticate(bad checksum): valid={res.valid} reason={reason(res.denial_reason)}, want DENIAL_REASON_MALFORMED")
        expect(not res.HasField("principal"), "Authenticate(bad checksum): a principal on a denial")
        ok("Authenticate(bad checksum)", f"valid=false reason={reason(res.denial_reason)}")

        # 4. A scope the key was not granted.
        res = call(stub.Authenticate, pb.AuthenticateRequest(key=secret, required_scopes=["write"]))
        expect(not res.valid and res.denial_reason == pb.DENIAL_REASON_MISSING_SCOPE,
               f"Authenticate(required_scopes=[write]): valid={res.valid} reason={reason(res.denial_reason)}, want DENIAL_REASON_MISSING_SCOPE")
        ok("Authenticate(required_scopes=[write])", f"valid=false reason={reason(res.denial_reason)}")

        # 5. Charge the customer's bucket one token at a time until it is refused.
        allowed, refused = 0, None
        start = time.monotonic()
        for i in range(expect_limit + 10):
            r = call(stub.ChargeRateLimit, pb.ChargeRateLimitRequest(customer_id=customer_id, cost=1))
            if not r.allowed:
                refused = r
                break
            allowed += 1
            expect(r.limit == expect_limit, f"ChargeRateLimit #{i + 1}: limit {r.limit}, want {expect_limit}")
            expect(r.retry_after_seconds == 0, f"ChargeRateLimit #{i + 1}: retry_after_seconds {r.retry_after_seconds} on an allowed charge")
        elapsed = time.monotonic() - start
        expect(refused is not None, f"ChargeRateLimit: never refused after {allowed} charges")
        expect(allowed == expect_limit, f"ChargeRateLimit: {allowed} charges allowed before the refusal, want {expect_limit} (took {elapsed:.3f}s)")
        expect(refused.retry_after_seconds >= 1, f"ChargeRateLimit refused: retry_after_seconds {refused.retry_after_seconds}, want >= 1")
        expect(refused.remaining == 0, f"ChargeRateLimit refused: remaining {refused.remaining}, want 0")
        expect(refused.limit == expect_limit, f"ChargeRateLimit refused: limit {refused.limit}, want {expect_limit}")
        ok("ChargeRateLimit", f"{allowed} allowed, then allowed=false limit={refused.limit} remaining={refused.remaining} "
           f"retry_after_seconds={refused.retry_after_seconds} reset_at={refused.reset_at.ToJsonString()} ({elapsed * 1000:.0f}ms)")

        # 6. Revoke the key, then see it denied REVOKED.
        revoked = call(stub.RevokeKey, pb.RevokeKeyRequest(id=key.id, customer_id=customer_id))
        expect(revoked.key.HasField("revoked_at") and not revoked.key.is_active,
               f"RevokeKey: revoked_at set={revoked.key.HasField('revoked_at')} is_active={revoked.key.is_active}")
        ok("RevokeKey", f"id={revoked.key.id} revoked_at={revoked.key.revoked_at.ToJsonString()}")

        res = call(stub.Authenticate, pb.AuthenticateRequest(key=secret))
        expect(not res.valid and res.denial_reason == pb.DENIAL_REASON_REVOKED,
               f"Authenticate(revoked): valid={res.valid} reason={reason(res.denial_reason)}, want DENIAL_REASON_REVOKED")
        ok("Authenticate(revoked)", f"valid=false reason={reason(res.denial_reason)}")

    print("python client: all checks passed", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--addr", default=os.environ.get("ZPK_GRPC_ADDR", "127.0.0.1:9090"),
                        help="host:port of zpk's gRPC endpoint (env ZPK_GRPC_ADDR)")
    parser.add_argument("--token", default=os.environ.get("INTERNAL_TOKEN", ""),
                        help="the internal credential (env INTERNAL_TOKEN)")
    parser.add_argument("--expect-limit", type=int, default=60, help="the bucket capacity the server is configured with")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of each call, in seconds")
    args = parser.parse_args()
    if not args.token:
        print("FAIL no internal token: pass --token or set INTERNAL_TOKEN", file=sys.stderr)
        return 1
    try:
        run(args.addr, args.token, args.expect_limit, args.timeout)
    except Mismatch as e:
        print(f"FAIL {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"FAIL {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
