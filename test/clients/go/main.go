// Command zpk-go-client drives zpk's internal gRPC surface from Go, the way a gateway or an
// internal service would: it shares no code with the server, only proto/ (through buf generate).
//
// Flow: issue a key for a fresh customer with the internal credential, authenticate it, check a
// bad-checksum (MALFORMED) and a missing-scope (MISSING_SCOPE) denial, charge the customer's bucket
// until it is refused, revoke the key and see REVOKED. Each step is printed; any mismatch exits 1.
//
//	go run . -addr 127.0.0.1:9090 -token "$INTERNAL_TOKEN"
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	apikeysv1 "zpk.local/clients/go/gen/apikeys/v1"
)

func main() {
	addr := flag.String("addr", envOr("ZPK_GRPC_ADDR", "127.0.0.1:9090"), "host:port of zpk's gRPC endpoint (env ZPK_GRPC_ADDR)")
	token := flag.String("token", os.Getenv("INTERNAL_TOKEN"), "the internal credential (env INTERNAL_TOKEN)")
	expectLimit := flag.Int("expect-limit", 60, "the bucket capacity the server is configured with")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of each call")
	flag.Parse()
	if *token == "" {
		fail("no internal token: pass -token or set INTERNAL_TOKEN")
	}

	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail("dial %s: %v", *addr, err)
	}
	defer conn.Close()
	client := apikeysv1.NewApiKeyServiceClient(conn)
	fmt.Printf("go client: gRPC to %s\n", *addr)

	// Every call carries the internal credential and its own deadline.
	call := func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token), cancel
	}

	// 1. Issue a key for a fresh customer.
	customerID := newUUID()
	ctx, cancel := call()
	issued, err := client.IssueKey(ctx, &apikeysv1.IssueKeyRequest{
		CustomerId: customerID,
		Name:       "go client",
		Scopes:     []string{"read"},
	})
	cancel()
	check(err, "IssueKey")
	key := issued.GetKey()
	secret := issued.GetSecret()
	expect(key.GetCustomerId() == customerID, "IssueKey: customer_id %q, want %q", key.GetCustomerId(), customerID)
	expect(secret != "" && len(secret) > len(key.GetPrefix()) && secret[:len(key.GetPrefix())] == key.GetPrefix(),
		"IssueKey: secret does not start with prefix %q", key.GetPrefix())
	expect(slices.Equal(key.GetScopes(), []string{"read"}), "IssueKey: scopes %v, want [read]", key.GetScopes())
	ok("IssueKey", "customer=%s id=%s prefix=%s scopes=%v", customerID, key.GetId(), key.GetPrefix(), key.GetScopes())

	// 2. Authenticate it.
	auth := func(req *apikeysv1.AuthenticateRequest) *apikeysv1.AuthenticateResponse {
		ctx, cancel := call()
		defer cancel()
		res, err := client.Authenticate(ctx, req)
		check(err, "Authenticate")
		return res
	}
	res := auth(&apikeysv1.AuthenticateRequest{Key: secret, ClientIp: "127.0.0.1", UserAgent: "zpk-go-client"})
	p := res.GetPrincipal()
	expect(res.GetValid(), "Authenticate: valid=false (%v), want a valid key", res.GetDenialReason())
	expect(res.GetDenialReason() == apikeysv1.DenialReason_DENIAL_REASON_UNSPECIFIED, "Authenticate: denial_reason %v on a valid key", res.GetDenialReason())
	expect(p.GetCustomerId() == customerID, "Authenticate: principal.customer_id %q, want %q", p.GetCustomerId(), customerID)
	expect(p.GetPrefix() == key.GetPrefix(), "Authenticate: principal.prefix %q, want %q", p.GetPrefix(), key.GetPrefix())
	expect(p.GetKeyId() == key.GetId(), "Authenticate: principal.key_id %q, want %q", p.GetKeyId(), key.GetId())
	expect(slices.Equal(p.GetScopes(), []string{"read"}), "Authenticate: principal.scopes %v, want [read]", p.GetScopes())
	ok("Authenticate", "valid=true key_id=%s customer=%s prefix=%s env=%s", p.GetKeyId(), p.GetCustomerId(), p.GetPrefix(), p.GetEnvironment())

	// 3. A bad checksum: the same key with its last character changed.
	tampered := secret[:len(secret)-1] + otherChar(secret[len(secret)-1])
	res = auth(&apikeysv1.AuthenticateRequest{Key: tampered})
	expect(!res.GetValid() && res.GetDenialReason() == apikeysv1.DenialReason_DENIAL_REASON_MALFORMED,
		"Authenticate(bad checksum): valid=%v reason=%v, want DENIAL_REASON_MALFORMED", res.GetValid(), res.GetDenialReason())
	expect(res.GetPrincipal() == nil, "Authenticate(bad checksum): a principal on a denial")
	ok("Authenticate(bad checksum)", "valid=false reason=%v", res.GetDenialReason())

	// 4. A scope the key was not granted.
	res = auth(&apikeysv1.AuthenticateRequest{Key: secret, RequiredScopes: []string{"write"}})
	expect(!res.GetValid() && res.GetDenialReason() == apikeysv1.DenialReason_DENIAL_REASON_MISSING_SCOPE,
		"Authenticate(required_scopes=[write]): valid=%v reason=%v, want DENIAL_REASON_MISSING_SCOPE", res.GetValid(), res.GetDenialReason())
	ok("Authenticate(required_scopes=[write])", "valid=false reason=%v", res.GetDenialReason())

	// 5. Charge the customer's bucket one token at a time until it is refused.
	allowed := 0
	var refused *apikeysv1.ChargeRateLimitResponse
	start := time.Now()
	for i := 0; i < *expectLimit+10 && refused == nil; i++ {
		ctx, cancel := call()
		r, err := client.ChargeRateLimit(ctx, &apikeysv1.ChargeRateLimitRequest{CustomerId: customerID, Cost: 1})
		cancel()
		check(err, "ChargeRateLimit")
		if r.GetAllowed() {
			allowed++
			expect(r.GetLimit() == uint32(*expectLimit), "ChargeRateLimit #%d: limit %d, want %d", i+1, r.GetLimit(), *expectLimit)
			expect(r.GetRetryAfterSeconds() == 0, "ChargeRateLimit #%d: retry_after_seconds %d on an allowed charge", i+1, r.GetRetryAfterSeconds())
		} else {
			refused = r
		}
	}
	elapsed := time.Since(start)
	expect(refused != nil, "ChargeRateLimit: never refused after %d charges", allowed)
	expect(allowed == *expectLimit, "ChargeRateLimit: %d charges allowed before the refusal, want %d (took %v)", allowed, *expectLimit, elapsed)
	expect(refused.GetRetryAfterSeconds() >= 1, "ChargeRateLimit refused: retry_after_seconds %d, want >= 1", refused.GetRetryAfterSeconds())
	expect(refused.GetRemaining() == 0, "ChargeRateLimit refused: remaining %d, want 0", refused.GetRemaining())
	expect(refused.GetLimit() == uint32(*expectLimit), "ChargeRateLimit refused: limit %d, want %d", refused.GetLimit(), *expectLimit)
	ok("ChargeRateLimit", "%d allowed, then allowed=false limit=%d remaining=%d retry_after_seconds=%d reset_at=%s (%v)",
		allowed, refused.GetLimit(), refused.GetRemaining(), refused.GetRetryAfterSeconds(),
		refused.GetResetAt().AsTime().Format(time.RFC3339), elapsed.Round(time.Millisecond))

	// 6. Revoke the key, then see it denied REVOKED.
	ctx, cancel = call()
	revoked, err := client.RevokeKey(ctx, &apikeysv1.RevokeKeyRequest{Id: key.GetId(), CustomerId: customerID})
	cancel()
	check(err, "RevokeKey")
	expect(revoked.GetKey().GetRevokedAt() != nil && !revoked.GetKey().GetIsActive(),
		"RevokeKey: revoked_at=%v is_active=%v", revoked.GetKey().GetRevokedAt(), revoked.GetKey().GetIsActive())
	ok("RevokeKey", "id=%s revoked_at=%s", revoked.GetKey().GetId(), revoked.GetKey().GetRevokedAt().AsTime().Format(time.RFC3339))

	res = auth(&apikeysv1.AuthenticateRequest{Key: secret})
	expect(!res.GetValid() && res.GetDenialReason() == apikeysv1.DenialReason_DENIAL_REASON_REVOKED,
		"Authenticate(revoked): valid=%v reason=%v, want DENIAL_REASON_REVOKED", res.GetValid(), res.GetDenialReason())
	ok("Authenticate(revoked)", "valid=false reason=%v", res.GetDenialReason())

	fmt.Println("go client: all checks passed")
}

func ok(step, format string, args ...any) {
	fmt.Printf("ok   %-38s %s\n", step, fmt.Sprintf(format, args...))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL %s\n", fmt.Sprintf(format, args...))
	os.Exit(1)
}

func expect(cond bool, format string, args ...any) {
	if !cond {
		fail(format, args...)
	}
}

func check(err error, rpc string) {
	if err != nil {
		s, _ := status.FromError(err)
		fail("%s: %s: %s", rpc, s.Code(), s.Message())
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		fail("uuid: %v", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// otherChar returns a base62 character different from c (the checksum alphabet), so the changed
// key keeps its shape and only the checksum is wrong.
func otherChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}
