package nexus

// The cases the four SDKs classify alike (the README's "Same answer, same error" table); each test has the same
// sentence as its name in the TypeScript, Python and .NET suites.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAwsStsThrottledIsUnavailableNotRateLimitedAndCarriesRetryAfter(t *testing.T) {
	f := newFakeNexus(t)
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Retry-After", "5")
		writeProblem(w, 503, "aws_sts_throttled", map[string]interface{}{"retry_after": 5})
	}
	_, err := f.client(t, WithRetryPolicy(RetryPolicy{MaxAttempts: 1})).Credentials(context.Background(), "conn_1")
	var un *UnavailableError
	var rl *RateLimitedError
	if !errors.As(err, &un) || !errors.Is(err, ErrUnavailable) || errors.As(err, &rl) || errors.Is(err, ErrRateLimited) {
		t.Fatalf("got %T %v", err, err)
	}
	if un.Code != "aws_sts_throttled" || un.StatusCode != 503 || RetryAfterOf(err) != 5*time.Second {
		t.Fatalf("code %q status %d retry after %s", un.Code, un.StatusCode, RetryAfterOf(err))
	}
}

func TestConnectionFailedIsNotActiveWithStatusFailedAndTheConnectionId(t *testing.T) {
	f := newFakeNexus(t)
	f.other = func(w http.ResponseWriter, r *http.Request) {
		// What Nexus sends: the catalog's problem, with RFC 9457's numeric status and no connection id.
		writeProblem(w, 409, "connection_failed", nil)
	}
	_, err := f.client(t).SubmitCredentials(context.Background(), "conn_9", map[string]string{"api_key": "k"})
	var na *NotActiveError
	var ar *AttentionRequiredError
	if !errors.As(err, &na) || !errors.Is(err, ErrNotActive) || errors.As(err, &ar) {
		t.Fatalf("got %T %v", err, err)
	}
	if na.Status != StatusFailed || na.ConnectionID != "conn_9" || na.Code != "connection_failed" || na.StatusCode != 409 {
		t.Fatalf("status %q connection %q code %q http %d", na.Status, na.ConnectionID, na.Code, na.StatusCode)
	}
	if !strings.Contains(err.Error(), "conn_9") || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("message: %s", err)
	}
}

func TestAProvider401WhoseForcedRefreshIsUnavailableFailsWithTheUnavailableError(t *testing.T) {
	f := newFakeNexus(t)
	f.refresh = func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Retry-After", "7")
		writeProblem(w, 503, "refresh_unavailable", map[string]interface{}{"connection_id": "conn_1"})
	}
	p := newProvider(t, func(r *http.Request) bool { return false })
	resp, err := f.client(t).HTTPClient("conn_1").Get(p.srv.URL + "/x")
	if resp != nil {
		resp.Body.Close()
	}
	var un *UnavailableError
	if !errors.As(err, &un) || un.Code != "refresh_unavailable" || RetryAfterOf(err) != 7*time.Second {
		t.Fatalf("got %v", err)
	}
	if atomic.LoadInt64(&p.hits) != 1 || f.count("POST /v1/refresh/") != 1 {
		t.Fatalf("%d provider hits, %d refreshes", p.hits, f.count("POST /v1/refresh/"))
	}
}

func TestAProvider401OnAConnectionWithNothingToRefreshReturnsTheProviders401(t *testing.T) {
	f := newFakeNexus(t)
	f.refresh = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeProblem(w, 409, "refresh_not_supported", map[string]interface{}{"connection_id": "conn_1", "status": "active"})
	}
	p := newProvider(t, func(r *http.Request) bool { return false })
	status, _ := get(t, f.client(t).HTTPClient("conn_1"), p.srv.URL+"/x")
	if status != 401 || f.count("POST /v1/refresh/") != 1 {
		t.Fatalf("status %d after %d refreshes", status, f.count("POST /v1/refresh/"))
	}
	// No read after the refusal, and no second request.
	if f.count("GET /v1/token/") != 1 || atomic.LoadInt64(&p.hits) != 1 {
		t.Fatalf("%d token reads, %d provider requests", f.count("GET /v1/token/"), p.hits)
	}
}

func TestAProvider401IsNotRetriedWhenNexusHandsBackTheSameCredential(t *testing.T) {
	// An OAuth 2.0 token that the forced refresh left as it was, and an API key that was not captured anew.
	for _, tc := range []struct {
		name      string
		token     map[string]interface{}
		refreshes int64
	}{
		{"oauth2", bearerToken("tok-same", time.Now().Add(time.Hour)), 1},
		{"api_key", strategyToken(map[string]string{"type": "api_key", "in": "header", "name": "X-Key"}, map[string]string{"api_key": "k-same"}), 0},
	} {
		f := newFakeNexus(t)
		f.token = func(w http.ResponseWriter, r *http.Request, n int64) { writeJSON(w, 200, tc.token) }
		p := newProvider(t, func(r *http.Request) bool { return false })
		status, _ := get(t, f.client(t).HTTPClient("conn_1"), p.srv.URL+"/x")
		if status != 401 || atomic.LoadInt64(&p.hits) != 1 || f.count("GET /v1/token/") != 2 || f.count("POST /v1/refresh/") != tc.refreshes {
			t.Fatalf("%s: status %d, %d provider requests, %d token reads, %d refreshes", tc.name, status, p.hits,
				f.count("GET /v1/token/"), f.count("POST /v1/refresh/"))
		}
	}
}

func TestWaitUntilActiveKeepsPollingThroughATransientErrorUntilTheConnectionIsActive(t *testing.T) {
	f := newFakeNexus(t)
	active := f.conn
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "0")
			writeProblem(w, 503, "database_unavailable", nil)
		case 2:
			writeProblem(w, 429, "rate_limited", nil)
		default:
			active(w, r, n)
		}
	}
	conn, err := f.client(t, WithRetryPolicy(RetryPolicy{MaxAttempts: 1})).WaitUntilActive(context.Background(), "conn_1", time.Minute)
	if err != nil || conn.Status != StatusActive || f.count("GET /v1/connections/") != 3 {
		t.Fatalf("got %v, %v after %d polls", conn, err, f.count("GET /v1/connections/"))
	}
}

func TestWaitUntilActiveRaisesTheLastTransientErrorWhenTheDeadlinePasses(t *testing.T) {
	f := newFakeNexus(t)
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Retry-After", "0")
		writeProblem(w, 503, "database_unavailable", nil)
	}
	_, err := f.client(t, WithRetryPolicy(RetryPolicy{MaxAttempts: 1})).WaitUntilActive(context.Background(), "conn_1", 300*time.Millisecond)
	var un *UnavailableError
	var wt *WaitTimeoutError
	if !errors.As(err, &un) || un.Code != "database_unavailable" || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %T %v", err, err)
	}
	// Still the wait's own error too, as before: it ran out of time.
	if !errors.As(err, &wt) || wt.Last == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %T %v", err, err)
	}
	if f.count("GET /v1/connections/") < 2 {
		t.Fatalf("gave up after %d polls", f.count("GET /v1/connections/"))
	}
}

func TestWaitUntilActiveEndsAtOnceWhenAPollIsAnsweredWithA500(t *testing.T) {
	f := newFakeNexus(t)
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeProblem(w, 500, "internal_error", nil)
	}
	// A minute to wait: polling through the 500 would show as a second poll and a *WaitTimeoutError.
	_, err := f.client(t, WithRetryPolicy(RetryPolicy{MaxAttempts: 1})).WaitUntilActive(context.Background(), "conn_1", time.Minute)
	var api *APIError
	var wt *WaitTimeoutError
	if !errors.As(err, &api) || api.StatusCode != 500 || api.Code != "internal_error" || errors.As(err, &wt) {
		t.Fatalf("got %T %v", err, err)
	}
	if n := f.count("GET /v1/connections/"); n != 1 {
		t.Fatalf("%d polls, want 1", n)
	}
}

func TestWaitUntilActiveEndsAtOnceWhenAPollIsAnsweredWithA502OfAPermanentCode(t *testing.T) {
	f := newFakeNexus(t)
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Retry-After", "0")
		writeProblem(w, 502, "token_request_failed", nil)
	}
	// A minute to wait: polling through the refusal would show as a second poll and a *WaitTimeoutError.
	_, err := f.client(t, WithRetryPolicy(RetryPolicy{MaxAttempts: 1})).WaitUntilActive(context.Background(), "conn_1", time.Minute)
	var un *UnavailableError
	var wt *WaitTimeoutError
	if !errors.As(err, &un) || un.StatusCode != 502 || un.Code != "token_request_failed" || errors.As(err, &wt) {
		t.Fatalf("got %T %v", err, err)
	}
	if n := f.count("GET /v1/connections/"); n != 1 {
		t.Fatalf("%d polls, want 1", n)
	}
}

func TestWaitUntilActiveKeepsPollingThroughA502WithoutACodeOrWithATransientOneAndThroughReconnecting(t *testing.T) {
	f := newFakeNexus(t)
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		conn := map[string]interface{}{"connection_id": "conn_1", "status": "active", "provider": "p", "workspace_id": "ws", "scopes": []string{"a"}}
		switch n {
		case 1:
			w.Header().Set("Retry-After", "0")
			writeProblem(w, 502, "upstream_unreachable", nil)
		case 2:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			_, _ = w.Write([]byte("<html>Bad Gateway</html>"))
		case 3:
			writeProblem(w, 504, "upstream_timeout", nil)
		case 4:
			conn["reconnecting"] = true
			writeJSON(w, 200, conn)
		default:
			writeJSON(w, 200, conn)
		}
	}
	conn, err := f.client(t, WithRetryPolicy(RetryPolicy{MaxAttempts: 1})).WaitUntilActive(context.Background(), "conn_1", time.Minute)
	if err != nil || conn.Status != StatusActive || conn.Reconnecting || f.count("GET /v1/connections/") != 5 {
		t.Fatalf("got %v, %v after %d polls", conn, err, f.count("GET /v1/connections/"))
	}
}

func TestATransientNexusProblemThroughTheBridgeIsRetriedForAnIdempotentMethodButNotForAPOSTAProviders503OrALongRetryAfter(t *testing.T) {
	f := newFakeNexus(t)
	// Nexus's Bridge: /flaky answers 429 (Nexus's rate limit), then 503 database_unavailable, then the provider's 200;
	// /refused and /later always answer 503 refresh_unavailable (Retry-After 0 and 3600); /provider is the provider's
	// own 503 problem, which the Bridge passes on.
	var flaky int64
	hops := recordBridge(f, func(w http.ResponseWriter, r *http.Request) {
		problem := func(status int, typ, retryAfter string) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", retryAfter)
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"type":%q,"title":"t","status":%d}`, typ, status)
		}
		switch strings.TrimPrefix(r.URL.Path, "/v1/bridge/conn_1/") {
		case "flaky":
			switch atomic.AddInt64(&flaky, 1) {
			case 1:
				problem(429, "urn:nexus:problem:rate_limited", "0")
			case 2:
				problem(503, "urn:nexus:problem:database_unavailable", "0")
			default:
				io.WriteString(w, "ok")
			}
		case "refused":
			problem(503, "urn:nexus:problem:refresh_unavailable", "0")
		case "later":
			problem(503, "urn:nexus:problem:refresh_unavailable", "3600")
		default:
			problem(503, "https://api.provider.test/problems/maintenance", "0")
		}
	})
	sent := func(name string) (n int) {
		for _, h := range hops() {
			if strings.HasSuffix(h.URI, "/"+name) {
				n++
			}
		}
		return n
	}
	c := f.client(t)
	h := c.HTTPClient("conn_1", ViaBridge())
	send := func(method, name, body string) (*http.Response, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, c.BridgeURL("conn_1")+"/"+name, rd)
		if err != nil {
			t.Fatal(err)
		}
		return h.Do(req)
	}

	resp, err := send(http.MethodPut, "flaky", `{"a":1}`)
	if err != nil || resp.StatusCode != 200 || sent("flaky") != 3 {
		t.Fatalf("PUT /flaky: %v, %v after %d requests", resp, err, sent("flaky"))
	}
	resp.Body.Close()
	for _, hop := range hops() {
		if hop.Body != `{"a":1}` { // the body, sent again each time
			t.Fatalf("a retry sent the body %q", hop.Body)
		}
	}

	var un *UnavailableError
	if _, err = send(http.MethodPost, "refused", "{}"); !errors.As(err, &un) || un.Code != "refresh_unavailable" || sent("refused") != 1 {
		t.Fatalf("POST /refused: %v after %d requests", err, sent("refused"))
	}

	status, body := get(t, h, c.BridgeURL("conn_1")+"/provider")
	if status != 503 || !strings.Contains(body, "maintenance") || sent("provider") != 1 {
		t.Fatalf("GET /provider: %d %q after %d requests", status, body, sent("provider"))
	}

	if _, err = send(http.MethodGet, "later", ""); !errors.As(err, &un) || un.RetryAfter != time.Hour || sent("later") != 1 {
		t.Fatalf("GET /later: %v after %d requests", err, sent("later"))
	}
}

func TestA21stRedirectThroughTheBridgeIsAnErrorAsItIsDirectly(t *testing.T) {
	f := newFakeNexus(t)
	elsewhere := newProvider(t, func(*http.Request) bool { return true })
	// /v1/bridge/conn_1/{chain}/N redirects to .../N+1 on the Bridge: "twenty" up to 20, "endless" always, "leaving"
	// up to 20 and then off the Bridge.
	hops := recordBridge(f, func(w http.ResponseWriter, r *http.Request) {
		var chain string
		var n int
		if _, err := fmt.Sscanf(strings.Replace(strings.TrimPrefix(r.URL.Path, "/v1/bridge/conn_1/"), "/", " ", 1), "%s %d", &chain, &n); err != nil {
			w.WriteHeader(404)
			return
		}
		switch {
		case chain == "endless" || n < 20:
			redirectTo(w, http.StatusFound, fmt.Sprintf("/v1/bridge/conn_1/%s/%d", chain, n+1))
		case chain == "leaving":
			redirectTo(w, http.StatusFound, elsewhere.srv.URL+"/away")
		default:
			io.WriteString(w, "end of the chain")
		}
	})
	c := f.client(t)
	h := c.HTTPClient("conn_1", ViaBridge())

	status, body := get(t, h, c.BridgeURL("conn_1")+"/twenty/0")
	if status != 200 || body != "end of the chain" || len(hops()) != 21 {
		t.Fatalf("20 redirects: %d %q after %d requests", status, body, len(hops()))
	}

	resp, err := h.Get(c.BridgeURL("conn_1") + "/endless/0")
	if err == nil || !strings.Contains(err.Error(), "stopped after 20 redirects") {
		if resp != nil {
			resp.Body.Close()
		}
		t.Fatalf("21 redirects: %v, %v", resp, err)
	}
	got := hops()
	if len(got) != 42 || got[len(got)-1].URI != "/v1/bridge/conn_1/endless/20" { // /endless/0 and 20 redirects followed; the 21st is not
		t.Fatalf("21 redirects: %d requests, the last %+v", len(got), got[len(got)-1])
	}

	// Where the Bridge's redirect goes is asked before how many there were: a 21st off the Bridge comes back.
	resp, err = h.Get(c.BridgeURL("conn_1") + "/leaving/0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != elsewhere.srv.URL+"/away" || len(hops()) != 63 {
		t.Fatalf("a 21st redirect off the Bridge: %d Location %q after %d requests", resp.StatusCode, resp.Header.Get("Location"), len(hops()))
	}
	if n := atomic.LoadInt64(&elsewhere.hits); n != 0 {
		t.Fatalf("the other host got %d requests", n)
	}
}

func TestA21stRedirectToAnotherOriginComesBackAsThe3xxDirectly(t *testing.T) {
	f := newFakeNexus(t)
	elsewhere := newProvider(t, func(*http.Request) bool { return true })
	// The provider's /{chain}/N redirects to /{chain}/N+1 on its own origin: "twenty" up to 20, "endless" always,
	// "leaving" up to 20 and then to another origin.
	var credentialed, requests int64
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&requests, 1)
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") {
			atomic.AddInt64(&credentialed, 1)
		}
		var chain string
		var n int
		if _, err := fmt.Sscanf(strings.Replace(strings.TrimPrefix(r.URL.Path, "/"), "/", " ", 1), "%s %d", &chain, &n); err != nil {
			w.WriteHeader(404)
			return
		}
		switch {
		case chain == "endless" || n < 20:
			redirectTo(w, http.StatusFound, fmt.Sprintf("/%s/%d", chain, n+1))
		case chain == "leaving":
			redirectTo(w, http.StatusFound, elsewhere.srv.URL+"/away")
		default:
			io.WriteString(w, "end of the chain")
		}
	}))
	t.Cleanup(p.Close)
	h := f.client(t).HTTPClient("conn_1")

	status, body := get(t, h, p.URL+"/twenty/0")
	if status != 200 || body != "end of the chain" || atomic.LoadInt64(&requests) != 21 || atomic.LoadInt64(&credentialed) != 21 {
		t.Fatalf("20 redirects: %d %q after %d requests, %d with the credential", status, body, atomic.LoadInt64(&requests), atomic.LoadInt64(&credentialed))
	}

	resp, err := h.Get(p.URL + "/endless/0")
	if err == nil || !strings.Contains(err.Error(), "stopped after 20 redirects") {
		if resp != nil {
			resp.Body.Close()
		}
		t.Fatalf("21 redirects: %v, %v", resp, err)
	}
	if n := atomic.LoadInt64(&requests); n != 42 { // /endless/0 and 20 redirects followed; the 21st is not
		t.Fatalf("21 redirects: %d requests", n)
	}

	// Where the redirect goes is asked before how many there were: a 21st to another origin comes back, not an error.
	resp, err = h.Get(p.URL + "/leaving/0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != elsewhere.srv.URL+"/away" || atomic.LoadInt64(&requests) != 63 {
		t.Fatalf("a 21st redirect to another origin: %d Location %q after %d requests", resp.StatusCode, resp.Header.Get("Location"), atomic.LoadInt64(&requests))
	}
	if n := atomic.LoadInt64(&elsewhere.hits); n != 0 {
		t.Fatalf("the other origin got %d requests", n)
	}
}

func TestCachedCredentialsThatHaveNotExpiredAreServedWhenTheirFetchFailsTransiently(t *testing.T) {
	failures := []struct {
		what string
		fail func(t *testing.T, w http.ResponseWriter)
	}{
		{"503 database_unavailable", func(t *testing.T, w http.ResponseWriter) {
			w.Header().Set("Retry-After", "0")
			writeProblem(w, 503, "database_unavailable", nil)
		}},
		{"a proxy's 502 (no Nexus code)", func(t *testing.T, w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "<html>Bad Gateway</html>")
		}},
		{"429", func(t *testing.T, w http.ResponseWriter) {
			w.Header().Set("Retry-After", "0")
			writeProblem(w, 429, "rate_limited", nil)
		}},
		{"no answer", hangUp},
	}
	for _, failure := range failures {
		f := newFakeNexus(t)
		now := time.Unix(1_700_000_000, 0)
		var clock atomic.Value
		clock.Store(now)
		expires := now.Add(10 * time.Minute)
		var down atomic.Bool
		f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
			if down.Load() {
				failure.fail(t, w)
				return
			}
			writeJSON(w, 200, bearerToken("tok-1", expires))
		}
		c := f.client(t, WithRetryPolicy(RetryPolicy{MaxAttempts: 1}), WithClock(func() time.Time { return clock.Load().(time.Time) }))
		if _, err := c.Credentials(context.Background(), "conn_1"); err != nil {
			t.Fatal(err)
		}
		down.Store(true)
		clock.Store(expires.Add(-30 * time.Second)) // within the refresh margin: due for a fetch, not expired
		cr, err := c.Credentials(context.Background(), "conn_1")
		if err != nil || cr.AccessToken != "tok-1" || f.count("GET /v1/token/") < 2 {
			t.Fatalf("%s: got %v, %v after %d fetches", failure.what, cr, err, f.count("GET /v1/token/"))
		}
		clock.Store(expires.Add(time.Second)) // expired: the failure is returned
		if _, err := c.Credentials(context.Background(), "conn_1"); !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrRateLimited) {
			var tr *transportError
			if !errors.As(err, &tr) {
				t.Fatalf("%s, expired: got %T %v", failure.what, err, err)
			}
		}
	}
}

func TestCachedCredentialsAreNotServedWhenTheirFetchIsAnsweredWithA502OfAPermanentCode(t *testing.T) {
	f := newFakeNexus(t)
	now := time.Unix(1_700_000_000, 0)
	var clock atomic.Value
	clock.Store(now)
	expires := now.Add(10 * time.Minute)
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		if n > 1 {
			writeProblem(w, 502, "token_request_failed", nil)
			return
		}
		writeJSON(w, 200, bearerToken("tok-1", expires))
	}
	c := f.client(t, WithRetryPolicy(RetryPolicy{MaxAttempts: 1}), WithClock(func() time.Time { return clock.Load().(time.Time) }))
	if _, err := c.Credentials(context.Background(), "conn_1"); err != nil {
		t.Fatal(err)
	}
	// Due for a fetch, not expired: a transient failure would serve tok-1 (the test above).
	clock.Store(expires.Add(-30 * time.Second))
	cr, err := c.Credentials(context.Background(), "conn_1")
	var un *UnavailableError
	if !errors.As(err, &un) || un.StatusCode != 502 || un.Code != "token_request_failed" || cr != nil {
		t.Fatalf("got %v, %T %v", cr, err, err)
	}
	if got := f.count("GET /v1/token/"); got != 2 {
		t.Fatalf("GET /v1/token calls = %d, want 2", got)
	}
}

func TestAProblemWithoutACodeTakesItFromItsUrnNexusProblemType(t *testing.T) {
	f := newFakeNexus(t)
	typed := func(w http.ResponseWriter, status int, typ string, extra string) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"type":%q,"title":"t"%s}`, typ, extra)
	}
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		switch strings.TrimPrefix(r.URL.Path, "/v1/token/") {
		case "attention":
			typed(w, 409, "urn:nexus:problem:connection_not_active", `,"status":"attention_required","connection_id":"attention","error":"invalid_grant"`)
		case "refused":
			typed(w, 502, "urn:nexus:problem:token_request_failed", `,"status":502`)
		case "empty":
			typed(w, 400, "urn:nexus:problem:validation_failed", `,"code":""`)
		case "both":
			typed(w, 400, "urn:nexus:problem:validation_failed", `,"code":"unknown_provider"`)
		case "url":
			typed(w, 400, "https://nexus.test/problems/validation_failed", "")
		default:
			typed(w, 400, "about:blank", "")
		}
	}
	c := f.client(t)
	fails := func(id string) *Problem {
		_, err := c.Credentials(context.Background(), id)
		var ar *AttentionRequiredError
		var un *UnavailableError
		var api *APIError
		switch {
		case errors.As(err, &ar):
			return &ar.Problem
		case errors.As(err, &un):
			return &un.Problem
		case errors.As(err, &api):
			return &api.Problem
		}
		t.Fatalf("%s: got %T %v", id, err, err)
		return nil
	}

	if _, err := c.Credentials(context.Background(), "attention"); !errors.Is(err, ErrAttentionRequired) {
		t.Fatalf("attention: got %T %v", err, err)
	}
	if p := fails("attention"); p.Code != "connection_not_active" || p.Reason != "invalid_grant" {
		t.Fatalf("attention: code %q reason %q", p.Code, p.Reason)
	}
	before := f.count("GET /v1/token/")
	if p := fails("refused"); p.Code != "token_request_failed" || p.StatusCode != 502 {
		t.Fatalf("refused: code %q status %d", p.Code, p.StatusCode)
	}
	if got := f.count("GET /v1/token/") - before; got != 1 {
		t.Fatalf("refused: %d fetches, want 1 (a refusal is not sent again)", got)
	}
	if p := fails("empty"); p.Code != "validation_failed" {
		t.Fatalf("empty: code %q", p.Code)
	}
	if p := fails("both"); p.Code != "unknown_provider" { // the code wins
		t.Fatalf("both: code %q", p.Code)
	}
	if p := fails("url"); p.Code != "" { // only the URN names a code
		t.Fatalf("url: code %q", p.Code)
	}
	if p := fails("blank"); p.Code != "" {
		t.Fatalf("blank: code %q", p.Code)
	}
}

// The retry policy (the README's "Retries"), with the default RetryPolicy: each test has the same sentence as its
// name in the TypeScript, Python and .NET suites.

// defaultRetries is a client of f with the default RetryPolicy (3 attempts, 250ms then 500ms, Retry-After up to 10s).
func defaultRetries(t *testing.T, f *fakeNexus, opts ...Option) *Client {
	return f.client(t, append([]Option{WithRetryPolicy(RetryPolicy{})}, opts...)...)
}

// bridgeDo sends method to the connection's Bridge path through HTTPClient(ViaBridge()).
func bridgeDo(t *testing.T, c *Client, method, path string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(method, c.BridgeURL("conn_1")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.HTTPClient("conn_1", ViaBridge()).Do(req)
	if err == nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

// hangUp closes the connection of r without answering (after Nexus read the request): the client sees no answer.
func hangUp(t *testing.T, w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	conn.Close()
}

func TestA500InternalErrorFromNexusIsNotRetried(t *testing.T) {
	f := newFakeNexus(t)
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) { writeProblem(w, 500, "internal_error", nil) }
	f.other = func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 500, "internal_error", nil) }
	c := defaultRetries(t, f)

	_, err := c.Connection(context.Background(), "conn_1")
	var api *APIError
	if !errors.As(err, &api) || api.StatusCode != 500 || api.Code != "internal_error" || f.count("GET /v1/connections/") != 1 {
		t.Fatalf("GET /v1/connections: %v after %d requests", err, f.count("GET /v1/connections/"))
	}
	if _, err = bridgeDo(t, c, http.MethodGet, "/item"); !errors.As(err, &api) || api.Code != "internal_error" || f.count("GET /v1/bridge/") != 1 {
		t.Fatalf("GET through the Bridge: %v after %d requests", err, f.count("GET /v1/bridge/"))
	}
}

func TestA503WithRetryAfter1IsRetriedAfterASecondAndTheSecondAnswerWins(t *testing.T) {
	f := newFakeNexus(t)
	conn := f.conn
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			writeProblem(w, 503, "refresh_unavailable", nil)
			return
		}
		conn(w, r, n)
	}
	start := time.Now()
	got, err := defaultRetries(t, f).Connection(context.Background(), "conn_1")
	if err != nil || got.Status != StatusActive || f.count("GET /v1/connections/") != 2 {
		t.Fatalf("%v, %v after %d requests", got, err, f.count("GET /v1/connections/"))
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("retried after %s, before the Retry-After", waited)
	}
}

func TestAThirdTransientFailureGivesUpAfter3AttemptsWithTheLastError(t *testing.T) {
	f := newFakeNexus(t)
	// 502, 503, then 504: the last one is the error; no Retry-After, so the backoff (250ms, then 500ms, jittered) applies.
	answer := func(w http.ResponseWriter, n int64) {
		switch n {
		case 1:
			writeProblem(w, 502, "upstream_unreachable", nil)
		case 2:
			writeProblem(w, 503, "database_unavailable", nil)
		default:
			writeProblem(w, 504, "upstream_timeout", nil)
		}
	}
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) { answer(w, n) }
	var bridged int64
	f.other = func(w http.ResponseWriter, r *http.Request) { answer(w, atomic.AddInt64(&bridged, 1)) }
	c := defaultRetries(t, f)

	_, err := c.Connection(context.Background(), "conn_1")
	var un *UnavailableError
	if !errors.As(err, &un) || un.StatusCode != 504 || un.Code != "upstream_timeout" || f.count("GET /v1/connections/") != 3 {
		t.Fatalf("GET /v1/connections: %v after %d requests", err, f.count("GET /v1/connections/"))
	}
	if _, err = bridgeDo(t, c, http.MethodGet, "/item"); !errors.As(err, &un) || un.Code != "upstream_timeout" || f.count("GET /v1/bridge/") != 3 {
		t.Fatalf("GET through the Bridge: %v after %d requests", err, f.count("GET /v1/bridge/"))
	}
}

func TestARetryAfterOf30SecondsIsNotWaitedForTheErrorComesAtOnceCarryingIt(t *testing.T) {
	f := newFakeNexus(t)
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Retry-After", "30")
		writeProblem(w, 503, "refresh_unavailable", nil)
	}
	// Through the Bridge, as an HTTP date.
	f.other = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", time.Now().Add(31*time.Second).UTC().Format(http.TimeFormat))
		writeProblem(w, 429, "rate_limited", nil)
	}
	c := defaultRetries(t, f)
	start := time.Now()

	_, err := c.Connection(context.Background(), "conn_1")
	var un *UnavailableError
	if !errors.As(err, &un) || un.RetryAfter != 30*time.Second || f.count("GET /v1/connections/") != 1 {
		t.Fatalf("GET /v1/connections: %v after %d requests", err, f.count("GET /v1/connections/"))
	}
	_, err = bridgeDo(t, c, http.MethodGet, "/item")
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter < 29*time.Second || rl.RetryAfter > 31*time.Second || f.count("GET /v1/bridge/") != 1 {
		t.Fatalf("GET through the Bridge: %v after %d requests", err, f.count("GET /v1/bridge/"))
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("waited %s", waited)
	}
}

func TestAConnectionThatFailsBeforeAnyAnswerIsRetriedForAGETThroughTheBridgeTooButNotForAPOST(t *testing.T) {
	f := newFakeNexus(t)
	// Every answer closes its connection, so that each request goes on a new one (a kept-alive connection closed by
	// the server is sent again by net/http itself); the first request of each kind is hung up on without an answer.
	conn := f.conn
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Connection", "close")
		if n == 1 {
			hangUp(t, w)
			return
		}
		conn(w, r, n)
	}
	f.refresh = func(w http.ResponseWriter, r *http.Request, n int64) { hangUp(t, w) }
	var gets int64
	f.other = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		if r.Method == http.MethodPost || atomic.AddInt64(&gets, 1) == 1 {
			hangUp(t, w)
			return
		}
		io.WriteString(w, "the provider's answer")
	}
	c := defaultRetries(t, f)

	if got, err := c.Connection(context.Background(), "conn_1"); err != nil || got.Status != StatusActive || f.count("GET /v1/connections/") != 2 {
		t.Fatalf("GET /v1/connections: %v, %v after %d requests", got, err, f.count("GET /v1/connections/"))
	}
	resp, err := bridgeDo(t, c, http.MethodGet, "/item")
	if err != nil || resp.StatusCode != 200 || f.count("GET /v1/bridge/") != 2 {
		t.Fatalf("GET through the Bridge: %v, %v after %d requests", resp, err, f.count("GET /v1/bridge/"))
	}

	if _, err := c.Refresh(context.Background(), "conn_1"); err == nil || f.count("POST /v1/refresh/") != 1 {
		t.Fatalf("POST /v1/refresh: %v after %d requests", err, f.count("POST /v1/refresh/"))
	}
	if _, err := bridgeDo(t, c, http.MethodPost, "/item"); err == nil || f.count("POST /v1/bridge/") != 1 {
		t.Fatalf("POST through the Bridge: %v after %d requests", err, f.count("POST /v1/bridge/"))
	}
}

func TestACallThatTimesOutIsNotRetried(t *testing.T) {
	f := newFakeNexus(t)
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) { <-r.Context().Done() } // no answer until the client leaves

	// The client's timeout of one attempt.
	_, err := defaultRetries(t, f, WithTimeout(100*time.Millisecond)).Connection(context.Background(), "conn_1")
	if !errors.Is(err, context.DeadlineExceeded) || f.count("GET /v1/connections/") != 1 {
		t.Fatalf("WithTimeout: %v after %d requests", err, f.count("GET /v1/connections/"))
	}
	// The caller's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = defaultRetries(t, f, WithTimeout(0)).Connection(ctx, "conn_1")
	if !errors.Is(err, context.DeadlineExceeded) || f.count("GET /v1/connections/") != 2 {
		t.Fatalf("the caller's deadline: %v after %d requests", err, f.count("GET /v1/connections/"))
	}
}
