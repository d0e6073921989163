package nexus

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testAPIKey = "nxk_test-api-key-0123456789"

// fakeNexus is a loopback stand-in for the routes the SDK calls. Each route's answer is a function the test sets;
// every call is counted.
type fakeNexus struct {
	srv      *httptest.Server
	mu       sync.Mutex
	calls    map[string]*int64
	token    func(w http.ResponseWriter, r *http.Request, n int64)
	refresh  func(w http.ResponseWriter, r *http.Request, n int64)
	conn     func(w http.ResponseWriter, r *http.Request, n int64)
	other    func(w http.ResponseWriter, r *http.Request)
	gotKeys  []string
	tokenGen int64
}

func newFakeNexus(t *testing.T) *fakeNexus {
	t.Helper()
	f := &fakeNexus{calls: map[string]*int64{}}
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeJSON(w, 200, bearerToken(fmt.Sprintf("tok-%d", atomic.AddInt64(&f.tokenGen, 1)), time.Now().Add(time.Hour)))
	}
	f.refresh = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeJSON(w, 200, map[string]interface{}{"connection_id": "conn_1", "status": "active"})
	}
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeJSON(w, 200, map[string]interface{}{"connection_id": "conn_1", "status": "active", "provider": "p", "workspace_id": "ws",
			"scopes": []string{"a"}, "created_at": 1763790000, "updated_at": 1763790004, "expires_at": 1763793604})
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.gotKeys = append(f.gotKeys, r.Header.Get("X-API-Key"))
		f.mu.Unlock()
		if r.Header.Get("X-API-Key") != testAPIKey {
			writeProblem(w, 401, "invalid_api_key", nil)
			return
		}
		route := r.Method + " " + routeOf(r.URL.Path)
		n := atomic.AddInt64(f.counter(route), 1)
		switch route {
		case "GET /v1/token/":
			f.token(w, r, n)
		case "POST /v1/refresh/":
			f.refresh(w, r, n)
		case "GET /v1/connections/":
			f.conn(w, r, n)
		default:
			if f.other != nil {
				f.other(w, r)
				return
			}
			writeProblem(w, 404, "not_found", nil)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func routeOf(path string) string {
	for _, p := range []string{"/v1/token/", "/v1/refresh/", "/v1/connections/", "/v1/bridge/"} {
		if strings.HasPrefix(path, p) {
			return p
		}
	}
	return path
}

func (f *fakeNexus) counter(route string) *int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls[route]
	if c == nil {
		c = new(int64)
		f.calls[route] = c
	}
	return c
}

func (f *fakeNexus) count(route string) int64 { return atomic.LoadInt64(f.counter(route)) }

func (f *fakeNexus) client(t *testing.T, opts ...Option) *Client {
	t.Helper()
	all := append([]Option{WithBaseURL(f.srv.URL), WithAPIKey(testAPIKey),
		WithRetryPolicy(RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 50 * time.Millisecond})}, opts...)
	c, err := NewClient(all...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func bearerToken(token string, exp time.Time) map[string]interface{} {
	return map[string]interface{}{"strategy": map[string]string{"type": "oauth2"},
		"credentials": map[string]interface{}{"access_token": token, "expires_at": exp.Unix()}, "expires_at": exp.Unix()}
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, code string, ext map[string]interface{}) {
	body := map[string]interface{}{"type": "urn:nexus:problem:" + code, "title": http.StatusText(status), "status": status, "code": code}
	for k, v := range ext {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
