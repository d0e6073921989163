package nexus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"testing"
	"time"
)

var verbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%T %v", "%100v", "%d"}

func assertNoSecret(t *testing.T, what, out string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("%s printed a secret: %s", what, out)
		}
		// Hex and base64 of the secret, for %x and Basic headers.
		if strings.Contains(strings.ToLower(out), fmt.Sprintf("%x", s)) {
			t.Fatalf("%s printed a secret in hex: %s", what, out)
		}
	}
}

func TestCredentialsPrintNoSecretWhateverTheVerb(t *testing.T) {
	cases := map[string]string{
		"oauth2":     `{"strategy":{"type":"oauth2"},"credentials":{"access_token":"SECRET-access-token-1","expires_at":1763793604},"expires_at":1763793604}`,
		"api_key":    `{"strategy":{"type":"api_key","in":"query","name":"key","prefix":"p_"},"credentials":{"api_key":"SECRET-api-key-2"},"expires_at":null}`,
		"basic_auth": `{"strategy":{"type":"basic_auth"},"credentials":{"username":"SECRET-user-3","password":"SECRET-password-4"},"expires_at":null}`,
		"aws_sigv4":  `{"strategy":{"type":"aws_sigv4","region":"eu-west-1","service":"s3"},"credentials":{"access_key_id":"AKIA","secret_access_key":"SECRET-aws-5","session_token":"SECRET-session-6","expires_at":1767225600},"expires_at":1767225600}`,
	}
	secrets := []string{"SECRET-access-token-1", "SECRET-api-key-2", "SECRET-user-3", "SECRET-password-4", "SECRET-aws-5", "SECRET-session-6", "SECRET"}
	for name, body := range cases {
		creds, err := parseCredentials("conn_1", []byte(body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, verb := range verbs {
			assertNoSecret(t, name+" "+verb, fmt.Sprintf(verb, creds), secrets...)
			assertNoSecret(t, name+" "+verb+" (value)", fmt.Sprintf(verb, *creds), secrets...)
			assertNoSecret(t, name+" "+verb+" (in a struct)", fmt.Sprintf(verb, struct{ C *Credentials }{creds}), secrets...)
			assertNoSecret(t, name+" "+verb+" (field)", fmt.Sprintf(verb, creds.Fields), secrets...)
		}
		assertNoSecret(t, name+" String", creds.String(), secrets...)
		assertNoSecret(t, name+" GoString", creds.GoString(), secrets...)
		j, _ := json.Marshal(creds)
		assertNoSecret(t, name+" json", string(j), secrets...)
		j, _ = json.Marshal(creds.Fields)
		assertNoSecret(t, name+" json fields", string(j), secrets...)
		var logged strings.Builder
		log.New(&logged, "", 0).Printf("credentials: %v %+v", creds, creds)
		assertNoSecret(t, name+" log", logged.String(), secrets...)
	}
}

func TestSecretIsReadableOnlyOnPurpose(t *testing.T) {
	s := Secret("hunter2")
	if s.Reveal() != "hunter2" || string(s) != "hunter2" {
		t.Fatal("Reveal")
	}
	for _, verb := range verbs {
		assertNoSecret(t, verb, fmt.Sprintf(verb, s), "hunter2")
	}
}

func TestTheClientPrintsNoAPIKey(t *testing.T) {
	c, err := NewClient(WithBaseURL("http://127.0.0.1:1"), WithAPIKey("nxk_SECRET-key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range verbs {
		assertNoSecret(t, verb, fmt.Sprintf(verb, c), "SECRET")
	}
}

// Errors of every kind the SDK returns: none names the API key or a credential.
func TestNoErrorMessageHoldsASecret(t *testing.T) {
	f := newFakeNexus(t)
	f.token = func(w http.ResponseWriter, r *http.Request, n int64) {
		writeJSON(w, 200, strategyToken(map[string]string{"type": "api_key", "in": "query", "name": "key"}, map[string]string{"api_key": "SECRET-query-key"}))
	}
	c := f.client(t)
	// A transport whose errors name the URL it was given: the query carries the key.
	leaky := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return nil, fmt.Errorf("dial %s: refused (key %s)", r.URL.String(), r.URL.Query().Get("key"))
	})
	_, err := c.HTTPClient("conn_1", WithBase(leaky)).Get("http://127.0.0.1:1/x?a=1")
	if err == nil {
		t.Fatal("no error")
	}
	assertNoSecret(t, "transport error", err.Error(), "SECRET")
	assertNoSecret(t, "transport error %+v", fmt.Sprintf("%+v", err), "SECRET")

	// Nexus unreachable: the message names the route, never the API key.
	dead, _ := NewClient(WithBaseURL("http://127.0.0.1:1"), WithAPIKey(testAPIKey), WithRetryPolicy(RetryPolicy{MaxAttempts: 1}))
	_, err = dead.Credentials(context.Background(), "conn_1")
	if err == nil {
		t.Fatal("no error")
	}
	assertNoSecret(t, "unreachable", fmt.Sprintf("%v %+v %#v", err, err, err), testAPIKey)

	// Problems of every type.
	for _, status := range []int{400, 401, 403, 404, 409, 429, 502, 503} {
		g := newFakeNexus(t)
		g.token = func(w http.ResponseWriter, r *http.Request, n int64) {
			writeProblem(w, status, "x", map[string]interface{}{"status": "attention_required", "connection_id": "conn_1"})
		}
		_, err := g.client(t, WithRetryPolicy(RetryPolicy{MaxAttempts: 1})).Credentials(context.Background(), "conn_1")
		assertNoSecret(t, fmt.Sprint(status), fmt.Sprintf("%v %+v %#v", err, err, err), testAPIKey)
	}
	var timeout *WaitTimeoutError
	_, err = f.client(t).WaitUntilActive(context.Background(), "conn_pending", time.Nanosecond)
	if !errors.As(err, &timeout) {
		t.Fatalf("wait: %v", err)
	}
	assertNoSecret(t, "wait", fmt.Sprintf("%+v", err), testAPIKey)
}
