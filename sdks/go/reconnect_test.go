package nexus

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestWaitUntilActiveKeepsPollingWhileAReconnectWaitsForConsent(t *testing.T) {
	f := newFakeNexus(t)
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		conn := map[string]interface{}{"connection_id": "conn_1", "provider": "p", "workspace_id": "ws", "scopes": []string{"a"},
			"created_at": 1763790000, "updated_at": 1763790004}
		switch n {
		case 1: // a reconnect of an attention_required connection keeps that status until the consent completes
			conn["status"], conn["reconnecting"], conn["error"] = "attention_required", true, "invalid_grant"
		case 2: // a reconnect of an active connection keeps it active meanwhile
			conn["status"], conn["reconnecting"] = "active", true
		default:
			conn["status"], conn["reconnecting"] = "active", false
		}
		writeJSON(w, 200, conn)
	}
	conn, err := f.client(t).WaitUntilActive(context.Background(), "conn_1", time.Minute)
	if err != nil || conn.Status != StatusActive || conn.Reconnecting || f.count("GET /v1/connections/") != 3 {
		t.Fatalf("got %+v, %v after %d polls", conn, err, f.count("GET /v1/connections/"))
	}
}

func TestWaitUntilActiveEndsWithAttentionRequiredOnceAFailedReconnectClearsReconnecting(t *testing.T) {
	f := newFakeNexus(t)
	f.conn = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeJSON(w, 200, map[string]interface{}{"connection_id": "conn_1", "status": "attention_required", "reconnecting": n < 3,
			"error": "invalid_grant", "created_at": 1763790000, "updated_at": 1763790004})
	}
	_, err := f.client(t).WaitUntilActive(context.Background(), "conn_1", time.Minute)
	var ar *AttentionRequiredError
	if !asErr(err, &ar) || f.count("GET /v1/connections/") != 3 {
		t.Fatalf("got %T %v after %d polls", err, err, f.count("GET /v1/connections/"))
	}
}

func asErr(err error, target interface{}) bool { return errors.As(err, target) }
