package nexus

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
)

// A 502/503/504 is retried only without a Nexus code (a proxy's answer) or with a transient one; Nexus's refusals
// (token_request_failed, redirect_refused, aws_assume_role_failed) come back after one attempt.
func TestOnlyTransientNexusCodesOf502503504AreRetried(t *testing.T) {
	for _, tc := range []struct {
		status   int
		code     string
		attempts int64
	}{
		{502, "token_request_failed", 1},
		{502, "redirect_refused", 1},
		{502, "aws_assume_role_failed", 1},
		{502, "upstream_unreachable", 3},
		{504, "upstream_timeout", 3},
		{503, "database_unavailable", 3},
		{503, "refresh_unavailable", 3},
		{503, "aws_sts_throttled", 3},
		{502, "", 3}, // no problem document: a proxy's 502
	} {
		f := newFakeNexus(t)
		f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
			if tc.code == "" {
				w.WriteHeader(tc.status)
				io.WriteString(w, "<html>Bad Gateway</html>")
				return
			}
			writeProblem(w, tc.status, tc.code, nil)
		}
		_, err := f.client(t).Credentials(context.Background(), "conn_1")
		var un *UnavailableError
		if !errors.As(err, &un) || un.Code != tc.code || f.count("GET /v1/token/") != tc.attempts {
			t.Errorf("%d %q: %v after %d attempts, want %d", tc.status, tc.code, err, f.count("GET /v1/token/"), tc.attempts)
		}

		// Through the Bridge alike.
		g := newFakeNexus(t)
		recordBridge(g, func(w http.ResponseWriter, r *http.Request) { writeProblem(w, tc.status, tc.code, nil) })
		if tc.code == "" {
			continue // a provider's own 502 through the Bridge passes through, never retried
		}
		_, err = bridgeDo(t, g.client(t), http.MethodGet, "/item")
		if !errors.As(err, &un) || un.Code != tc.code || g.count("GET /v1/bridge/") != tc.attempts {
			t.Errorf("Bridge %d %q: %v after %d attempts, want %d", tc.status, tc.code, err, g.count("GET /v1/bridge/"), tc.attempts)
		}
	}
}
