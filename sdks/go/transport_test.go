package nexus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// provider is a loopback API that accepts one credential at a time.
type provider struct {
	srv    *httptest.Server
	accept atomic.Value // func(*http.Request) bool
	hits   int64
	bodies chan string
}

func newProvider(t *testing.T, accept func(*http.Request) bool) *provider {
	p := &provider{bodies: make(chan string, 100)}
	p.accept.Store(accept)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&p.hits, 1)
		body, _ := io.ReadAll(r.Body)
		if len(body) > 0 {
			p.bodies <- string(body)
		}
		if !p.accept.Load().(func(*http.Request) bool)(r) {
			w.WriteHeader(401)
			return
		}
		fmt.Fprintf(w, "ok %s", r.URL.RequestURI())
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func strategyToken(strategy map[string]string, creds map[string]string) map[string]interface{} {
	return map[string]interface{}{"strategy": strategy, "credentials": creds, "expires_at": nil}
}

func get(t *testing.T, h *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := h.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTransportAppliesEachStrategy(t *testing.T) {
	cases := []struct {
		name   string
		token  map[string]interface{}
		accept func(*http.Request) bool
		path   string
	}{
		{"oauth2 bearer", bearerToken("tok-abc", time.Now().Add(time.Hour)),
			func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer tok-abc" }, "/user"},
		{"api_key header with prefix", strategyToken(map[string]string{"type": "api_key", "in": "header", "name": "X-Api-Token", "prefix": "Token "}, map[string]string{"api_key": "sk-123"}),
			func(r *http.Request) bool { return r.Header.Get("X-Api-Token") == "Token sk-123" }, "/v1/things"},
		{"api_key query with prefix", strategyToken(map[string]string{"type": "api_key", "in": "query", "name": "key", "prefix": "pre_"}, map[string]string{"api_key": "sk 123"}),
			func(r *http.Request) bool {
				q := r.URL.Query()
				return q.Get("key") == "pre_sk 123" && len(q["key"]) == 1 && q.Get("page") == "2"
			}, "/v1/things?key=caller-value&page=2"},
		{"basic_auth", strategyToken(map[string]string{"type": "basic_auth"}, map[string]string{"username": "AC1", "password": "pw:1"}),
			func(r *http.Request) bool { u, p, ok := r.BasicAuth(); return ok && u == "AC1" && p == "pw:1" }, "/2010-04-01/Accounts"},
		{"aws_sigv4 with session token", strategyToken(map[string]string{"type": "aws_sigv4", "region": "eu-west-1", "service": "execute-api"},
			map[string]string{"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session_token": "sess-tok"}),
			func(r *http.Request) bool {
				return verifySigV4(r, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "sess-tok")
			}, "/prod/items?b=2&a=1"},
	}
	for _, tc := range cases {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNexus(t)
			f.token = func(w http.ResponseWriter, r *http.Request, n int64) { writeJSON(w, 200, tc.token) }
			p := newProvider(t, tc.accept)
			status, body := get(t, f.client(t).HTTPClient("conn_1"), p.srv.URL+tc.path)
			if status != 200 {
				t.Fatalf("provider answered %d %s", status, body)
			}
		})
	}
}

// verifySigV4 recomputes the signature from the request as it arrived, as AWS does.
func verifySigV4(r *http.Request, akid, secret, token string) bool {
	authz := r.Header.Get("Authorization")
	if r.Header.Get("X-Amz-Security-Token") != token || !strings.HasPrefix(authz, "AWS4-HMAC-SHA256 Credential="+akid+"/") {
		return false
	}
	signed := between(authz, "SignedHeaders=", ",")
	if !strings.Contains(signed, "x-amz-security-token") || !strings.Contains(signed, "host") {
		return false
	}
	var headers [][2]string
	for _, name := range strings.Split(signed, ";") {
		if name == "host" {
			headers = append(headers, [2]string{"host", r.Host})
			continue
		}
		for _, v := range r.Header.Values(name) {
			headers = append(headers, [2]string{name, v})
		}
	}
	at, err := time.Parse(amzDateFormat, r.Header.Get("X-Amz-Date"))
	if err != nil {
		return false
	}
	scope := strings.Split(between(authz, "Credential=", ","), "/")
	body, _ := io.ReadAll(r.Body)
	sum := sha256.Sum256(body)
	res := signV4(sigV4Request{method: r.Method, path: r.URL.EscapedPath(), rawQuery: r.URL.RawQuery, headers: headers, payloadHash: hex.EncodeToString(sum[:])},
		akid, secret, scope[2], scope[3], at, nil)
	return res.authorization == authz
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}

// A provider 401: one refresh at Nexus, a new token, the request (with its body) sent once more.
func TestAProvider401RefreshesOnceAndReplaysTheRequest(t *testing.T) {
	f := newFakeNexus(t)
	p := newProvider(t, func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer tok-2" })
	h := f.client(t).HTTPClient("conn_1")
	resp, err := h.Post(p.srv.URL+"/items", "text/plain", strings.NewReader("the body"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || f.count("POST /v1/refresh/") != 1 || f.count("GET /v1/token/") != 2 || atomic.LoadInt64(&p.hits) != 2 {
		t.Fatalf("status %d, refreshes %d, token reads %d, provider hits %d", resp.StatusCode, f.count("POST /v1/refresh/"), f.count("GET /v1/token/"), p.hits)
	}
	if a, b := <-p.bodies, <-p.bodies; a != "the body" || b != "the body" {
		t.Fatalf("bodies %q %q", a, b)
	}
}

func TestAStill401AfterTheRefreshIsReturnedWithoutAnotherRetry(t *testing.T) {
	f := newFakeNexus(t)
	p := newProvider(t, func(r *http.Request) bool { return false })
	status, _ := get(t, f.client(t).HTTPClient("conn_1"), p.srv.URL+"/x")
	if status != 401 || atomic.LoadInt64(&p.hits) != 2 || f.count("POST /v1/refresh/") != 1 {
		t.Fatalf("status %d after %d hits and %d refreshes", status, p.hits, f.count("POST /v1/refresh/"))
	}
}

func TestABodyThatCannotBeReplayedIsNotRetried(t *testing.T) {
	f := newFakeNexus(t)
	p := newProvider(t, func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer tok-2" })
	req, _ := http.NewRequest("POST", p.srv.URL+"/x", io.NopCloser(strings.NewReader("stream")))
	req.GetBody = nil
	resp, err := f.client(t).HTTPClient("conn_1").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || atomic.LoadInt64(&p.hits) != 1 || f.count("POST /v1/refresh/") != 0 {
		t.Fatalf("status %d after %d hits and %d refreshes", resp.StatusCode, p.hits, f.count("POST /v1/refresh/"))
	}
}

func TestARefreshTheProviderRejectsFailsTheRequestWithAttentionRequired(t *testing.T) {
	f := newFakeNexus(t)
	f.refresh = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeProblem(w, 409, "connection_not_active", map[string]interface{}{"status": "attention_required", "connection_id": "conn_1", "error": "invalid_grant"})
	}
	p := newProvider(t, func(r *http.Request) bool { return false })
	_, err := f.client(t).HTTPClient("conn_1").Get(p.srv.URL + "/x")
	var ar *AttentionRequiredError
	if !errors.As(err, &ar) || ar.ConnectionID != "conn_1" || ar.Reason != "invalid_grant" {
		t.Fatalf("got %v", err)
	}
}

// Fifty requests rejected with the same token share one refresh.
func TestConcurrent401sShareOneRefresh(t *testing.T) {
	f := newFakeNexus(t)
	const n = 50
	var rejected int64
	allIn := make(chan struct{})
	p := newProvider(t, func(r *http.Request) bool {
		if r.Header.Get("Authorization") == "Bearer tok-1" {
			// Answer no 401 before all fifty requests have arrived with the same token.
			if atomic.AddInt64(&rejected, 1) == n {
				close(allIn)
			}
			<-allIn
			return false
		}
		return true
	})
	c := f.client(t)
	if _, err := c.Credentials(context.Background(), "conn_1"); err != nil {
		t.Fatal(err)
	}
	h := c.HTTPClient("conn_1")
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i], _ = get(t, h, p.srv.URL+"/x")
		}(i)
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("request %d got %d", i, s)
		}
	}
	if f.count("POST /v1/refresh/") != 1 || f.count("GET /v1/token/") != 2 {
		t.Fatalf("refreshes = %d, token reads = %d, want 1 and 2", f.count("POST /v1/refresh/"), f.count("GET /v1/token/"))
	}
}

func TestTheCredentialDoesNotFollowARedirectToAnotherHost(t *testing.T) {
	f := newFakeNexus(t)
	var leaked int64
	other := newProvider(t, func(r *http.Request) bool {
		if r.Header.Get("Authorization") != "" {
			atomic.AddInt64(&leaked, 1)
		}
		return true
	})
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.srv.URL+"/stolen", http.StatusFound)
	}))
	defer p.Close()
	status, _ := get(t, f.client(t).HTTPClient("conn_1"), p.URL+"/x")
	if status != http.StatusFound || atomic.LoadInt64(&leaked) != 0 || atomic.LoadInt64(&other.hits) != 0 {
		t.Fatalf("status %d, other host hits %d (with credential %d)", status, other.hits, leaked)
	}
}

func TestBridgeModeSendsThePathAndQueryToNexusWithTheAPIKey(t *testing.T) {
	f := newFakeNexus(t)
	var gotPath, gotQuery, gotAuth string
	f.other = func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/bridge/") {
			writeProblem(w, 404, "not_found", nil)
			return
		}
		gotPath, gotQuery, gotAuth = r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization")
		switch {
		case strings.HasSuffix(r.URL.Path, "/gone"):
			writeProblem(w, 409, "connection_not_active", map[string]interface{}{"status": "attention_required", "connection_id": "conn_1", "error": "invalid_grant"})
		case strings.HasSuffix(r.URL.Path, "/provider-problem"):
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(422)
			io.WriteString(w, `{"type":"https://provider.example/errors/bad","title":"Bad"}`)
		default:
			io.WriteString(w, "bridged")
		}
	}
	h := f.client(t).HTTPClient("conn_1", ViaBridge())
	status, body := get(t, h, "http://provider.invalid/repos/a%2Fb/issues?state=open")
	if status != 200 || body != "bridged" || gotPath != "/v1/bridge/conn_1/repos/a%2Fb/issues" || gotQuery != "state=open" || gotAuth != "" {
		t.Fatalf("%d %q path %q query %q", status, body, gotPath, gotQuery)
	}
	if f.count("GET /v1/token/") != 0 {
		t.Fatal("bridge mode read the credential")
	}
	// A URL under BridgeURL is sent as it is.
	c := f.client(t)
	status, _ = get(t, h, c.BridgeURL("conn_1")+"/whoami?x=1")
	if status != 200 || gotPath != "/v1/bridge/conn_1/whoami" || gotQuery != "x=1" {
		t.Fatalf("BridgeURL: %d path %q query %q", status, gotPath, gotQuery)
	}
	_, err := h.Get("http://provider.invalid/gone")
	var ar *AttentionRequiredError
	if !errors.As(err, &ar) || ar.ConnectionID != "conn_1" {
		t.Fatalf("Nexus's 409 through the Bridge: %v", err)
	}
	status, body = get(t, h, "http://provider.invalid/provider-problem")
	if status != 422 || !strings.Contains(body, "provider.example") {
		t.Fatalf("the provider's own problem: %d %s", status, body)
	}
}

// bridgeHop is one request that reached the fake Bridge.
type bridgeHop struct{ Method, URI, Key, Body string }

// recordBridge makes f's Bridge record each request and answer it with answer.
func recordBridge(f *fakeNexus, answer func(w http.ResponseWriter, r *http.Request)) func() []bridgeHop {
	var mu sync.Mutex
	var hops []bridgeHop
	f.other = func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		hops = append(hops, bridgeHop{r.Method, r.URL.RequestURI(), r.Header.Get("X-API-Key"), string(body)})
		mu.Unlock()
		answer(w, r)
	}
	return func() []bridgeHop {
		mu.Lock()
		defer mu.Unlock()
		return append([]bridgeHop(nil), hops...)
	}
}

func redirectTo(w http.ResponseWriter, status int, location string) {
	w.Header().Set("Location", location)
	w.WriteHeader(status)
}

func TestBridgeModeFollowsARedirectTheBridgeRewroteToItsOwnPathWithTheAPIKeyAndNothingReachesTheProvider(t *testing.T) {
	f := newFakeNexus(t)
	provider := newProvider(t, func(*http.Request) bool { return true })
	hops := recordBridge(f, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/bridge/conn_1/repos/old/name":
			redirectTo(w, http.StatusMovedPermanently, "/v1/bridge/conn_1/repos/new/name?page=2")
		case "/v1/bridge/conn_1/repos/new/name":
			redirectTo(w, http.StatusFound, "part-2") // relative to the Bridge URL that answered
		case "/v1/bridge/conn_1/repos/new/part-2":
			redirectTo(w, http.StatusTemporaryRedirect, f.srv.URL+"/v1/bridge/conn_1")
		default:
			fmt.Fprintf(w, "at %s", r.URL.RequestURI())
		}
	})
	c := f.client(t)
	h := c.HTTPClient("conn_1", ViaBridge())
	// Written as a Bridge URL, as a provider URL (mapped to the Bridge, and the Locations still resolved against the
	// Bridge), and through a Transport in an http.Client of the caller's own.
	for _, tc := range []struct {
		name string
		h    *http.Client
		url  string
	}{
		{"a Bridge URL", h, c.BridgeURL("conn_1") + "/repos/old/name"},
		{"a provider URL", h, provider.srv.URL + "/repos/old/name"},
		{"the caller's http.Client", &http.Client{Transport: c.Transport("conn_1", ViaBridge())}, provider.srv.URL + "/repos/old/name"},
	} {
		before := len(hops())
		status, body := get(t, tc.h, tc.url)
		if status != 200 || body != "at /v1/bridge/conn_1" {
			t.Fatalf("%s: %d %q", tc.name, status, body)
		}
		got := hops()[before:]
		want := []string{"/v1/bridge/conn_1/repos/old/name", "/v1/bridge/conn_1/repos/new/name?page=2", "/v1/bridge/conn_1/repos/new/part-2", "/v1/bridge/conn_1"}
		if len(got) != len(want) {
			t.Fatalf("%s: hops %v", tc.name, got)
		}
		for i, hop := range got {
			if hop.URI != want[i] || hop.Key != testAPIKey {
				t.Fatalf("%s: hop %d = %+v, want %s with the key", tc.name, i, hop, want[i])
			}
		}
	}
	if n := atomic.LoadInt64(&provider.hits); n != 0 {
		t.Fatalf("the provider's host got %d requests", n)
	}
}

func TestBridgeModeHandsBackARedirectAnywhereButThisConnectionsBridgeOnNexus(t *testing.T) {
	f := newFakeNexus(t)
	// The provider's API is based at {provider}/api; its host outside the base path is where the Bridge passes a
	// Location through as written. Mapped to the Bridge, {provider}/other would become {provider}/api/other.
	provider := newProvider(t, func(*http.Request) bool { return true })
	nexusPort := f.srv.URL[strings.LastIndex(f.srv.URL, ":")+1:]
	locations := []string{
		provider.srv.URL + "/other",                             // the provider's host outside its API
		provider.srv.URL + "/v1/bridge/conn_1/x",                // a Bridge path on another origin
		"http://localhost:" + nexusPort + "/v1/bridge/conn_1/x", // Nexus's server by another host name
		"http://user:pw@127.0.0.1:" + nexusPort + "/v1/bridge/conn_1/x",
		"/other/place",                      // on Nexus, not the Bridge
		"/v1/bridge/conn_1x/y",              // another connection whose id starts with this one's
		"/v1/bridge/conn_2/y",               // another connection
		"/v1/bridge/conn_1/../conn_2/y",     // dot segments out of the Bridge
		"/v1/bridge/conn_1/%2e%2e/conn_2/y", // escaped ones
	}
	var next int64
	hops := recordBridge(f, func(w http.ResponseWriter, r *http.Request) {
		redirectTo(w, http.StatusFound, locations[atomic.AddInt64(&next, 1)-1])
	})
	c := f.client(t)
	h := c.HTTPClient("conn_1", ViaBridge())
	for i, location := range locations {
		url := c.BridgeURL("conn_1") + "/start"
		if i%2 == 1 {
			url = provider.srv.URL + "/api/start" // a provider URL the caller wrote: mapped to the Bridge
		}
		resp, err := h.Get(url)
		if err != nil {
			t.Fatalf("%s: %v", location, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != location {
			t.Fatalf("%s: %d Location %q", location, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if got := hops(); len(got) != len(locations) {
		t.Fatalf("the Bridge got %d requests, want one per redirect: %v", len(got), got)
	}
	if n := atomic.LoadInt64(&provider.hits); n != 0 {
		t.Fatalf("the provider's host got %d requests", n)
	}
	if f.count("GET /other/place") != 0 || f.count("GET /v1/bridge/conn_2/y") != 0 {
		t.Fatal("a redirect outside the Bridge was followed on Nexus")
	}

	// An http.Client of the caller's own follows redirects: the Transport refuses the hop instead of mapping it.
	atomic.StoreInt64(&next, 0)
	own := &http.Client{Transport: c.Transport("conn_1", ViaBridge())}
	_, err := own.Get(c.BridgeURL("conn_1") + "/start")
	if err == nil || !strings.Contains(err.Error(), "not followed") || !strings.Contains(err.Error(), "ErrUseLastResponse") {
		t.Fatalf("the caller's http.Client: %v", err)
	}
	if n := atomic.LoadInt64(&provider.hits); n != 0 || len(hops()) != len(locations)+1 {
		t.Fatalf("the refused hop was sent: provider %d, Bridge %d", n, len(hops()))
	}
}

func TestBridgeModeFollowsA307WithItsBodyAndA303AsAGet(t *testing.T) {
	f := newFakeNexus(t)
	hops := recordBridge(f, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/bridge/conn_1/307":
			redirectTo(w, http.StatusTemporaryRedirect, "/v1/bridge/conn_1/landed")
		case "/v1/bridge/conn_1/303":
			redirectTo(w, http.StatusSeeOther, "/v1/bridge/conn_1/landed")
		default:
			io.WriteString(w, "landed")
		}
	})
	h := f.client(t).HTTPClient("conn_1", ViaBridge())
	for _, status := range []string{"307", "303"} {
		resp, err := h.Post("http://provider.invalid/"+status, "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := hops()
	want := []bridgeHop{
		{"POST", "/v1/bridge/conn_1/307", testAPIKey, "payload"}, {"POST", "/v1/bridge/conn_1/landed", testAPIKey, "payload"},
		{"POST", "/v1/bridge/conn_1/303", testAPIKey, "payload"}, {"GET", "/v1/bridge/conn_1/landed", testAPIKey, ""},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("hops %+v, want %+v", got, want)
	}
}

// methodHop is one request that reached a provider: its method, path, body and whether it carried the credential.
type methodHop struct {
	Method, Path, Body string
	Credentialed       bool
}

// redirectingProvider answers /30x/... with that redirect to /landed (and /hop/N with a 302 to /hop/N+1 up to
// /hop/{last}), records every request, and needs Bearer tok-1 on each.
func redirectingProvider(t *testing.T, last int) (*httptest.Server, func() []methodHop) {
	var mu sync.Mutex
	var hops []methodHop
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		hops = append(hops, methodHop{r.Method, r.URL.Path, string(body), r.Header.Get("Authorization") == "Bearer tok-1"})
		mu.Unlock()
		var n int
		switch {
		case r.URL.Path == "/landed":
			io.WriteString(w, "landed")
		case scanInt(r.URL.Path, "/hop/%d", &n) && n < last:
			redirectTo(w, http.StatusFound, fmt.Sprintf("/hop/%d", n+1))
		case scanInt(r.URL.Path, "/hop/%d", &n):
			io.WriteString(w, "end of the chain")
		case scanInt(r.URL.Path, "/%d", &n):
			redirectTo(w, n, "/landed")
		default:
			w.WriteHeader(404)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []methodHop {
		mu.Lock()
		defer mu.Unlock()
		return append([]methodHop(nil), hops...)
	}
}

func scanInt(s, format string, v *int) bool {
	n, _ := fmt.Sscanf(s, format, v)
	return n == 1
}

func TestHTTPClientFollowsRedirectsWithFetchsMethodRulesAPutStaysAPutAfterA301(t *testing.T) {
	f := newFakeNexus(t)
	provider, hops := redirectingProvider(t, 0)
	h := f.client(t).HTTPClient("conn_1")
	for _, c := range []struct {
		method string
		status int
		want   string // the landing hop's method, and whether the body came with it
	}{
		{"PUT", 301, "PUT payload"}, {"PUT", 302, "PUT payload"}, {"DELETE", 301, "DELETE payload"}, {"PATCH", 302, "PATCH payload"},
		{"POST", 301, "GET "}, {"POST", 302, "GET "}, {"PUT", 303, "GET "}, {"POST", 303, "GET "}, {"DELETE", 303, "GET "},
		{"POST", 307, "POST payload"}, {"PUT", 308, "PUT payload"}, {"HEAD", 303, "HEAD "}, {"GET", 301, "GET "},
	} {
		before := len(hops())
		body := io.Reader(strings.NewReader("payload"))
		if c.method == "HEAD" || c.method == "GET" {
			body = nil
		}
		req, _ := http.NewRequest(c.method, fmt.Sprintf("%s/%d", provider.URL, c.status), body)
		req.Header.Set("Content-Type", "text/plain")
		resp, err := h.Do(req)
		if err != nil {
			t.Fatalf("%s %d: %v", c.method, c.status, err)
		}
		resp.Body.Close()
		got := hops()[before:]
		if resp.StatusCode != 200 || len(got) != 2 || got[1].Path != "/landed" {
			t.Fatalf("%s %d: status %d, hops %+v", c.method, c.status, resp.StatusCode, got)
		}
		if landed := got[1].Method + " " + got[1].Body; landed != c.want || !got[0].Credentialed || !got[1].Credentialed {
			t.Fatalf("%s after a %d landed as %+v, want %q with the credential on both hops", c.method, c.status, got[1], c.want)
		}
	}
}

func TestHTTPClientFollows20RedirectsAndFailsOnThe21st(t *testing.T) {
	f := newFakeNexus(t)
	for _, tc := range []struct {
		last    int // the chain /hop/0 → ... → /hop/{last}: last redirects
		wantErr bool
	}{{20, false}, {21, true}} {
		provider, hops := redirectingProvider(t, tc.last)
		resp, err := f.client(t).HTTPClient("conn_1").Get(provider.URL + "/hop/0")
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "stopped after 20 redirects") {
				t.Fatalf("%d redirects: %v", tc.last, err)
			}
			if n := len(hops()); n != 21 {
				t.Fatalf("%d redirects: %d requests sent, want 21", tc.last, n)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%d redirects: %v", tc.last, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "end of the chain" || len(hops()) != 21 || resp.Request.URL.Path != "/hop/20" {
			t.Fatalf("%d redirects: %q after %d requests, final URL %s", tc.last, b, len(hops()), resp.Request.URL)
		}
	}
}

func TestBridgeModeKeepsAPutAndItsBodyAfterA301AndA302(t *testing.T) {
	f := newFakeNexus(t)
	hops := recordBridge(f, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/bridge/conn_1/301":
			redirectTo(w, http.StatusMovedPermanently, "/v1/bridge/conn_1/landed")
		case "/v1/bridge/conn_1/302":
			redirectTo(w, http.StatusFound, "/v1/bridge/conn_1/landed")
		default:
			io.WriteString(w, "landed")
		}
	})
	h := f.client(t).HTTPClient("conn_1", ViaBridge())
	for _, status := range []string{"301", "302"} {
		req, _ := http.NewRequest(http.MethodPut, "http://provider.invalid/"+status, strings.NewReader("payload"))
		resp, err := h.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := hops()
	want := []bridgeHop{
		{"PUT", "/v1/bridge/conn_1/301", testAPIKey, "payload"}, {"PUT", "/v1/bridge/conn_1/landed", testAPIKey, "payload"},
		{"PUT", "/v1/bridge/conn_1/302", testAPIKey, "payload"}, {"PUT", "/v1/bridge/conn_1/landed", testAPIKey, "payload"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("hops %+v, want %+v", got, want)
	}
}

// credentialStrategies are the connection kinds whose credential the Transport applies, each with what shows it on a
// request as it arrived (verified in full for SigV4).
var credentialStrategies = []struct {
	name    string
	token   map[string]interface{}
	carries func(*http.Request) bool
}{
	{"oauth2 bearer", bearerToken("tok-abc", time.Now().Add(time.Hour)),
		func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer tok-abc" }},
	{"api_key header", strategyToken(map[string]string{"type": "api_key", "in": "header", "name": "X-Api-Token"}, map[string]string{"api_key": "sk-123"}),
		func(r *http.Request) bool { return r.Header.Get("X-Api-Token") == "sk-123" }},
	{"api_key query", strategyToken(map[string]string{"type": "api_key", "in": "query", "name": "key"}, map[string]string{"api_key": "sk-123"}),
		func(r *http.Request) bool { return r.URL.Query().Get("key") == "sk-123" }},
	{"basic_auth", strategyToken(map[string]string{"type": "basic_auth"}, map[string]string{"username": "AC1", "password": "pw:1"}),
		func(r *http.Request) bool { u, p, ok := r.BasicAuth(); return ok && u == "AC1" && p == "pw:1" }},
	{"aws_sigv4", strategyToken(map[string]string{"type": "aws_sigv4", "region": "eu-west-1", "service": "execute-api"},
		map[string]string{"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session_token": "sess-tok"}),
		func(r *http.Request) bool {
			return verifySigV4(r, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "sess-tok")
		}},
}

// arrival is what a loopback server saw of one request: its path, whether it carried any part of a credential
// (Authorization, the API key header or query parameter, X-Amz-*), whether it carried the connection's credential in
// full (verified), and its Authorization header.
type arrival struct {
	path          string
	anyCredential bool
	credential    bool
	authorization string
}

// recordingServer is a loopback server that records every request's arrival and answers with answer.
func recordingServer(t *testing.T, carries func(*http.Request) bool, answer func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, func() []arrival) {
	var mu sync.Mutex
	var got []arrival
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen := r.Header.Get("Authorization") != "" || r.Header.Get("X-Api-Token") != "" || r.URL.Query().Has("key")
		for name := range r.Header {
			seen = seen || strings.HasPrefix(strings.ToLower(name), "x-amz-")
		}
		a := arrival{path: r.URL.Path, anyCredential: seen, credential: carries(r), authorization: r.Header.Get("Authorization")}
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []arrival {
		mu.Lock()
		defer mu.Unlock()
		return append([]arrival(nil), got...)
	}
}

func TestATransportInTheCallersOwnHTTPClientSendsARedirectToAnotherOriginWithoutTheCredential(t *testing.T) {
	for _, tc := range credentialStrategies {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNexus(t)
			f.token = func(w http.ResponseWriter, r *http.Request, n int64) { writeJSON(w, 200, tc.token) }
			// Another origin (the same loopback host on another port), which redirects once more on itself (a hop
			// whose previous hop is on its origin, but not the request's first), then answers.
			other, otherGot := recordingServer(t, tc.carries, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/hop" {
					redirectTo(w, http.StatusFound, "/landing")
					return
				}
				io.WriteString(w, "landed")
			})
			p, providerGot := recordingServer(t, tc.carries, func(w http.ResponseWriter, r *http.Request) {
				redirectTo(w, http.StatusFound, other.URL+"/hop")
			})
			h := &http.Client{Transport: f.client(t).Transport("conn_1")} // follows redirects as net/http does

			status, body := get(t, h, p.URL+"/start")

			if status != 200 || body != "landed" {
				t.Fatalf("answer %d %q, want the other origin's 200", status, body)
			}
			if got := providerGot(); len(got) != 1 || !got[0].credential {
				t.Fatalf("the provider got %+v, want one request with the credential", got)
			}
			got := otherGot()
			if len(got) != 2 || got[0].path != "/hop" || got[1].path != "/landing" {
				t.Fatalf("the other origin got %+v, want /hop then /landing", got)
			}
			for _, a := range got {
				if a.anyCredential {
					t.Fatalf("the other origin got a credential on %s: %+v", a.path, a)
				}
			}
		})
	}
}

func TestATransportInTheCallersOwnHTTPClientAppliesTheCredentialAnewOnASameOriginRedirect(t *testing.T) {
	for _, tc := range credentialStrategies {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNexus(t)
			f.token = func(w http.ResponseWriter, r *http.Request, n int64) { writeJSON(w, 200, tc.token) }
			p, got := recordingServer(t, tc.carries, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/start" {
					redirectTo(w, http.StatusMovedPermanently, "/next")
					return
				}
				io.WriteString(w, "next")
			})
			h := &http.Client{Transport: f.client(t).Transport("conn_1")}

			status, body := get(t, h, p.URL+"/start")

			if status != 200 || body != "next" {
				t.Fatalf("answer %d %q", status, body)
			}
			hops := got()
			if len(hops) != 2 || hops[1].path != "/next" || !hops[0].credential || !hops[1].credential {
				t.Fatalf("the provider got %+v, want /start and /next, each with the credential", hops)
			}
			if tc.name == "aws_sigv4" && hops[0].authorization == hops[1].authorization {
				t.Fatal("the redirect hop replayed the first request's signature instead of being signed for its own path")
			}
		})
	}
}

func TestATransportInTheCallersOwnHTTPClientAppliesTheCredentialToAHopBackOnTheRequestsOriginOnly(t *testing.T) {
	f := newFakeNexus(t)
	tc := credentialStrategies[0]
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) { writeJSON(w, 200, tc.token) }
	var providerURL string
	other, otherGot := recordingServer(t, tc.carries, func(w http.ResponseWriter, r *http.Request) {
		redirectTo(w, http.StatusTemporaryRedirect, providerURL+"/back")
	})
	p, providerGot := recordingServer(t, tc.carries, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			redirectTo(w, http.StatusFound, other.URL+"/away")
			return
		}
		io.WriteString(w, "back")
	})
	providerURL = p.URL
	h := &http.Client{Transport: f.client(t).Transport("conn_1")}

	status, body := get(t, h, p.URL+"/start")

	if status != 200 || body != "back" {
		t.Fatalf("answer %d %q", status, body)
	}
	if got := otherGot(); len(got) != 1 || got[0].anyCredential {
		t.Fatalf("the other origin got %+v, want one request without a credential", got)
	}
	if got := providerGot(); len(got) != 2 || !got[0].credential || !got[1].credential {
		t.Fatalf("the provider got %+v, want /start and /back with the credential", got)
	}
}

func TestATransportWhoseBaseAnswersWithoutTheRedirectChainStillKeepsTheCredentialOffAnotherOrigin(t *testing.T) {
	bases := map[string]func(resp *http.Response){
		"no Request on the response": func(resp *http.Response) { resp.Request = nil },
		"a Request that starts a chain anew": func(resp *http.Response) {
			resp.Request = &http.Request{Method: resp.Request.Method, URL: resp.Request.URL, Header: http.Header{}}
		},
	}
	for name, mangle := range bases {
		mangle := mangle
		t.Run(name, func(t *testing.T) {
			f := newFakeNexus(t)
			tc := credentialStrategies[1]
			f.token = func(w http.ResponseWriter, r *http.Request, n int64) { writeJSON(w, 200, tc.token) }
			other, otherGot := recordingServer(t, tc.carries, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/hop" {
					redirectTo(w, http.StatusFound, "/landing")
					return
				}
				io.WriteString(w, "landed")
			})
			p, _ := recordingServer(t, tc.carries, func(w http.ResponseWriter, r *http.Request) { redirectTo(w, http.StatusFound, other.URL+"/hop") })
			base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := http.DefaultTransport.RoundTrip(r)
				if err == nil {
					mangle(resp)
				}
				return resp, err
			})
			h := &http.Client{Transport: f.client(t).Transport("conn_1", WithBase(base))}

			status, body := get(t, h, p.URL+"/start")

			if status != 200 || body != "landed" {
				t.Fatalf("answer %d %q", status, body)
			}
			for _, a := range otherGot() {
				if a.anyCredential {
					t.Fatalf("the other origin got a credential on %s", a.path)
				}
			}
		})
	}
}
