package nexus

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"
)

// The members a problem adds to RFC 9457's are kept: a step-up's auth_url, scopes and connection_id, the errors of
// validation_failed, the rounds of step_up_limit.
func TestAProblemsExtraMembersAreKept(t *testing.T) {
	f := newFakeNexus(t)
	f.other = func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/request-connection":
			writeProblem(w, 400, "validation_failed", map[string]interface{}{"errors": map[string][]string{"provider_name": {"Required."}}})
		case "/v1/bridge/conn_1/tool":
			writeProblem(w, 403, "insufficient_scope", map[string]interface{}{"auth_url": "https://nexus.test/connect/abc",
				"connection_id": "conn_1", "scopes": []string{"read", "write"}})
		default:
			writeProblem(w, 403, "step_up_limit", map[string]interface{}{"connection_id": "conn_1", "rounds": 3})
		}
	}
	c := f.client(t)

	_, err := c.RequestConnection(context.Background(), ConnectionRequest{WorkspaceID: "ws"})
	var api *APIError
	if !errors.As(err, &api) || !reflect.DeepEqual(api.ValidationErrors(), map[string][]string{"provider_name": {"Required."}}) {
		t.Fatalf("validation_failed: %v", err)
	}

	_, err = bridgeDo(t, c, http.MethodGet, "/tool")
	var fb *ForbiddenError
	var scopes []string
	if !errors.As(err, &fb) || fb.AuthURL() != "https://nexus.test/connect/abc" || fb.ConnectionID != "conn_1" ||
		!fb.Extension("scopes", &scopes) || !reflect.DeepEqual(scopes, []string{"read", "write"}) {
		t.Fatalf("insufficient_scope: %v (%+v)", err, fb)
	}

	_, err = bridgeDo(t, c, http.MethodGet, "/other")
	var rounds int
	if !errors.As(err, &fb) || fb.Code != "step_up_limit" || !fb.Extension("rounds", &rounds) || rounds != 3 || fb.AuthURL() != "" {
		t.Fatalf("step_up_limit: %v", err)
	}
}
