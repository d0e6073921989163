package nexus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Version of this SDK, sent in the User-Agent.
const Version = "0.1.0"

// Defaults of a Client.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultRefreshBefore = 30 * time.Second
	DefaultCredentialTTL = 5 * time.Minute
)

// RetryPolicy says how calls to Nexus are retried (the policy every Nexus SDK follows; see the README's Retries).
// Only idempotent calls (GET, HEAD, OPTIONS, PUT, DELETE; through the Bridge, with a body that can be sent again) are
// retried, and only after Nexus's own transient answers, 429 and 502, 503 or 504 (without a Nexus problem code, or with
// a transient one: upstream_unreachable, upstream_timeout, database_unavailable, refresh_unavailable,
// aws_sts_throttled), or a connection that failed before any answer (refused, reset, DNS). Never a POST or PATCH, a 500 (internal_error is a bug, not transient), another
// 4xx (attention_required in particular), a timeout or the caller's cancellation.
type RetryPolicy struct {
	// MaxAttempts counts the first attempt: 1 disables retries. Default 3 (the first and two retries).
	MaxAttempts int
	// BaseDelay is the first backoff when Nexus sent no Retry-After; it doubles per retry (250ms, then 500ms), with
	// full jitter. Default 250ms.
	BaseDelay time.Duration
	// MaxDelay caps one wait. An answer whose Retry-After is longer is not waited for: its typed error, carrying
	// RetryAfter, is returned at once. Default 10s.
	MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 3
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 250 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 10 * time.Second
	}
	return p
}

// delay before retry number n (0 for the first retry): full jitter over an exponential backoff, never less than
// the server's Retry-After. ok is false when Retry-After is longer than MaxDelay.
func (p RetryPolicy) delay(n int, retryAfter time.Duration) (d time.Duration, ok bool) {
	if retryAfter > p.MaxDelay {
		return 0, false
	}
	backoff := p.BaseDelay << uint(n)
	if backoff <= 0 || backoff > p.MaxDelay {
		backoff = p.MaxDelay
	}
	d = time.Duration(rand.Int63n(int64(backoff)) + 1)
	if d < retryAfter {
		d = retryAfter
	}
	return d, true
}

// transientCodes are the codes of Nexus's 502/503/504 problems that a later attempt may not meet (docs/errors.md):
// the provider or AWS STS unreachable, slow or throttling, the database unavailable, a refresh not possible yet. The
// others are refusals that sending again does not change, and may repeat work (502 token_request_failed: each
// attempt starts another client_credentials grant; redirect_refused; aws_assume_role_failed).
var transientCodes = map[string]bool{
	"upstream_unreachable": true,
	"upstream_timeout":     true,
	"database_unavailable": true,
	"refresh_unavailable":  true,
	"aws_sts_throttled":    true,
}

// transientCode: a 502/503/504 with this code (empty: no Nexus problem, a proxy's or load balancer's answer) is retried.
func transientCode(code string) bool { return code == "" || transientCodes[code] }

// transientFailure: an error the next call may not meet, which WaitUntilActive polls through and over which Credentials
// serves a cached credential that has not expired: what the retry policy retries (a 429; a 502/503/504 without a Nexus
// code or with a transient one; Nexus unreachable) and a call that timed out. Not a 500 internal_error (a bug in
// Nexus), nor a 502/503/504 with another code (token_request_failed, aws_assume_role_failed, …: a refusal that asking
// again does not change).
func transientFailure(err error) bool {
	var un *UnavailableError
	var rl *RateLimitedError
	var tr *transportError
	return (errors.As(err, &un) && transientCode(un.Code)) || errors.As(err, &rl) || errors.As(err, &tr)
}

// retryWait is the retry policy's one decision, for calls to Nexus's API and requests through the Bridge alike:
// whether attempt (0 for the first) of attempts, which failed with err, is followed by another, and after how long.
// Retried: *RateLimitedError (429), *UnavailableError (502, 503, 504) without a Nexus code or with a transient one
// (transientCode) and a *transportError that is not a timeout
// (the connection failed before any answer). Not when ctx is done (the caller's cancellation or deadline), nor when
// the answer's Retry-After is longer than MaxDelay: the error then goes to the caller at once.
func (c *Client) retryWait(ctx context.Context, attempt, attempts int, err error) (time.Duration, bool) {
	if attempt+1 >= attempts || ctx.Err() != nil {
		return 0, false
	}
	var retryAfter time.Duration
	var rl *RateLimitedError
	var un *UnavailableError
	var tr *transportError
	switch {
	case errors.As(err, &rl):
		retryAfter = rl.RetryAfter
	case errors.As(err, &un) && transientCode(un.Code):
		retryAfter = un.RetryAfter
	case errors.As(err, &tr) && !tr.timedOut():
	default:
		return 0, false
	}
	return c.retry.delay(attempt, retryAfter)
}

// Client talks to one Nexus with one API key. It is safe for concurrent use; create one and share it, since it
// holds the credential cache.
type Client struct {
	baseURL       string
	apiKey        Secret
	http          *http.Client
	timeout       time.Duration
	retry         RetryPolicy
	refreshBefore time.Duration
	credentialTTL time.Duration
	userAgent     string
	now           func() time.Time
	cache         credentialCache
}

// Option configures a Client.
type Option func(*Client)

// WithBaseURL sets Nexus's base URL (default: NEXUS_URL).
func WithBaseURL(u string) Option { return func(c *Client) { c.baseURL = u } }

// WithAPIKey sets the API key sent as X-API-Key (default: NEXUS_API_KEY).
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = Secret(key) } }

// WithHTTPClient sets the http.Client used for calls to Nexus (default: a client on http.DefaultTransport). The
// Client uses a copy of it whose CheckRedirect returns http.ErrUseLastResponse (noRedirects).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithTransport sets the RoundTripper used for calls to Nexus (and, through the Bridge, to providers).
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) { h := *c.http; h.Transport = rt; c.http = &h }
}

// WithTimeout bounds each attempt of a call to Nexus (default 30s; 0 for none); an attempt that times out is not
// retried. The caller's context bounds the whole call, retries and their waits included.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetryPolicy replaces the retry policy (zero fields take their defaults).
func WithRetryPolicy(p RetryPolicy) Option { return func(c *Client) { c.retry = p.withDefaults() } }

// WithRefreshBefore sets how long before expires_at a cached credential stops being used (default 30s; never more
// than half the time the credential had left when it was fetched).
func WithRefreshBefore(d time.Duration) Option { return func(c *Client) { c.refreshBefore = d } }

// WithCredentialTTL sets how long a credential without expires_at (API keys, Basic, AWS keys) is cached
// (default 5m; a provider 401 drops it at once).
func WithCredentialTTL(d time.Duration) Option { return func(c *Client) { c.credentialTTL = d } }

// WithUserAgent replaces the User-Agent sent to Nexus.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithClock replaces time.Now, for tests of cache expiry.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// NewClient returns a client configured by opts, falling back to NEXUS_URL and NEXUS_API_KEY.
func NewClient(opts ...Option) (*Client, error) {
	c := &Client{
		baseURL:       os.Getenv("NEXUS_URL"),
		apiKey:        Secret(os.Getenv("NEXUS_API_KEY")),
		http:          &http.Client{},
		timeout:       DefaultTimeout,
		retry:         RetryPolicy{}.withDefaults(),
		refreshBefore: DefaultRefreshBefore,
		credentialTTL: DefaultCredentialTTL,
		userAgent:     "nexus-go/" + Version,
		now:           time.Now,
	}
	for _, opt := range opts {
		opt(c)
	}
	c.baseURL = strings.TrimRight(c.baseURL, "/")
	if c.baseURL == "" {
		return nil, errors.New("nexus: no base URL: set NEXUS_URL or use WithBaseURL")
	}
	u, err := url.Parse(c.baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return nil, errors.New("nexus: the base URL must be an absolute http(s) URL without user info or query")
	}
	if c.apiKey == "" {
		return nil, errors.New("nexus: no API key: set NEXUS_API_KEY or use WithAPIKey")
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	h := *c.http
	h.CheckRedirect = noRedirects
	c.http = &h
	c.cache.entries = make(map[string]*cacheEntry)
	return c, nil
}

// BaseURL is Nexus's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.baseURL }

// String describes the client without its API key.
func (c *Client) String() string { return "nexus.Client{" + c.baseURL + ", api_key: " + redacted + "}" }

// GoString is String, so that %#v does not print the API key either.
func (c *Client) GoString() string { return c.String() }

// Format prints String for every verb.
func (c *Client) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, c.String()) }

// noRedirects is the CheckRedirect of the http.Client that calls Nexus's API: a redirect is not followed but comes
// back as its 3xx, an *APIError. net/http keeps X-API-Key on a redirect to another host (it drops only Authorization
// and cookies), and the Bridge passes a provider's redirect on with the provider's absolute Location: followed, it
// would give another host Nexus's key. The Bridge's own calls (Transport) use only this client's Transport.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// do sends one call to Nexus, retrying idempotent calls per the policy, and decodes a 2xx answer into out.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out interface{}) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("nexus: encoding the request: %w", err)
		}
	}
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	attempts := 1
	if idempotent(method) {
		attempts = c.retry.MaxAttempts
	}
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, method, target, path, body, out)
		if err == nil {
			return nil
		}
		if attempt > 0 && method == http.MethodDelete && errors.Is(err, ErrNotFound) {
			// The first attempt may have deleted it, its answer lost on the way back (a proxy's 502, a reset): gone
			// is what was asked.
			return nil
		}
		d, retry := c.retryWait(ctx, attempt, attempts, err)
		if !retry || sleep(ctx, d) != nil {
			return err
		}
	}
}

// transportError: Nexus could not be reached, or the connection broke before its answer was read whole (refused,
// reset, DNS, a timeout). Retried for idempotent calls unless it is a timeout (timedOut).
type transportError struct {
	method, path string
	err          error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("nexus: %s %s: %v", e.method, e.path, e.err)
}
func (e *transportError) Unwrap() error { return e.err }

// timedOut: the attempt ran out of time (the client's WithTimeout, an http.Client Timeout, the caller's deadline) or
// was cancelled. Nexus may be working on the call: it is not retried.
func (e *transportError) timedOut() bool {
	var ne net.Error
	return errors.Is(e.err, context.DeadlineExceeded) || errors.Is(e.err, context.Canceled) || (errors.As(e.err, &ne) && ne.Timeout())
}

func (c *Client) once(ctx context.Context, method, target, path string, body []byte, out interface{}) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return fmt.Errorf("nexus: %s %s: %w", method, path, err)
	}
	req.Header.Set("X-API-Key", string(c.apiKey))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error names the URL (base URL and path, no secret: the key travels in a header).
		return &transportError{method, path, unwrapURLError(err)}
	}
	if resp.StatusCode >= 300 {
		return readProblem(resp, method, path, c.now())
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if errors.As(err, &syntax) || errors.As(err, &typ) {
			// Nexus answered, with a body this SDK cannot read: sending the call again would not change it.
			return fmt.Errorf("nexus: %s %s: reading the answer: %w", method, path, err)
		}
		return &transportError{method, path, fmt.Errorf("reading the answer: %w", err)}
	}
	// Read to EOF, so that the connection goes back to the pool instead of being closed.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// detached keeps a context's values but not its cancellation or deadline (context.WithoutCancel is Go 1.21): a
// credential fetch shared by many callers must not fail because the first of them gave up.
type detached struct{ parent context.Context }

func (d detached) Deadline() (time.Time, bool)       { return time.Time{}, false }
func (d detached) Done() <-chan struct{}             { return nil }
func (d detached) Err() error                        { return nil }
func (d detached) Value(key interface{}) interface{} { return d.parent.Value(key) }
