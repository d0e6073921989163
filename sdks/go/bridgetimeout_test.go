package nexus

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// The client's timeout bounds each Bridge attempt until the answer's headers: a stalled call ends with a deadline
// error, and is not retried; an answer whose headers came in time may be read after the timeout.
func TestABridgeCallThatStallsEndsAtTheClientsTimeoutAndIsNotRetried(t *testing.T) {
	f := newFakeNexus(t)
	release := make(chan struct{})
	defer close(release)
	recordBridge(f, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/bridge/conn_1/stall":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		default: // headers at once, the body later
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
			io.WriteString(w, "slow body")
		}
	})
	c := f.client(t, WithTimeout(150*time.Millisecond))
	started := time.Now()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, c.BridgeURL("conn_1")+"/stall", nil)
		resp, err := c.HTTPClient("conn_1", ViaBridge()).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled Bridge call was still waiting after 5s")
	}
	if !errors.Is(err, context.DeadlineExceeded) || f.count("GET /v1/bridge/") != 1 {
		t.Fatalf("got %v after %s and %d requests", err, time.Since(started), f.count("GET /v1/bridge/"))
	}

	resp, err := bridgeDo(t, c, http.MethodGet, "/slow-body")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "slow body" {
		t.Fatalf("body %q, %v", body, err)
	}
}
