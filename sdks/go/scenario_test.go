package nexus_test

// The SDK scenario (sdks/scenario.json, issue 16) against a real Nexus: run it with
//
//	../scenario/run.sh go test -run TestScenario -v .
//
// run.sh starts Nexus and the scenario upstream and sets NEXUS_SCENARIO; without it the test is skipped. Each
// step is a subtest named by its id; after the first failure the remaining steps are skipped.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	nexus "github.com/nexus-oss/nexus/sdks/go"
)

type scenarioFile struct {
	WorkspaceID string                 `json:"workspace_id"`
	APIKey      map[string]interface{} `json:"api_key"`
	ReturnURL   string                 `json:"return_url"`
	Providers   []struct {
		Name         string                 `json:"name"`
		Strategy     string                 `json:"strategy"`
		Registration map[string]interface{} `json:"registration"`
		Credentials  map[string]string      `json:"credentials"`
	} `json:"providers"`
	Steps []scenarioStep `json:"steps"`
}

type scenarioStep struct {
	ID             string            `json:"id"`
	Op             string            `json:"op"`
	Provider       string            `json:"provider"`
	Scopes         []string          `json:"scopes"`
	SaveAs         string            `json:"save_as"`
	Connection     string            `json:"connection"`
	Connections    []string          `json:"connections"`
	TimeoutSeconds int               `json:"timeout_seconds"`
	Via            string            `json:"via"`
	Method         string            `json:"method"`
	Path           string            `json:"path"`
	Headers        map[string]string `json:"headers"`
	Body           *string           `json:"body"`
	Action         string            `json:"action"`
	Status         string            `json:"status"`    // list_connections: filter
	PageSize       int               `json:"page_size"` // list_connections: page limit
	Config         map[string]string `json:"connection_config"`
	Expect         struct {
		AuthURLPrefix            string                     `json:"auth_url_prefix"`
		Status                   json.RawMessage            `json:"status"` // a connection status, or an HTTP status for call
		Error                    string                     `json:"error"`
		Reason                   string                     `json:"reason"`
		ReturnStatus             string                     `json:"return_status"`
		Includes                 []string                   `json:"includes"`
		Strategy                 map[string]interface{}     `json:"strategy"`
		CredentialFields         []string                   `json:"credential_fields"`
		CredentialsEqualCaptured bool                       `json:"credentials_equal_captured"`
		ExpiresInFuture          bool                       `json:"expires_in_future"`
		JSON                     interface{}                `json:"json"`
		RefreshedOnce            bool                       `json:"refreshed_once"`
		Excludes                 []string                   `json:"excludes"`
		Count                    *int                       `json:"count"`
		Health                   map[string]json.RawMessage `json:"health"`
	} `json:"expect"`
}

type scenarioRun struct {
	sc          scenarioFile
	nexusURL    string
	upstreamURL string
	adminKey    string
	client      *nexus.Client
	conns       map[string]*nexus.PendingConnection // by save_as
	captured    map[string]map[string]string        // by save_as
	providerOf  map[string]string                   // save_as -> provider name
	plain       *http.Client                        // no redirects, no credential
}

func TestScenario(t *testing.T) {
	path := os.Getenv("NEXUS_SCENARIO")
	if path == "" {
		t.Skip("NEXUS_SCENARIO is not set: run through ../scenario/run.sh")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &scenarioRun{
		nexusURL:    strings.TrimRight(os.Getenv("NEXUS_URL"), "/"),
		upstreamURL: strings.TrimRight(os.Getenv("NEXUS_SCENARIO_UPSTREAM"), "/"),
		adminKey:    os.Getenv("NEXUS_ADMIN_API_KEY"),
		conns:       map[string]*nexus.PendingConnection{},
		captured:    map[string]map[string]string{},
		providerOf:  map[string]string{},
		plain: &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
	text := strings.NewReplacer("{nexus}", r.nexusURL, "{upstream}", r.upstreamURL).Replace(string(raw))
	if err := json.Unmarshal([]byte(text), &r.sc); err != nil {
		t.Fatal(err)
	}
	failed := false
	for _, step := range r.sc.Steps {
		step := step
		ok := t.Run(step.ID, func(t *testing.T) {
			if failed {
				t.Skip("an earlier step failed")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r.run(ctx, t, step)
		})
		if !ok {
			failed = true
		}
	}
}

func (r *scenarioRun) run(ctx context.Context, t *testing.T, s scenarioStep) {
	switch s.Op {
	case "create_api_key":
		var out struct {
			APIKey string `json:"api_key"`
		}
		r.admin(t, "/v1/admin/api-keys", r.sc.APIKey, &out)
		c, err := nexus.NewClient(nexus.WithBaseURL(r.nexusURL), nexus.WithAPIKey(out.APIKey))
		if err != nil {
			t.Fatal(err)
		}
		r.client = c
	case "register_providers":
		for _, p := range r.sc.Providers {
			r.admin(t, "/v1/providers", p.Registration, nil)
		}
	case "request_connection":
		pc, err := r.client.RequestConnection(ctx, nexus.ConnectionRequest{WorkspaceID: r.sc.WorkspaceID, ProviderName: s.Provider, Scopes: s.Scopes, ReturnURL: r.sc.ReturnURL,
			ConnectionConfig: s.Config})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(pc.AuthURL, s.Expect.AuthURLPrefix) || pc.ConnectionID == "" {
			t.Fatalf("auth_url %q, connection_id %q", pc.AuthURL, pc.ConnectionID)
		}
		r.conns[s.SaveAs], r.providerOf[s.SaveAs] = pc, s.Provider
	case "get_connection":
		conn, err := r.client.Connection(ctx, r.id(t, s.Connection))
		if r.expectError(t, s, err) {
			return
		}
		if want := r.expectedStatus(s); conn.Status != want {
			t.Fatalf("status %q, want %q", conn.Status, want)
		}
		r.checkHealth(t, s, conn)
	case "reconnect":
		id := r.id(t, s.Connection)
		pc, err := r.client.Reconnect(ctx, id, nexus.ReconnectOptions{Scopes: s.Scopes})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(pc.AuthURL, s.Expect.AuthURLPrefix) || pc.ConnectionID != id {
			t.Fatalf("auth_url %q, connection_id %q (want %q)", pc.AuthURL, pc.ConnectionID, id)
		}
		r.conns[s.Connection] = pc
	case "complete_consent":
		location := r.redirect(t, r.conns[s.Connection].AuthURL) // the upstream consents: to Nexus's callback
		back, err := url.Parse(r.redirect(t, location))          // Nexus: to return_url
		if err != nil {
			t.Fatal(err)
		}
		if got := back.Query().Get("status"); got != s.Expect.ReturnStatus || back.Query().Get("connection_id") != r.id(t, s.Connection) {
			t.Fatalf("returned to %s", back.Redacted())
		}
	case "wait_until_active":
		conn, err := r.client.WaitUntilActive(ctx, r.id(t, s.Connection), time.Duration(s.TimeoutSeconds)*time.Second)
		if err != nil || conn.Status != nexus.StatusActive {
			t.Fatalf("%v", err)
		}
	case "capture_credentials":
		pc, err := r.client.RequestConnection(ctx, nexus.ConnectionRequest{WorkspaceID: r.sc.WorkspaceID, ProviderName: s.Provider, ReturnURL: r.sc.ReturnURL})
		if err != nil {
			t.Fatal(err)
		}
		fields := r.provider(t, s.Provider).Credentials
		conn, err := r.client.SubmitCredentials(ctx, pc.ConnectionID, fields)
		if err != nil {
			t.Fatal(err)
		}
		if conn.Status != nexus.StatusActive {
			t.Fatalf("status %q", conn.Status)
		}
		r.conns[s.SaveAs], r.captured[s.SaveAs], r.providerOf[s.SaveAs] = pc, fields, s.Provider
	case "list_connections":
		it := r.client.Connections(nexus.ListOptions{WorkspaceID: r.sc.WorkspaceID, Provider: s.Provider, Status: s.Status, Limit: s.PageSize})
		byID := map[string]string{}
		seen := 0
		for it.Next(ctx) {
			c := it.Connection()
			if _, twice := byID[c.ID]; twice {
				t.Fatalf("%s listed twice", c.ID)
			}
			byID[c.ID] = c.Status
			seen++
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		for _, name := range s.Expect.Includes {
			if got, want := byID[r.id(t, name)], r.expectedStatus(s); got != want {
				t.Fatalf("%s: status %q, want %q", name, got, want)
			}
		}
		for _, name := range s.Expect.Excludes {
			if _, ok := byID[r.id(t, name)]; ok {
				t.Fatalf("%s is listed", name)
			}
		}
		if s.Expect.Count != nil && seen != *s.Expect.Count {
			t.Fatalf("%d connections listed, want %d", seen, *s.Expect.Count)
		}
	case "get_credentials":
		r.getCredentials(ctx, t, s)
	case "call":
		r.call(ctx, t, s)
	case "upstream_control":
		path := map[string]string{"revoke_all_grants": "/control/revoke-all-grants", "expire_access_tokens": "/control/expire-access-tokens"}[s.Action]
		if path == "" {
			t.Fatalf("unknown action %q", s.Action)
		}
		resp, err := r.plain.Post(r.upstreamURL+path, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	case "force_refresh":
		_, err := r.client.Refresh(ctx, r.id(t, s.Connection))
		if !r.expectError(t, s, err) {
			t.Fatal("the refresh succeeded")
		}
	case "delete_connection":
		names := s.Connections
		if s.Connection != "" {
			names = append(names, s.Connection)
		}
		for _, name := range names {
			if err := r.client.DeleteConnection(ctx, r.id(t, name)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	default:
		t.Fatalf("unknown op %q", s.Op)
	}
}

// checkHealth compares expect.health (sdks/scenario/README.md) with the SDK's connection model.
func (r *scenarioRun) checkHealth(t *testing.T, s scenarioStep, c *nexus.Connection) {
	t.Helper()
	for key, raw := range s.Expect.Health {
		var ok bool
		switch key {
		case "granted_scopes":
			var want []string
			_ = json.Unmarshal(raw, &want)
			ok = reflect.DeepEqual(c.GrantedScopes, want)
		case "consecutive_failures":
			var want int
			_ = json.Unmarshal(raw, &want)
			ok = c.ConsecutiveFailures == want
		case "last_error":
			ok = string(raw) == "null" && c.LastError == nil
		case "last_refreshed":
			var want bool
			_ = json.Unmarshal(raw, &want)
			ok = c.LastRefreshedAt.IsZero() != want
		case "reconnecting":
			var want bool
			_ = json.Unmarshal(raw, &want)
			ok = c.Reconnecting == want
		case "connection_config":
			var want map[string]string
			_ = json.Unmarshal(raw, &want)
			ok = reflect.DeepEqual(c.ConnectionConfig, want)
		default:
			t.Fatalf("unknown health key %q", key)
		}
		if !ok {
			t.Errorf("health %s: want %s, connection %+v", key, raw, *c)
		}
	}
}

func (r *scenarioRun) id(t *testing.T, name string) string {
	t.Helper()
	pc := r.conns[name]
	if pc == nil {
		t.Fatalf("no connection saved as %q", name)
	}
	return pc.ConnectionID
}

func (r *scenarioRun) provider(t *testing.T, name string) *struct {
	Name         string                 `json:"name"`
	Strategy     string                 `json:"strategy"`
	Registration map[string]interface{} `json:"registration"`
	Credentials  map[string]string      `json:"credentials"`
} {
	for i := range r.sc.Providers {
		if r.sc.Providers[i].Name == name {
			return &r.sc.Providers[i]
		}
	}
	t.Fatalf("no provider %q", name)
	return nil
}

func (r *scenarioRun) expectedStatus(s scenarioStep) string {
	var status string
	_ = json.Unmarshal(s.Expect.Status, &status)
	return status
}

// expectError checks err against expect.error (the SDK's typed error) and reports whether an error was expected.
func (r *scenarioRun) expectError(t *testing.T, s scenarioStep, err error) bool {
	t.Helper()
	if s.Expect.Error == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return false
	}
	if err == nil {
		t.Fatalf("no error, want %s", s.Expect.Error)
	}
	switch s.Expect.Error {
	case "attention_required":
		var e *nexus.AttentionRequiredError
		if !errors.As(err, &e) {
			t.Fatalf("got %T %v, want *AttentionRequiredError", err, err)
		}
		if e.ConnectionID != r.id(t, s.Connection) || (s.Expect.Reason != "" && e.Reason != s.Expect.Reason) {
			t.Fatalf("connection %q reason %q", e.ConnectionID, e.Reason)
		}
	case "not_active":
		var e *nexus.NotActiveError
		if !errors.As(err, &e) {
			t.Fatalf("got %T %v, want *NotActiveError", err, err)
		}
		if want := r.expectedStatus(s); want != "" && e.Status != want {
			t.Fatalf("status %q, want %q", e.Status, want)
		}
	case "not_found":
		var e *nexus.NotFoundError
		if !errors.As(err, &e) {
			t.Fatalf("got %T %v, want *NotFoundError", err, err)
		}
	case "forbidden":
		var e *nexus.ForbiddenError
		if !errors.As(err, &e) {
			t.Fatalf("got %T %v, want *ForbiddenError", err, err)
		}
	case "rate_limited":
		var e *nexus.RateLimitedError
		if !errors.As(err, &e) {
			t.Fatalf("got %T %v, want *RateLimitedError", err, err)
		}
	case "unavailable":
		var e *nexus.UnavailableError
		if !errors.As(err, &e) {
			t.Fatalf("got %T %v, want *UnavailableError", err, err)
		}
	default:
		t.Fatalf("unknown expected error %q", s.Expect.Error)
	}
	return true
}

func (r *scenarioRun) getCredentials(ctx context.Context, t *testing.T, s scenarioStep) {
	creds, err := r.client.Credentials(ctx, r.id(t, s.Connection))
	if r.expectError(t, s, err) {
		return
	}
	// The strategy as JSON, so that expect.strategy compares key by key.
	var strategy map[string]interface{}
	b, _ := json.Marshal(creds.Strategy)
	_ = json.Unmarshal(b, &strategy)
	if !subset(s.Expect.Strategy, strategy) {
		t.Fatalf("strategy %v, want %v", strategy, s.Expect.Strategy)
	}
	for _, f := range s.Expect.CredentialFields {
		if creds.Fields[f] == "" {
			t.Fatalf("field %s missing", f)
		}
	}
	if s.Expect.CredentialsEqualCaptured {
		want := r.captured[s.Connection]
		if len(creds.Fields) != len(want) {
			t.Fatalf("%d fields, want %d", len(creds.Fields), len(want))
		}
		for k, v := range want {
			if creds.Fields[k].Reveal() != v {
				t.Fatalf("field %s differs from what was captured", k)
			}
		}
	}
	if s.Expect.ExpiresInFuture && !creds.ExpiresAt.After(time.Now()) {
		t.Fatalf("expires_at %v", creds.ExpiresAt)
	}
}

func (r *scenarioRun) call(ctx context.Context, t *testing.T, s scenarioStep) {
	base, _ := r.provider(t, r.providerOf[s.Connection]).Registration["api_base_url"].(string)
	var h *http.Client
	target := base + s.Path
	switch s.Via {
	case "direct":
		h = r.client.HTTPClient(r.id(t, s.Connection))
	case "bridge":
		h = r.client.HTTPClient(r.id(t, s.Connection), nexus.ViaBridge())
		target = r.client.BridgeURL(r.id(t, s.Connection)) + s.Path
	case "unauthenticated":
		h = r.plain
	default:
		t.Fatalf("unknown via %q", s.Via)
	}
	var body io.Reader
	if s.Body != nil {
		body = bytes.NewReader([]byte(*s.Body))
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	before := -1
	if s.Expect.RefreshedOnce {
		before = r.refreshes(t)
	}
	resp, err := h.Do(req)
	if r.expectError(t, s, err) {
		return // expect.error: the call failed with that typed error
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var status int
	_ = json.Unmarshal(s.Expect.Status, &status)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, data)
	}
	if s.Expect.JSON != nil {
		var got interface{}
		if err := json.Unmarshal(data, &got); err != nil || !subset(s.Expect.JSON, got) {
			t.Fatalf("answer %s, want a superset of %v", data, s.Expect.JSON)
		}
	}
	if before >= 0 {
		if after := r.refreshes(t); after != before+1 {
			t.Fatalf("upstream refreshes went from %d to %d, want exactly one", before, after)
		}
	}
}

func (r *scenarioRun) refreshes(t *testing.T) int {
	t.Helper()
	resp, err := r.plain.Get(r.upstreamURL + "/control/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats struct {
		Refreshes int `json:"refreshes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	return stats.Refreshes
}

// subset: every key of want is in got with a subset value (objects recursively; other values equal).
func subset(want, got interface{}) bool {
	switch w := want.(type) {
	case map[string]interface{}:
		g, ok := got.(map[string]interface{})
		if !ok {
			return false
		}
		for k, v := range w {
			if gv, ok := g[k]; !ok || !subset(v, gv) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(want, got)
	}
}

// redirect GETs u without following and returns its Location.
func (r *scenarioRun) redirect(t *testing.T, u string) string {
	t.Helper()
	resp, err := r.plain.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || loc == "" {
		t.Fatalf("GET %s: %d, no redirect", strings.SplitN(u, "?", 2)[0], resp.StatusCode)
	}
	ref, err := resp.Request.URL.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

// admin POSTs body to an admin route with the bootstrap key and expects 201.
func (r *scenarioRun) admin(t *testing.T, path string, body interface{}, out interface{}) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", r.nexusURL+path, bytes.NewReader(b))
	req.Header.Set("X-API-Key", r.adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatal(fmt.Errorf("POST %s: %w", path, err))
		}
	}
}
