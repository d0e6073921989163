package nexus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A thousand goroutines asking for a connection nobody fetched yet cause exactly one GET /v1/token, and all get
// its answer.
func TestThousandConcurrentCallersOnAColdEntryShareOneTokenFetch(t *testing.T) {
	f := newFakeNexus(t)
	release := make(chan struct{})
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		<-release // hold the one fetch until every caller is waiting
		writeJSON(w, 200, bearerToken("tok-shared", time.Now().Add(time.Hour)))
	}
	c := f.client(t)
	assertOneFetchFor1000(t, c, f, release, "tok-shared")
	if got := f.count("GET /v1/token/"); got != 1 {
		t.Fatalf("GET /v1/token calls = %d, want 1", got)
	}
}

// The same once the cached credential reached its refresh point: one fetch, not a thousand.
func TestThousandConcurrentCallersOnAnExpiredEntryShareOneTokenFetch(t *testing.T) {
	f := newFakeNexus(t)
	var now atomic.Value
	now.Store(time.Unix(1_700_000_000, 0))
	clock := func() time.Time { return now.Load().(time.Time) }
	release := make(chan struct{})
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			writeJSON(w, 200, bearerToken("tok-1", clock().Add(10*time.Minute)))
			return
		}
		<-release
		writeJSON(w, 200, bearerToken("tok-2", clock().Add(10*time.Minute)))
	}
	c := f.client(t, WithClock(clock), WithRefreshBefore(time.Minute))
	if cr, err := c.Credentials(context.Background(), "conn_1"); err != nil || cr.AccessToken != "tok-1" {
		t.Fatalf("first fetch: %v %v", cr, err)
	}
	// Still fresh 8 minutes later (expires in 2, refreshed 1 before): served from the cache.
	now.Store(clock().Add(8 * time.Minute))
	if cr, _ := c.Credentials(context.Background(), "conn_1"); cr.AccessToken != "tok-1" || f.count("GET /v1/token/") != 1 {
		t.Fatalf("a fresh credential was fetched again")
	}
	// 9m30s: within the minute before expires_at: stale.
	now.Store(clock().Add(90 * time.Second))
	assertOneFetchFor1000(t, c, f, release, "tok-2")
	if got := f.count("GET /v1/token/"); got != 2 {
		t.Fatalf("GET /v1/token calls = %d, want 2 (one cold, one for the expired entry)", got)
	}
}

func assertOneFetchFor1000(t *testing.T, c *Client, f *fakeNexus, release chan struct{}, want string) {
	t.Helper()
	const n = 1000
	var started, wg sync.WaitGroup
	started.Add(n)
	wg.Add(n)
	results := make([]string, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			defer wg.Done()
			started.Done()
			cr, err := c.Credentials(context.Background(), "conn_1")
			errs[i] = err
			if cr != nil {
				results[i] = string(cr.AccessToken)
			}
		}(i)
	}
	started.Wait()
	// Every goroutine has started; wait until the one fetch reached the server, then let it answer.
	waitFor(t, func() bool { return f.count("GET /v1/token/") >= 1 })
	close(release)
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil || results[i] != want {
			t.Fatalf("caller %d got %q, %v", i, results[i], errs[i])
		}
	}
}

// waitFor polls a condition that another goroutine makes true (bounded: fails after 10s).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCredentialsAreCachedUntilShortlyBeforeExpiresAt(t *testing.T) {
	f := newFakeNexus(t)
	now := time.Unix(1_700_000_000, 0)
	c := f.client(t, WithClock(func() time.Time { return now }), WithRefreshBefore(30*time.Second))
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeJSON(w, 200, bearerToken("tok", now.Add(5*time.Minute)))
	}
	ctx := context.Background()
	_, _ = c.Credentials(ctx, "conn_1")
	now = now.Add(4*time.Minute + 29*time.Second)
	_, _ = c.Credentials(ctx, "conn_1")
	if f.count("GET /v1/token/") != 1 {
		t.Fatal("fetched again 31s before expiry")
	}
	now = now.Add(2 * time.Second)
	_, _ = c.Credentials(ctx, "conn_1")
	if f.count("GET /v1/token/") != 2 {
		t.Fatal("not fetched again 29s before expiry")
	}
}

func TestAShortLivedCredentialIsCachedForHalfItsRemainingLife(t *testing.T) {
	f := newFakeNexus(t)
	now := time.Unix(1_700_000_000, 0)
	c := f.client(t, WithClock(func() time.Time { return now }), WithRefreshBefore(time.Minute))
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeJSON(w, 200, bearerToken("tok", now.Add(20*time.Second)))
	}
	_, _ = c.Credentials(context.Background(), "conn_1")
	now = now.Add(9 * time.Second)
	_, _ = c.Credentials(context.Background(), "conn_1")
	if f.count("GET /v1/token/") != 1 {
		t.Fatal("a 20s token was not cached for 10s")
	}
	now = now.Add(2 * time.Second)
	_, _ = c.Credentials(context.Background(), "conn_1")
	if f.count("GET /v1/token/") != 2 {
		t.Fatal("a 20s token was cached past half its life")
	}
}

func TestCredentialsWithoutExpiryAreCachedForTheTTL(t *testing.T) {
	f := newFakeNexus(t)
	now := time.Unix(1_700_000_000, 0)
	c := f.client(t, WithClock(func() time.Time { return now }), WithCredentialTTL(time.Minute))
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeJSON(w, 200, map[string]interface{}{"strategy": map[string]string{"type": "api_key", "in": "header", "name": "X-Key"},
			"credentials": map[string]string{"api_key": "k"}, "expires_at": nil})
	}
	_, _ = c.Credentials(context.Background(), "conn_1")
	now = now.Add(59 * time.Second)
	_, _ = c.Credentials(context.Background(), "conn_1")
	now = now.Add(2 * time.Second)
	_, _ = c.Credentials(context.Background(), "conn_1")
	if f.count("GET /v1/token/") != 2 {
		t.Fatalf("fetches = %d, want 2", f.count("GET /v1/token/"))
	}
}

// A caller that gives up does not fail the fetch the others wait for.
func TestACallerThatCancelsLeavesTheSharedFetchToTheOthers(t *testing.T) {
	f := newFakeNexus(t)
	release := make(chan struct{})
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		<-release
		writeJSON(w, 200, bearerToken("tok", time.Now().Add(time.Hour)))
	}
	c := f.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.Credentials(ctx, "conn_1"); first <- err }()
	waitFor(t, func() bool { return f.count("GET /v1/token/") == 1 })
	second := make(chan string, 1)
	go func() { cr, _ := c.Credentials(context.Background(), "conn_1"); second <- string(cr.AccessToken) }()
	cancel()
	if err := <-first; err != context.Canceled {
		t.Fatalf("the canceled caller got %v", err)
	}
	close(release)
	if got := <-second; got != "tok" {
		t.Fatalf("the other caller got %q", got)
	}
	if f.count("GET /v1/token/") != 1 {
		t.Fatal("the cancel started a second fetch")
	}
}

func TestRefreshAndDeleteDropTheCachedCredential(t *testing.T) {
	f := newFakeNexus(t)
	f.other = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }
	c := f.client(t)
	ctx := context.Background()
	a, _ := c.Credentials(ctx, "conn_1")
	if _, err := c.Refresh(ctx, "conn_1"); err != nil {
		t.Fatal(err)
	}
	b, _ := c.Credentials(ctx, "conn_1")
	if a.AccessToken == b.AccessToken {
		t.Fatal("Refresh kept the cached token")
	}
	if err := c.DeleteConnection(ctx, "conn_1"); err != nil {
		t.Fatal(err)
	}
	d, _ := c.Credentials(ctx, "conn_1")
	if d.AccessToken == b.AccessToken || f.count("GET /v1/token/") != 3 {
		t.Fatal("DeleteConnection kept the cached token")
	}
}

// Calls to Nexus reuse one keep-alive connection: a body closed before EOF would close it.
func TestCallsReuseTheConnection(t *testing.T) {
	f := newFakeNexus(t)
	var conns int64
	dialer := &net.Dialer{}
	c := f.client(t, WithTransport(&http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		atomic.AddInt64(&conns, 1)
		return dialer.DialContext(ctx, network, addr)
	}}))
	for i := 0; i < 5; i++ {
		c.cache.invalidate("conn_1")
		if _, err := c.Credentials(context.Background(), "conn_1"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Connection(context.Background(), "conn_1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := atomic.LoadInt64(&conns); n != 1 {
		t.Fatalf("%d connections for 10 sequential calls", n)
	}
}

// A fetch that started before DeleteConnection or Refresh dropped the entry does not bring its credential back.
func TestAFetchThatStartedBeforeAnInvalidationDoesNotStoreItsCredential(t *testing.T) {
	f := newFakeNexus(t)
	releases := []chan struct{}{make(chan struct{}), make(chan struct{})}
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		<-releases[n-1]
		writeJSON(w, 200, bearerToken(fmt.Sprintf("tok-%d", n), time.Now().Add(time.Hour)))
	}
	c := f.client(t)
	ctx := context.Background()
	first := make(chan string, 1)
	go func() { cr, _ := c.Credentials(ctx, "conn_1"); first <- string(cr.AccessToken) }()
	waitFor(t, func() bool { return f.count("GET /v1/token/") == 1 })
	c.cache.invalidate("conn_1") // as DeleteConnection and Refresh do
	second := make(chan string, 1)
	go func() { cr, _ := c.Credentials(ctx, "conn_1"); second <- string(cr.AccessToken) }()
	waitFor(t, func() bool { return f.count("GET /v1/token/") == 2 })
	close(releases[0])
	if got := <-first; got != "tok-1" {
		t.Fatalf("the first caller got %q", got)
	}
	// The old fetch is done; a caller now must not be served its token from the cache.
	third := make(chan string, 1)
	go func() { cr, _ := c.Credentials(ctx, "conn_1"); third <- string(cr.AccessToken) }()
	close(releases[1])
	if a, b := <-second, <-third; a != "tok-2" || b != "tok-2" {
		t.Fatalf("after the invalidation: %q and %q, want tok-2", a, b)
	}
}

// A credential served over Nexus being unavailable is used for 5 s before Nexus is asked again; a 500 and
// attention_required are never masked by the cached credential (nor is a refusal: agreement_test.go).
func TestACredentialServedOverAnOutageIsAskedForAgainAfter5sAndA500OrAttentionRequiredIsNeverMasked(t *testing.T) {
	f := newFakeNexus(t)
	now := time.Unix(1_700_000_000, 0)
	var clock atomic.Value
	clock.Store(now)
	expires := now.Add(10 * time.Minute)
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		switch n {
		case 1:
			writeJSON(w, 200, bearerToken("tok-1", expires))
		case 2, 3:
			writeProblem(w, 503, "refresh_unavailable", nil)
		case 4:
			writeProblem(w, 500, "internal_error", nil)
		default:
			writeProblem(w, 409, "connection_not_active", map[string]interface{}{"status": "attention_required", "connection_id": "conn_1", "error": "invalid_grant"})
		}
	}
	c := f.client(t, WithRetryPolicy(RetryPolicy{MaxAttempts: 1}), WithClock(func() time.Time { return clock.Load().(time.Time) }))
	get := func() (*Credentials, error) { return c.Credentials(context.Background(), "conn_1") }
	if _, err := get(); err != nil {
		t.Fatal(err)
	}
	clock.Store(expires.Add(-30 * time.Second))
	for i := 0; i < 3; i++ { // one fetch, then the cached credential for 5 s
		if cr, err := get(); err != nil || cr.AccessToken != "tok-1" || f.count("GET /v1/token/") != 2 {
			t.Fatalf("call %d: %v %v after %d fetches", i, cr, err, f.count("GET /v1/token/"))
		}
	}
	clock.Store(expires.Add(-25 * time.Second))
	if cr, err := get(); err != nil || cr.AccessToken != "tok-1" || f.count("GET /v1/token/") != 3 {
		t.Fatalf("after 5 s: %v %v after %d fetches", cr, err, f.count("GET /v1/token/"))
	}
	clock.Store(expires.Add(-20 * time.Second))
	var api *APIError
	if _, err := get(); !errors.As(err, &api) || api.StatusCode != 500 {
		t.Fatalf("500: got %T %v", err, err)
	}
	if _, err := get(); !errors.Is(err, ErrAttentionRequired) {
		t.Fatalf("attention_required: got %T %v", err, err)
	}
}
