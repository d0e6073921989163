package nexus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// Benchmarks (bench/results/sdk-go.md): applying a cached credential to a request, per strategy and through the
// RoundTripper, and a cold fetch (GET /v1/token on a loopback server, parsing, caching).
//
//	go test -run '^$' -bench . -benchmem

func benchClient(b *testing.B, token map[string]interface{}) *Client {
	b.Helper()
	body, _ := json.Marshal(token)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
	c, err := NewClient(WithBaseURL(srv.URL), WithAPIKey(testAPIKey))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

var benchTokens = map[string]map[string]interface{}{
	"oauth2": bearerToken("gho_16C7e42F292c6912E7710c838347Ae178B4a", time.Now().Add(time.Hour)),
	"api_key_header": strategyToken(map[string]string{"type": "api_key", "in": "header", "name": "Authorization", "prefix": "Bearer "},
		map[string]string{"api_key": "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"}),
	"api_key_query": strategyToken(map[string]string{"type": "api_key", "in": "query", "name": "key"},
		map[string]string{"api_key": "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234"}),
	"basic_auth": strategyToken(map[string]string{"type": "basic_auth"}, map[string]string{"username": "ACabcdef0123456789", "password": "your_auth_token_0123456789"}),
	"aws_sigv4": strategyToken(map[string]string{"type": "aws_sigv4", "region": "eu-west-1", "service": "execute-api"},
		map[string]string{"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session_token": "FwoGZXIvYXdzEXAMPLE"}),
}

// BenchmarkApplyCached: Client.Credentials (a cache hit) + Credentials.Apply on a GET request.
func BenchmarkApplyCached(b *testing.B) {
	for _, name := range []string{"oauth2", "api_key_header", "api_key_query", "basic_auth", "aws_sigv4"} {
		b.Run(name, func(b *testing.B) {
			c := benchClient(b, benchTokens[name])
			ctx := context.Background()
			if _, err := c.Credentials(ctx, "conn_1"); err != nil {
				b.Fatal(err)
			}
			req, _ := http.NewRequest("GET", "https://api.example.com/v1/items?page=2", nil)
			req.Header.Set("Accept", "application/json")
			b.ReportAllocs()
			b.ResetTimer()
			defer reportCPU(b, processCPU())
			for i := 0; i < b.N; i++ {
				req.URL.RawQuery = "page=2"
				creds, err := c.Credentials(ctx, "conn_1")
				if err != nil {
					b.Fatal(err)
				}
				if err := creds.Apply(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type cannedTransport struct{}

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: r}, nil
}

// BenchmarkTransportCached: Transport.RoundTrip with a cached credential, the provider replaced by a canned answer
// (the hook's own cost: clone the request, apply, inspect the status).
func BenchmarkTransportCached(b *testing.B) {
	for _, name := range []string{"oauth2", "aws_sigv4"} {
		b.Run(name, func(b *testing.B) {
			c := benchClient(b, benchTokens[name])
			t := c.Transport("conn_1", WithBase(cannedTransport{}))
			req, _ := http.NewRequest("GET", "https://api.example.com/v1/items?page=2", nil)
			if _, err := t.RoundTrip(req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			defer reportCPU(b, processCPU())
			for i := 0; i < b.N; i++ {
				resp, err := t.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkColdFetch: a cache miss: GET /v1/token over loopback HTTP (keep-alive), parse, cache.
func BenchmarkColdFetch(b *testing.B) {
	c := benchClient(b, benchTokens["oauth2"])
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, processCPU())
	for i := 0; i < b.N; i++ {
		c.cache.invalidate("conn_1")
		if _, err := c.Credentials(ctx, "conn_1"); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU adds cpu-ns/op: the process's CPU time over the loop per operation (for the cold fetch it includes
// the loopback server's side, which runs in this process).
func reportCPU(b *testing.B, start time.Duration) {
	if used := processCPU() - start; used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkColdFetchNexus: the same cold fetch against a real Nexus on loopback (an api_key connection; run it
// through ../scenario/run.sh, which starts Nexus and sets NEXUS_URL and NEXUS_ADMIN_API_KEY):
//
//	../scenario/run.sh go test -run '^$' -bench ColdFetchNexus -benchmem .
func BenchmarkColdFetchNexus(b *testing.B) {
	base, admin := os.Getenv("NEXUS_URL"), os.Getenv("NEXUS_ADMIN_API_KEY")
	if base == "" || admin == "" {
		b.Skip("NEXUS_URL and NEXUS_ADMIN_API_KEY are not set: run through ../scenario/run.sh")
	}
	ctx := context.Background()
	c, err := NewClient(WithBaseURL(base), WithAPIKey(admin)) // the bootstrap key may act for every workspace
	if err != nil {
		b.Fatal(err)
	}
	provider := fmt.Sprintf(`{"name":"bench-key-%d","auth_mode":"api_key","api_base_url":"http://127.0.0.1:9/api","api_key":{"in":"header","name":"X-Key"}}`, time.Now().UnixNano())
	var registered struct {
		Name string `json:"name"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/providers", nil, json.RawMessage(provider), &registered); err != nil {
		b.Fatal(err)
	}
	pending, err := c.RequestConnection(ctx, ConnectionRequest{WorkspaceID: "bench", ProviderName: registered.Name, ReturnURL: base + "/bench/return"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.SubmitCredentials(ctx, pending.ConnectionID, map[string]string{"api_key": "bench-key-value"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, processCPU())
	for i := 0; i < b.N; i++ {
		c.cache.invalidate(pending.ConnectionID)
		if _, err := c.Credentials(ctx, pending.ConnectionID); err != nil {
			b.Fatal(err)
		}
	}
}
