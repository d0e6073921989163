package nexus

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAttentionRequiredIsTypedCarriesIdAndReasonAndIsNeverRetried(t *testing.T) {
	f := newFakeNexus(t)
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeProblem(w, 409, "connection_not_active", map[string]interface{}{"status": "attention_required", "connection_id": "conn_1", "error": "invalid_grant"})
	}
	_, err := f.client(t).Credentials(context.Background(), "conn_1")
	var ar *AttentionRequiredError
	if !errors.As(err, &ar) || ar.ConnectionID != "conn_1" || ar.Reason != "invalid_grant" {
		t.Fatalf("got %#v", err)
	}
	var na *NotActiveError
	if !errors.As(err, &na) || !errors.Is(err, ErrNotActive) || !errors.Is(err, ErrAttentionRequired) || na.Status != StatusAttentionRequired {
		t.Fatal("attention required is also not active")
	}
	if f.count("GET /v1/token/") != 1 {
		t.Fatalf("attention_required was retried: %d calls", f.count("GET /v1/token/"))
	}
	if !strings.Contains(err.Error(), "conn_1") || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("message: %s", err)
	}
}

func TestEachProblemMapsToItsType(t *testing.T) {
	cases := []struct {
		status int
		code   string
		ext    map[string]interface{}
		check  func(error) bool
	}{
		{409, "connection_not_active", map[string]interface{}{"status": "pending", "connection_id": "conn_1"}, func(e error) bool {
			var x *NotActiveError
			var a *AttentionRequiredError
			return errors.As(e, &x) && x.Status == "pending" && !errors.As(e, &a)
		}},
		{404, "not_found", nil, func(e error) bool { var x *NotFoundError; return errors.As(e, &x) && errors.Is(e, ErrNotFound) }},
		{403, "credentials_not_readable", nil, func(e error) bool {
			var x *ForbiddenError
			return errors.As(e, &x) && x.Code == "credentials_not_readable"
		}},
		{401, "invalid_api_key", nil, func(e error) bool { var x *AuthenticationError; return errors.As(e, &x) }},
		{400, "validation_failed", nil, func(e error) bool { var x *APIError; return errors.As(e, &x) && x.StatusCode == 400 }},
		{429, "rate_limited", nil, func(e error) bool { var x *RateLimitedError; return errors.As(e, &x) && errors.Is(e, ErrRateLimited) }},
		{503, "refresh_unavailable", nil, func(e error) bool { var x *UnavailableError; return errors.As(e, &x) && errors.Is(e, ErrUnavailable) }},
		{502, "upstream_unreachable", nil, func(e error) bool { var x *UnavailableError; return errors.As(e, &x) }},
	}
	for _, tc := range cases {
		tc := tc
		t.Run(tc.code, func(t *testing.T) {
			f := newFakeNexus(t)
			f.token = func(w http.ResponseWriter, r *http.Request, n int64) { writeProblem(w, tc.status, tc.code, tc.ext) }
			_, err := f.client(t, WithRetryPolicy(RetryPolicy{MaxAttempts: 1})).Credentials(context.Background(), "conn_1")
			if !tc.check(err) {
				t.Fatalf("got %T %v", err, err)
			}
		})
	}
}

func TestUnavailableIsRetriedWithBackoffForIdempotentCallsAndCarriesRetryAfter(t *testing.T) {
	f := newFakeNexus(t)
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		if n < 3 {
			w.Header().Set("Retry-After", "0")
			writeProblem(w, 503, "refresh_unavailable", nil)
			return
		}
		writeJSON(w, 200, bearerToken("tok", time.Now().Add(time.Hour)))
	}
	cr, err := f.client(t).Credentials(context.Background(), "conn_1")
	if err != nil || cr.AccessToken != "tok" || f.count("GET /v1/token/") != 3 {
		t.Fatalf("got %v after %d calls", err, f.count("GET /v1/token/"))
	}

	// Out of attempts: the error carries the server's Retry-After.
	g := newFakeNexus(t)
	g.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Retry-After", "0")
		writeProblem(w, 429, "rate_limited", nil)
	}
	_, err = g.client(t).Credentials(context.Background(), "conn_1")
	var rl *RateLimitedError
	if !errors.As(err, &rl) || g.count("GET /v1/token/") != 3 {
		t.Fatalf("got %v after %d calls", err, g.count("GET /v1/token/"))
	}
}

func TestARetryAfterLongerThanTheMaximumWaitSurfacesAtOnce(t *testing.T) {
	f := newFakeNexus(t)
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Retry-After", "120")
		writeProblem(w, 503, "refresh_unavailable", nil)
	}
	_, err := f.client(t).Credentials(context.Background(), "conn_1")
	if RetryAfterOf(err) != 120*time.Second || f.count("GET /v1/token/") != 1 {
		t.Fatalf("got %v (retry after %s) after %d calls", err, RetryAfterOf(err), f.count("GET /v1/token/"))
	}
}

func TestNonIdempotentCallsAreNeverRetried(t *testing.T) {
	f := newFakeNexus(t)
	f.refresh = func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Retry-After", "0")
		writeProblem(w, 503, "refresh_unavailable", nil)
	}
	_, err := f.client(t).Refresh(context.Background(), "conn_1")
	var un *UnavailableError
	if !errors.As(err, &un) || f.count("POST /v1/refresh/") != 1 {
		t.Fatalf("got %v after %d calls", err, f.count("POST /v1/refresh/"))
	}
}

func TestBackoffHasFullJitterAndNeverUndercutsRetryAfter(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		d, ok := p.delay(2, 0)
		if !ok || d <= 0 || d > 400*time.Millisecond {
			t.Fatalf("delay %s outside (0, 400ms]", d)
		}
		seen[d] = true
		if d, _ := p.delay(0, 700*time.Millisecond); d < 700*time.Millisecond {
			t.Fatalf("delay %s under Retry-After", d)
		}
	}
	if len(seen) < 50 {
		t.Fatalf("only %d distinct delays: no jitter", len(seen))
	}
	if d, _ := p.delay(20, 0); d > time.Second {
		t.Fatalf("delay %s over the cap", d)
	}
}

func TestRetryAfterAcceptsSecondsAndHTTPDates(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if parseRetryAfter("7", now) != 7*time.Second || parseRetryAfter("", now) != 0 || parseRetryAfter("-3", now) != 0 ||
		parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now) != 90*time.Second {
		t.Fatal("Retry-After parsing")
	}
}

func TestClientReadsTheEnvironmentAndRefusesAMissingConfiguration(t *testing.T) {
	f := newFakeNexus(t)
	t.Setenv("NEXUS_URL", f.srv.URL+"/")
	t.Setenv("NEXUS_API_KEY", testAPIKey)
	c, err := NewClient()
	if err != nil || c.BaseURL() != f.srv.URL {
		t.Fatalf("%v %v", c, err)
	}
	if _, err := c.Connection(context.Background(), "conn_1"); err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("NEXUS_API_KEY")
	if _, err := NewClient(); err == nil {
		t.Fatal("no API key accepted")
	}
	if _, err := NewClient(WithAPIKey("k"), WithBaseURL("ftp://x")); err == nil {
		t.Fatal("a non-http base URL accepted")
	}
	// Options override the environment.
	c, _ = NewClient(WithAPIKey("other"))
	if _, err := c.Connection(context.Background(), "conn_1"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("got %v", err)
	}
}

func TestEachCallHonoursItsContextAndTheClientTimeout(t *testing.T) {
	f := newFakeNexus(t)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}
	c := f.client(t, WithTimeout(50*time.Millisecond), WithRetryPolicy(RetryPolicy{MaxAttempts: 1}))
	start := time.Now()
	_, err := c.Connection(context.Background(), "conn_1")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("timeout: %v", err)
	}
	c = f.client(t, WithTimeout(0))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, func() bool { return f.count("GET /v1/connections/") >= 2 })
		cancel()
	}()
	if _, err := c.Connection(ctx, "conn_1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}
}

func TestPluggableTransportCarriesEveryCall(t *testing.T) {
	f := newFakeNexus(t)
	var seen int
	c := f.client(t, WithTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen++
		return http.DefaultTransport.RoundTrip(r)
	})))
	if _, err := c.Connection(context.Background(), "conn_1"); err != nil || seen != 1 {
		t.Fatalf("%v, transport saw %d", err, seen)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTheDefaultRetryPolicyIs3AttemptsFrom250msAndWaitsForARetryAfterOfAtMost10s(t *testing.T) {
	c, err := NewClient(WithBaseURL("http://127.0.0.1:1"), WithAPIKey(testAPIKey))
	if err != nil {
		t.Fatal(err)
	}
	if want := (RetryPolicy{MaxAttempts: 3, BaseDelay: 250 * time.Millisecond, MaxDelay: 10 * time.Second}); c.retry != want {
		t.Fatalf("default policy %+v, want %+v", c.retry, want)
	}
	for i := 0; i < 100; i++ {
		if d, ok := c.retry.delay(0, 0); !ok || d <= 0 || d > 250*time.Millisecond {
			t.Fatalf("first backoff %s", d)
		}
		if d, ok := c.retry.delay(1, 0); !ok || d <= 0 || d > 500*time.Millisecond {
			t.Fatalf("second backoff %s", d)
		}
	}
	if d, ok := c.retry.delay(0, 10*time.Second); !ok || d != 10*time.Second {
		t.Fatalf("Retry-After 10s: %s %v", d, ok)
	}
	if _, ok := c.retry.delay(0, 11*time.Second); ok {
		t.Fatal("a Retry-After of 11s would be waited for")
	}
}

func TestAnAnswerWhoseBodyIsNotJSONIsNotRetried(t *testing.T) {
	f := newFakeNexus(t)
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "<html>not JSON</html>")
	}
	_, err := f.client(t).Connection(context.Background(), "conn_1")
	if err == nil || !strings.Contains(err.Error(), "reading the answer") || f.count("GET /v1/connections/") != 1 {
		t.Fatalf("%v after %d requests", err, f.count("GET /v1/connections/"))
	}
}

func TestARedirectFromNexusIsAnAPIErrorAndTheAPIKeyNeverLeaves(t *testing.T) {
	var elsewhere, keys int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&elsewhere, 1)
		if r.Header.Get("X-API-Key") != "" {
			atomic.AddInt64(&keys, 1)
		}
		writeJSON(w, 200, map[string]interface{}{"connection_id": "conn_1", "status": "active"})
	}))
	defer other.Close()
	f := newFakeNexus(t)
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}
	own := &http.Client{} // follows redirects, as net/http does
	for name, c := range map[string]*Client{"default": f.client(t), "WithHTTPClient": f.client(t, WithHTTPClient(own))} {
		_, err := c.Connection(context.Background(), "conn_1")
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusFound {
			t.Fatalf("%s: Connection: %v, want *APIError 302", name, err)
		}
		_, err = c.Credentials(context.Background(), "conn_1")
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTemporaryRedirect {
			t.Fatalf("%s: Credentials: %v, want *APIError 307", name, err)
		}
	}
	if own.CheckRedirect != nil {
		t.Fatal("the caller's http.Client was changed")
	}
	if n, k := atomic.LoadInt64(&elsewhere), atomic.LoadInt64(&keys); n != 0 || k != 0 {
		t.Fatalf("the other host got %d requests, %d with X-API-Key", n, k)
	}
}
