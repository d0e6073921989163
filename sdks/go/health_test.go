package nexus

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"
)

// The shared webhook test vector (the same in every SDK's tests): a connection.recovered delivery signed as Standard
// Webhooks specifies, with the README's verification as the reference.
const (
	vectorSecret    = "whsec_bmV4dXMtc2RrLXdlYmhvb2stdGVzdC1rZXktMzJieXQ="
	vectorID        = "msg_01JEXAMPLERECOVERED00000"
	vectorTimestamp = "1764936000"
	vectorSignature = "v1,kBeSx3GnqiaEXli7TIDFrbOF1ooxc4D23RgBgWOmOHY="
	vectorBody      = `{"id":"msg_01JEXAMPLERECOVERED00000","type":"connection.recovered","timestamp":1764936000,"workspace_id":"user_abc123","data":{"connection_id":"conn_01JEXAMPLE","provider":"google","status":"active","failures":3,"expires_at":1764939600}}`
)

func vectorHeader(signature string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", vectorID)
	h.Set("webhook-timestamp", vectorTimestamp)
	h.Set("webhook-signature", signature)
	return h
}

func TestARecoveredWebhookIsVerifiedAndParsedIntoItsEventType(t *testing.T) {
	now := time.Unix(1764936000, 0).Add(30 * time.Second)
	e, err := verifyWebhook(vectorSecret, vectorHeader("v1,c29tZXRoaW5nIGVsc2U= "+vectorSignature), []byte(vectorBody), now)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != EventConnectionRecovered || e.ID != vectorID || e.WorkspaceID != "user_abc123" || !e.Timestamp.Equal(time.Unix(1764936000, 0)) {
		t.Fatalf("event %+v", e)
	}
	if e.Data.ConnectionID != "conn_01JEXAMPLE" || e.Data.Provider != "google" || e.Data.Failures != 3 || !e.Data.ExpiresAt.Equal(time.Unix(1764939600, 0)) {
		t.Fatalf("data %+v", e.Data)
	}
}

func TestAWebhookWithAnotherSignatureATamperedBodyOrAnOldTimestampIsRefused(t *testing.T) {
	now := time.Unix(1764936000, 0)
	cases := map[string]func() error{
		"wrong signature": func() error {
			_, err := verifyWebhook(vectorSecret, vectorHeader("v1,kCeSx3GnqiaEXli7TIDFrbOF1ooxc4D23RgBgWOmOHY="), []byte(vectorBody), now)
			return err
		},
		"tampered body": func() error {
			_, err := verifyWebhook(vectorSecret, vectorHeader(vectorSignature), []byte(vectorBody[:len(vectorBody)-2]+"0}}"), now)
			return err
		},
		"replayed later": func() error {
			_, err := verifyWebhook(vectorSecret, vectorHeader(vectorSignature), []byte(vectorBody), now.Add(6*time.Minute))
			return err
		},
		"other secret": func() error {
			_, err := verifyWebhook("whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC0xMjM0NTY=", vectorHeader(vectorSignature), []byte(vectorBody), now)
			return err
		},
		"no headers": func() error {
			_, err := verifyWebhook(vectorSecret, http.Header{}, []byte(vectorBody), now)
			return err
		},
	}
	for name, run := range cases {
		if err := run(); !errors.Is(err, ErrWebhookSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAWebhookSecretWhoseKeyIsEmptyIsRefusedEvenWithTheSignatureThatKeyMakes(t *testing.T) {
	// Anyone can compute an HMAC with an empty key, so such a "secret" verifies nothing (as in TypeScript, Python, .NET).
	mac := hmac.New(sha256.New, nil)
	mac.Write([]byte(vectorID + "." + vectorTimestamp + "." + vectorBody))
	header := vectorHeader("v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	for _, secret := range []string{"whsec_", ""} {
		if _, err := verifyWebhook(secret, header, []byte(vectorBody), time.Unix(1764936000, 0)); !errors.Is(err, ErrWebhookSignature) {
			t.Errorf("%q: %v", secret, err)
		}
	}
}

func TestTheConnectionIteratorFollowsNextCursorWithTheSameFilters(t *testing.T) {
	f := newFakeNexus(t)
	var queries []string
	f.other = func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		conn := func(id string) map[string]interface{} {
			return map[string]interface{}{"connection_id": id, "status": "active", "provider": "shop", "workspace_id": "w", "scopes": []string{"read"},
				"created_at": 1, "updated_at": 2, "connection_config": map[string]string{"shop": "acme"}, "granted_scopes": []string{"read"},
				"last_refreshed_at": 100, "next_refresh_at": 200, "consecutive_failures": 2,
				"last_error": map[string]string{"code": "temporarily_unavailable", "message": "Down for maintenance"}, "reconnecting": true}
		}
		switch r.URL.Query().Get("cursor") {
		case "":
			writeJSON(w, 200, map[string]interface{}{"connections": []interface{}{conn("conn_3"), conn("conn_2")}, "next_cursor": "c2"})
		case "c2":
			writeJSON(w, 200, map[string]interface{}{"connections": []interface{}{conn("conn_1")}})
		}
	}
	it := f.client(t).Connections(ListOptions{WorkspaceID: "w", Status: StatusActive, Provider: "shop", Limit: 2})
	var ids []string
	for it.Next(context.Background()) {
		c := it.Connection()
		ids = append(ids, c.ID)
		if c.ConnectionConfig["shop"] != "acme" || c.ConsecutiveFailures != 2 || c.LastError == nil || c.LastError.Code != "temporarily_unavailable" ||
			!c.Reconnecting || !c.LastRefreshedAt.Equal(time.Unix(100, 0)) || !c.NextRefreshAt.Equal(time.Unix(200, 0)) || !reflect.DeepEqual(c.GrantedScopes, []string{"read"}) {
			t.Fatalf("connection %+v", c)
		}
	}
	if it.Err() != nil || !reflect.DeepEqual(ids, []string{"conn_3", "conn_2", "conn_1"}) {
		t.Fatalf("ids %v, err %v", ids, it.Err())
	}
	want := []string{"limit=2&provider=shop&status=active&workspace_id=w", "cursor=c2&limit=2&provider=shop&status=active&workspace_id=w"}
	if !reflect.DeepEqual(queries, want) {
		t.Fatalf("queries %v", queries)
	}
}
