package nexus

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
)

// A machine-to-machine MCP server's connection (client_credentials, docs/remote-mcp.md) needs nobody's consent:
// Nexus answers request-connection 201 and reconnect 200 with {connection_id, status: "active"} and no auth_url
// (its JSON leaves a null out). The PendingConnection has an empty AuthURL and Status "active".
func TestAMachineConnectionIsActiveWithoutAnAuthURL(t *testing.T) {
	f := newFakeNexus(t)
	var got []string
	var reconnectBody map[string]interface{}
	f.other = func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path)
		switch r.URL.Path {
		case "/v1/request-connection":
			// What Nexus sends (MachineConnectionResponse, nulls not written).
			writeJSON(w, 201, map[string]interface{}{"connection_id": "conn_m2m", "status": "active"})
		case "/v1/connections/conn_m2m/reconnect":
			_ = json.NewDecoder(r.Body).Decode(&reconnectBody)
			// The same with the null written: read the same way.
			writeJSON(w, 200, map[string]interface{}{"auth_url": nil, "connection_id": "conn_m2m", "status": "active"})
		default:
			writeProblem(w, 404, "not_found", nil)
		}
	}
	c := f.client(t)
	ctx := context.Background()

	requested, err := c.RequestConnection(ctx, ConnectionRequest{WorkspaceID: "w", ProviderName: "reports", ReturnURL: "https://app.example/return"})
	if err != nil {
		t.Fatal(err)
	}
	if requested.ConnectionID != "conn_m2m" || requested.AuthURL != "" || requested.Status != StatusActive {
		t.Fatalf("request-connection gave %+v", requested)
	}

	again, err := c.Reconnect(ctx, "conn_m2m", ReconnectOptions{Scopes: []string{"reports:read"}})
	if err != nil {
		t.Fatal(err)
	}
	if again.ConnectionID != "conn_m2m" || again.AuthURL != "" || again.Status != StatusActive {
		t.Fatalf("reconnect gave %+v", again)
	}
	if want := []string{"POST /v1/request-connection", "POST /v1/connections/conn_m2m/reconnect"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("requests %v", got)
	}
	if !reflect.DeepEqual(reconnectBody, map[string]interface{}{"scopes": []interface{}{"reports:read"}}) {
		t.Fatalf("reconnect body %v", reconnectBody)
	}
}

func TestAConsentAnswerKeepsItsAuthURLAndHasNoStatus(t *testing.T) {
	f := newFakeNexus(t)
	f.other = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 201, map[string]interface{}{"auth_url": "https://idp.example/authorize?state=s", "connection_id": "conn_1"})
	}
	requested, err := f.client(t).RequestConnection(context.Background(), ConnectionRequest{WorkspaceID: "w", ProviderName: "github", ReturnURL: "https://app.example/return"})
	if err != nil {
		t.Fatal(err)
	}
	if *requested != (PendingConnection{AuthURL: "https://idp.example/authorize?state=s", ConnectionID: "conn_1"}) {
		t.Fatalf("request-connection gave %+v", requested)
	}
}

// The authorization server refused the machine's token: 502 token_request_failed with the connection id, not retried.
func TestARefusedMachineConnectionIsAnUnavailableErrorWithTheConnectionID(t *testing.T) {
	f := newFakeNexus(t)
	calls := 0
	f.other = func(w http.ResponseWriter, r *http.Request) {
		calls++
		writeProblem(w, 502, "token_request_failed", map[string]interface{}{"connection_id": "conn_m2m"})
	}
	_, err := f.client(t).RequestConnection(context.Background(), ConnectionRequest{WorkspaceID: "w", ProviderName: "reports", ReturnURL: "https://app.example/return"})
	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) || unavailable.Code != "token_request_failed" || unavailable.ConnectionID != "conn_m2m" || calls != 1 {
		t.Fatalf("err %v (%#v), %d calls", err, err, calls)
	}
}
