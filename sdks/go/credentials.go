package nexus

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const redacted = "[redacted]"

// Secret is a string that never prints: String, GoString, every fmt verb and JSON encoding give "[redacted]".
// Convert it to read it: string(s) or s.Reveal().
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string                { return redacted }
func (s Secret) GoString() string              { return redacted }
func (s Secret) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, redacted) }
func (s Secret) MarshalJSON() ([]byte, error)  { return []byte(`"` + redacted + `"`), nil }
func (s Secret) MarshalText() ([]byte, error)  { return []byte(redacted), nil }

// Strategy types.
const (
	StrategyOAuth2    = "oauth2"
	StrategyAPIKey    = "api_key"
	StrategyBasicAuth = "basic_auth"
	StrategyAWSSigV4  = "aws_sigv4"
)

// Strategy says how a credential is applied, as GET /v1/token/{id} describes it.
type Strategy struct {
	Type    string `json:"type"`
	In      string `json:"in,omitempty"`     // api_key: "header" or "query"
	Name    string `json:"name,omitempty"`   // api_key: the header or query parameter
	Prefix  string `json:"prefix,omitempty"` // api_key: written before the key ("Bearer ")
	Region  string `json:"region,omitempty"` // aws_sigv4
	Service string `json:"service,omitempty"`
	RoleARN string `json:"role_arn,omitempty"`
}

// Credentials of one connection, from GET /v1/token/{id}. Which fields are set depends on Strategy.Type. Every
// secret is a Secret and the whole value prints redacted with any fmt verb.
type Credentials struct {
	ConnectionID    string
	Strategy        Strategy
	AccessToken     Secret // oauth2
	APIKey          Secret // api_key
	Username        Secret // basic_auth
	Password        Secret // basic_auth
	AccessKeyID     string // aws_sigv4: an identifier, sent in clear in every signature
	SecretAccessKey Secret // aws_sigv4
	SessionToken    Secret // aws_sigv4, temporary credentials only
	// ExpiresAt is when the credential expires; zero when it does not.
	ExpiresAt time.Time
	// Fields holds every string field Nexus returned, including a provider's own credential_schema fields.
	Fields map[string]Secret
	// ConnectionConfig holds the connection's per-connection values (a Shopify shop, a Salesforce instance), which
	// say where its API is; nil when the provider has none. Not secrets.
	ConnectionConfig map[string]string

	derived *derived
}

// derived values computed once per credential: the header value to send, the SigV4 signing key of the day.
type derived struct {
	header  string
	signKey atomic.Pointer[signingKey]
}

type signingKey struct {
	scope string // yyyymmdd/region/service/aws4_request
	key   []byte
	macs  sync.Pool // hash.Hash: HMAC-SHA256 keyed with key
}

func (c Credentials) String() string {
	exp := "never"
	if !c.ExpiresAt.IsZero() {
		exp = c.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("nexus.Credentials{connection: %s, strategy: %s, expires_at: %s, secrets: %s}", c.ConnectionID, c.Strategy.Type, exp, redacted)
}

// GoString is String, so that %#v prints no secret either.
func (c Credentials) GoString() string { return c.String() }

// Format prints String for every verb (%v, %+v, %#v, %s, %q, %x, ...).
func (c Credentials) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, c.String()) }

// MarshalJSON encodes the credentials without their secrets.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ConnectionID string   `json:"connection_id"`
		Strategy     Strategy `json:"strategy"`
		ExpiresAt    int64    `json:"expires_at,omitempty"`
		Secrets      string   `json:"credentials"`
	}{c.ConnectionID, c.Strategy, unixOrZero(c.ExpiresAt), redacted})
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// sameSecret reports whether two credentials carry the same secret values.
func (c *Credentials) sameSecret(o *Credentials) bool {
	if c == o {
		return true
	}
	if c == nil || o == nil || len(c.Fields) != len(o.Fields) {
		return false
	}
	for k, v := range c.Fields {
		if o.Fields[k] != v {
			return false
		}
	}
	return true
}

// secrets lists the secret values, for scrubbing them out of error messages.
func (c *Credentials) secrets() []string {
	out := make([]string, 0, len(c.Fields)+1)
	for k, v := range c.Fields {
		if len(v) >= 4 && k != "access_key_id" {
			out = append(out, string(v))
		}
	}
	if c.derived != nil && c.derived.header != "" {
		out = append(out, c.derived.header)
	}
	return out
}

// parseCredentials reads a GET /v1/token/{id} answer.
func parseCredentials(id string, data []byte) (*Credentials, error) {
	var w struct {
		Strategy    Strategy                   `json:"strategy"`
		Credentials map[string]json.RawMessage `json:"credentials"`
		ExpiresAt   *int64                     `json:"expires_at"`
		Config      map[string]string          `json:"connection_config"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		// json's messages quote types and offsets, never the values.
		return nil, fmt.Errorf("nexus: reading the credentials of %s: %w", id, err)
	}
	c := &Credentials{ConnectionID: id, Strategy: w.Strategy, Fields: make(map[string]Secret, len(w.Credentials)), ConnectionConfig: w.Config, derived: &derived{}}
	for k, raw := range w.Credentials {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			c.Fields[k] = Secret(s)
		}
	}
	if w.ExpiresAt != nil && *w.ExpiresAt > 0 {
		c.ExpiresAt = time.Unix(*w.ExpiresAt, 0)
	}
	c.AccessToken, c.APIKey = c.Fields["access_token"], c.Fields["api_key"]
	c.Username, c.Password = c.Fields["username"], c.Fields["password"]
	c.AccessKeyID, c.SecretAccessKey, c.SessionToken = string(c.Fields["access_key_id"]), c.Fields["secret_access_key"], c.Fields["session_token"]
	switch c.Strategy.Type {
	case StrategyOAuth2:
		if c.AccessToken == "" {
			return nil, fmt.Errorf("nexus: the credentials of %s have no access_token", id)
		}
		c.derived.header = "Bearer " + string(c.AccessToken)
	case StrategyAPIKey:
		if c.APIKey == "" || c.Strategy.Name == "" {
			return nil, fmt.Errorf("nexus: the credentials of %s have no api_key or no strategy name", id)
		}
		c.derived.header = c.Strategy.Prefix + string(c.APIKey)
	case StrategyBasicAuth:
		// RFC 7617 §2: base64 of user-id ":" password.
		c.derived.header = "Basic " + base64.StdEncoding.EncodeToString([]byte(string(c.Username)+":"+string(c.Password)))
	case StrategyAWSSigV4:
		if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Strategy.Region == "" || c.Strategy.Service == "" {
			return nil, fmt.Errorf("nexus: the credentials of %s lack access_key_id, secret_access_key, region or service", id)
		}
	default:
		return nil, fmt.Errorf("nexus: the credentials of %s have strategy %q, which this SDK does not know", id, c.Strategy.Type)
	}
	return c, nil
}

// ---- cache ----------------------------------------------------------------------------------------------

type credentialCache struct {
	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	creds      *Credentials
	freshUntil time.Time
	gen        uint64  // bumped by invalidate: a fetch that started before does not store its result
	fetch      *flight // the GET /v1/token in flight
	refresh    *flight // the forced refresh in flight
}

type flight struct {
	done  chan struct{}
	creds *Credentials
	err   error
}

func (f *flight) wait(ctx context.Context) (*Credentials, error) {
	select {
	case <-f.done:
		return f.creds, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (cc *credentialCache) entry(id string) *cacheEntry {
	e := cc.entries[id]
	if e == nil {
		e = &cacheEntry{}
		cc.entries[id] = e
	}
	return e
}

// invalidate drops the entry's credential; a fetch in flight finishes for its waiters but stores nothing. The
// entry itself stays (a few words per connection id): with a fresh entry in its place, that fetch's generation
// could match again and bring the dropped credential back.
func (cc *credentialCache) invalidate(id string) {
	cc.mu.Lock()
	if e := cc.entries[id]; e != nil {
		e.gen++
		e.creds = nil
		e.fetch = nil
	}
	cc.mu.Unlock()
}

// freshUntil: shortly before expires_at (refreshBefore, but never more than half the time left), or the TTL for
// credentials that do not expire.
func (c *Client) freshUntil(creds *Credentials, now time.Time) time.Time {
	if creds.ExpiresAt.IsZero() {
		return now.Add(c.credentialTTL)
	}
	left := creds.ExpiresAt.Sub(now)
	margin := c.refreshBefore
	if margin > left/2 {
		margin = left / 2
	}
	return creds.ExpiresAt.Add(-margin)
}

// Credentials returns the connection's credentials: from the cache while they are fresh, else from
// GET /v1/token/{id}. Concurrent callers share one fetch; each may stop waiting when its ctx ends (the fetch goes
// on for the others). When that fetch fails transiently (Nexus unreachable or busy: a 429, a 502/503/504 without a
// Nexus code or with a transient one, no answer, a timeout) while the cached credential has not expired, the cached
// credential is returned, and Nexus asked again after 5 seconds at most; any other error is returned (a 500, a
// 502/503/504 refusal such as token_request_failed, attention_required, not found).
func (c *Client) Credentials(ctx context.Context, id string) (*Credentials, error) {
	now := c.now()
	c.cache.mu.Lock()
	e := c.cache.entry(id)
	if e.creds != nil && now.Before(e.freshUntil) {
		creds := e.creds
		c.cache.mu.Unlock()
		return creds, nil
	}
	f := e.fetch
	if f == nil && e.refresh != nil {
		f = e.refresh // a refresh after a provider 401 is under way: its credential is the one to use
	}
	if f == nil {
		f = &flight{done: make(chan struct{})}
		e.fetch = f
		go c.runFetch(detached{ctx}, id, e.gen, f)
	}
	c.cache.mu.Unlock()
	return f.wait(ctx)
}

func (c *Client) fetchCredentials(ctx context.Context, id string) (*Credentials, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, connPath("/v1/token/", id), nil, nil, &raw); err != nil {
		return nil, err
	}
	return parseCredentials(id, raw)
}

// store records a fetch's outcome when no invalidation happened since it started (gen). Must hold mu.
func (c *Client) store(id string, gen uint64, creds *Credentials, err error) {
	e := c.cache.entries[id]
	if e == nil || e.gen != gen {
		return
	}
	if err == nil {
		e.creds, e.freshUntil = creds, c.freshUntil(creds, c.now())
		return
	}
	var na *NotActiveError
	var nf *NotFoundError
	if errors.As(err, &na) || errors.As(err, &nf) {
		e.creds = nil
	}
}

// staleRetry is how long a credential served over a transient failure (stale) is used before Nexus is asked again.
const staleRetry = 5 * time.Second

// stale is the cached credential of id to serve over err when its fetch failed transiently (transientFailure: Nexus
// unreachable or busy) while it is due for a fetch but not expired, as Nexus itself serves a valid token while the
// provider is down; it is then used for staleRetry before the next try. Nil for any other error (a 500, a
// 502/503/504 refusal such as token_request_failed, attention_required, not found), for a credential without
// expires_at, and after an invalidation (gen). Must hold mu.
func (c *Client) stale(id string, gen uint64, err error) *Credentials {
	e := c.cache.entries[id]
	if err == nil || !transientFailure(err) || e == nil || e.gen != gen || e.creds == nil || e.creds.ExpiresAt.IsZero() {
		return nil
	}
	now := c.now()
	if !now.Before(e.creds.ExpiresAt) {
		return nil
	}
	e.freshUntil = now.Add(staleRetry)
	if e.freshUntil.After(e.creds.ExpiresAt) {
		e.freshUntil = e.creds.ExpiresAt
	}
	return e.creds
}

func (c *Client) runFetch(ctx context.Context, id string, gen uint64, f *flight) {
	f.creds, f.err = c.fetchCredentials(ctx, id)
	c.cache.mu.Lock()
	if creds := c.stale(id, gen, f.err); creds != nil {
		f.creds, f.err = creds, nil
	} else {
		c.store(id, gen, f.creds, f.err)
	}
	if e := c.cache.entries[id]; e != nil && e.fetch == f {
		e.fetch = nil
	}
	c.cache.mu.Unlock()
	close(f.done)
}

// refreshAfterRejection replaces credentials a provider rejected (401). OAuth 2.0 tokens are refreshed by Nexus
// first (POST /v1/refresh/{id}); other credentials are fetched again (they may have been captured anew). Callers
// that saw the same rejected credential share one refresh; one that arrives after it finished gets its result.
func (c *Client) refreshAfterRejection(ctx context.Context, id string, rejected *Credentials) (*Credentials, error) {
	c.cache.mu.Lock()
	e := c.cache.entry(id)
	if e.creds != nil && !e.creds.sameSecret(rejected) && c.now().Before(e.freshUntil) {
		creds := e.creds
		c.cache.mu.Unlock()
		return creds, nil
	}
	f := e.refresh
	if f == nil {
		f = &flight{done: make(chan struct{})}
		e.refresh = f
		e.gen++ // a plain fetch in flight would bring back the rejected token: it does not store
		e.creds, e.fetch = nil, nil
		go c.runRefresh(detached{ctx}, id, e.gen, rejected.Strategy.Type == StrategyOAuth2, f)
	}
	c.cache.mu.Unlock()
	return f.wait(ctx)
}

func (c *Client) runRefresh(ctx context.Context, id string, gen uint64, oauth bool, f *flight) {
	if oauth {
		var conn Connection
		f.err = c.do(ctx, http.MethodPost, connPath("/v1/refresh/", id), nil, nil, &conn)
	}
	if f.err == nil {
		f.creds, f.err = c.fetchCredentials(ctx, id)
	}
	c.cache.mu.Lock()
	c.store(id, gen, f.creds, f.err)
	if e := c.cache.entries[id]; e != nil && e.refresh == f {
		e.refresh = nil
	}
	c.cache.mu.Unlock()
	close(f.done)
}

// scrub replaces every secret of creds in err's message.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }

// Is lets errors.Is see through (context.Canceled, ...) without handing out the unscrubbed error.
func (e *scrubbedError) Is(target error) bool { return errors.Is(e.err, target) }

func scrub(err error, creds *Credentials) error {
	if err == nil || creds == nil {
		return err
	}
	msg := err.Error()
	clean := msg
	for _, s := range creds.secrets() {
		clean = strings.ReplaceAll(clean, s, redacted)
	}
	if clean == msg {
		return err
	}
	return &scrubbedError{clean, err}
}
