package nexus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Transport is an http.RoundTripper that calls a provider's API with one connection's credentials.
//
// Directly (the default), it takes the connection's credentials from the Client (cached; one fetch shared by
// concurrent requests), applies them to a copy of each request and sends it with Base. When the provider answers
// 401, it has Nexus replace the credential (for OAuth 2.0, POST /v1/refresh) and sends the request once more if it
// can be replayed (no body, or GetBody set, as http.NewRequest does for in-memory bodies). A connection that needs
// attention then fails the request with *AttentionRequiredError.
//
// Redirects, directly: in an http.Client of your own, which follows redirects as net/http does, a hop (a request
// with Response set, Response.Request being the hop before) gets the credential only when its origin (scheme, host
// and port) is that of the request its chain started with, applied anew (a SigV4 signature for the hop's method and
// path); a hop to any other origin is sent without it, with your headers only, and a 401 there refreshes nothing, as
// the TypeScript and Python SDKs do. A hop whose chain cannot be walked back to its first request (a Base that
// answers without Response.Request is mended here) gets no credential either. Client.HTTPClient follows redirects
// itself and hands a cross-origin one back as the 3xx instead.
//
// With Bridge set, requests go through the Nexus Bridge instead and the credential never reaches this process.
// Write their URLs as Client.BridgeURL(id) + path (the path relative to the provider's api_base_url); a URL
// anywhere else is sent to the Bridge with its path and query kept and its scheme and host dropped, so
// "https://api.github.com/user" becomes BridgeURL(id) + "/user". Nexus's own refusals (connection not active, not found, ...) come back as
// the same typed errors; the provider's answers pass through as they are. Nexus's transient ones (429, 502, 503, 504:
// the database or the provider unavailable, a rate limit), and a connection to Nexus that failed before any answer,
// are first retried per the Client's RetryPolicy when the method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE) and
// the body can be sent again (none, or GetBody set).
//
// Redirects in Bridge mode: the Bridge rewrites a provider's redirect inside its API to the Bridge's own path
// (Location: /v1/bridge/{id}/...); a redirect hop whose Location (resolved against the Bridge URL that answered it)
// is on Nexus's scheme, host and port and under this connection's Bridge is sent there with the API key. A hop to
// anywhere else (the provider's host outside its API, which the Bridge passes on as the provider wrote it) is not
// mapped to the Bridge, which would send it to a wrong path of the API: Client.HTTPClient hands that redirect back
// (http.ErrUseLastResponse), and an http.Client of your own that follows it gets an error from the Transport
// (give it a CheckRedirect that returns http.ErrUseLastResponse, as HTTPClient's does).
type Transport struct {
	Client       *Client
	ConnectionID string
	// Bridge sends requests through the Nexus Bridge.
	Bridge bool
	// Base sends the requests: to the provider directly, or to Nexus with Bridge. Default: the Client's
	// http.Client transport, or http.DefaultTransport.
	Base http.RoundTripper

	// follow: this Transport follows redirects itself (HTTPClient's), with fetch's rules.
	follow bool
}

// TransportOption configures Transport and HTTPClient.
type TransportOption func(*Transport)

// ViaBridge sends requests through the Nexus Bridge instead of applying the credential here.
func ViaBridge() TransportOption { return func(t *Transport) { t.Bridge = true } }

// WithBase sets the RoundTripper that sends the requests.
func WithBase(rt http.RoundTripper) TransportOption { return func(t *Transport) { t.Base = rt } }

// Transport returns an http.RoundTripper for the connection.
func (c *Client) Transport(connectionID string, opts ...TransportOption) *Transport {
	t := &Transport{Client: c, ConnectionID: connectionID}
	for _, o := range opts {
		o(t)
	}
	return t
}

// BridgeURL is the base URL of the connection's Bridge: {NEXUS_URL}/v1/bridge/{connection_id}. A request to
// BridgeURL + "/path" goes to the provider's api_base_url + "/path" with the credential applied by Nexus.
func (c *Client) BridgeURL(connectionID string) string {
	return c.baseURL + "/v1/bridge/" + url.PathEscape(connectionID)
}

// HTTPClient returns an http.Client whose requests carry the connection's credentials. It follows redirects only
// to the same scheme and host (a credential must not follow a redirect elsewhere); with ViaBridge, only those to
// this connection's Bridge on Nexus (a redirect inside the provider's API, which the Bridge rewrites to its own
// path). Any other redirect comes back as the 3xx.
//
// Redirects are followed as fetch and the other Nexus SDKs follow them, not as net/http does: at most 20 hops (more
// is an error); 303 turns every method but HEAD into a GET without a body, 301 and 302 turn only a POST into a GET;
// any other method (PUT, DELETE, ...) keeps its method and body, as 307 and 308 keep every method and body. A body
// that must be sent again and cannot be (no GetBody) ends the chain: the 3xx comes back. The Transport of the
// returned client does the following (each hop with the credential applied anew, a SigV4 signature made again for
// the hop's method and path); the http.Client only hands back the redirects it did not follow.
func (c *Client) HTTPClient(connectionID string, opts ...TransportOption) *http.Client {
	t := c.Transport(connectionID, opts...)
	t.follow = true
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // the Transport followed every redirect it may follow
		},
	}
}

// MaxRedirects is how many redirects HTTPClient follows in one request, as fetch and the other Nexus SDKs do.
const MaxRedirects = 20

// redirectStatus tells whether status is a redirect that names where to go (Location).
func redirectStatus(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// contentHeaders are dropped with the body when a redirect turns a request into a GET (Fetch standard, HTTP-redirect fetch).
var contentHeaders = []string{"Content-Type", "Content-Length", "Content-Encoding", "Content-Language", "Content-Location"}

// roundTripFollowing sends req and follows the redirects HTTPClient may follow (see HTTPClient), each hop through
// roundTripBridge or roundTripDirect.
func (t *Transport) roundTripFollowing(req *http.Request) (*http.Response, error) {
	first := req.URL
	hop := req
	for redirects := 0; ; redirects++ {
		var resp *http.Response
		var err error
		if t.Bridge {
			resp, err = t.roundTripBridge(hop)
		} else {
			resp, err = t.roundTripDirect(hop)
		}
		if err != nil || !redirectStatus(resp.StatusCode) || resp.Header.Get("Location") == "" {
			return resp, err
		}
		from := hop.URL
		if resp.Request != nil && resp.Request.URL != nil {
			from = resp.Request.URL // the Bridge URL that answered, when the caller wrote a provider URL
		}
		target, perr := from.Parse(resp.Header.Get("Location"))
		if perr != nil || (target.Scheme != "http" && target.Scheme != "https") {
			return resp, nil
		}
		if t.Bridge {
			if !t.onBridge(target) {
				return resp, nil
			}
		} else if target.Scheme != first.Scheme || !strings.EqualFold(target.Host, first.Host) {
			return resp, nil // the credential stays on the request's origin: the caller gets the 3xx
		}
		if redirects >= MaxRedirects {
			drain(resp)
			return nil, fmt.Errorf("nexus: stopped after %d redirects", MaxRedirects)
		}
		next, ok := redirectedRequest(hop, resp.StatusCode, target)
		if !ok {
			return resp, nil // the body must be sent again and cannot be
		}
		next.Response = resp
		drain(resp)
		hop = next
	}
}

// redirectedRequest is the next hop after a redirect with status from hop to target, with fetch's method rules: 303
// (but for HEAD), and 301/302 after a POST, become a GET without the body or its Content-* headers; every other
// request keeps its method and body, and ok is false when that body cannot be sent again (no GetBody).
func redirectedRequest(hop *http.Request, status int, target *url.URL) (*http.Request, bool) {
	next := hop.Clone(hop.Context())
	next.URL, next.Host = target, ""
	next.Response = nil
	if (status == http.StatusSeeOther && hop.Method != http.MethodGet && hop.Method != http.MethodHead) ||
		((status == http.StatusMovedPermanently || status == http.StatusFound) && hop.Method == http.MethodPost) {
		next.Method = http.MethodGet
		next.Body, next.GetBody, next.ContentLength = nil, nil, 0
		for _, name := range contentHeaders {
			next.Header.Del(name)
		}
		return next, true
	}
	if hop.Body == nil || hop.Body == http.NoBody {
		next.Body = hop.Body
		return next, true
	}
	if hop.GetBody == nil {
		return nil, false
	}
	body, err := hop.GetBody()
	if err != nil {
		return nil, false
	}
	next.Body = body
	return next, true
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	if t.Client != nil && t.Client.http != nil && t.Client.http.Transport != nil {
		return t.Client.http.Transport
	}
	return http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Client == nil || t.ConnectionID == "" {
		closeBody(req)
		return nil, errors.New("nexus: Transport needs a Client and a ConnectionID")
	}
	if t.follow && req.Response == nil {
		return t.roundTripFollowing(req)
	}
	if t.Bridge {
		return t.roundTripBridge(req)
	}
	return t.roundTripDirect(req)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func (t *Transport) roundTripDirect(req *http.Request) (*http.Response, error) {
	if req.Response != nil && !t.onFirstOrigin(req) {
		// A redirect hop (http.Client sets req.Response) to another origin than the request the caller made: the
		// credential is not applied, as the TypeScript and Python SDKs send such a hop without it.
		resp, err := t.base().RoundTrip(req)
		if err == nil {
			chain(resp, req)
		}
		return resp, err
	}
	ctx := req.Context()
	creds, err := t.Client.Credentials(ctx, t.ConnectionID)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	out := req.Clone(ctx)
	if err := creds.ApplyAt(out, t.Client.now()); err != nil {
		closeBody(req)
		return nil, scrub(err, creds)
	}
	replayable := out.Body == nil || out.Body == http.NoBody || out.GetBody != nil
	resp, err := t.base().RoundTrip(out)
	if err != nil {
		return nil, scrub(err, creds)
	}
	chain(resp, out)
	if resp.StatusCode != http.StatusUnauthorized {
		return resp, nil
	}
	if !replayable {
		// The caller may retry; it will get a credential fetched anew.
		t.Client.cache.invalidate(t.ConnectionID)
		return resp, nil
	}
	fresh, rerr := t.Client.refreshAfterRejection(ctx, t.ConnectionID, creds)
	if rerr != nil {
		var api *APIError
		if errors.As(rerr, &api) && api.Code == "refresh_not_supported" {
			// Nothing to refresh (no refresh token): the provider's 401 stands.
			return resp, nil
		}
		// The typed error says why the credential could not be replaced: *AttentionRequiredError (the user must
		// connect again), *NotFoundError, *UnavailableError (try again after RetryAfter), ...
		drain(resp)
		return nil, rerr
	}
	if fresh.sameSecret(creds) {
		return resp, nil
	}
	retry := req.Clone(ctx)
	if out.GetBody != nil && out.Body != nil && out.Body != http.NoBody {
		body, err := out.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body, retry.GetBody, retry.ContentLength = body, out.GetBody, out.ContentLength
	}
	if err := fresh.ApplyAt(retry, t.Client.now()); err != nil {
		closeBody(retry)
		return resp, nil
	}
	drain(resp)
	resp, err = t.base().RoundTrip(retry)
	if err != nil {
		return nil, scrub(err, fresh)
	}
	chain(resp, retry)
	return resp, nil
}

// maxChain bounds the walk back through a redirect chain (http.Client stops at 10 hops by default, HTTPClient at 20).
const maxChain = 1000

// firstRequest is the request a redirect chain started with: from req back through req.Response.Request, which
// http.Client sets on each hop it makes from a redirect. ok is false when the chain cannot be walked to its start (a
// hop whose Response has no Request, or a chain longer than maxChain).
func firstRequest(req *http.Request) (first *http.Request, ok bool) {
	for i := 0; i < maxChain; i++ {
		if req.Response == nil {
			return req, true
		}
		if req.Response.Request == nil {
			return nil, false
		}
		req = req.Response.Request
	}
	return nil, false
}

// onFirstOrigin tells whether a redirect hop goes to the origin (scheme, host and port) of the request its chain
// started with, the only origin the credential is for. A hop from another origin back to that one is on it; a hop
// whose chain cannot be walked back is not.
func (t *Transport) onFirstOrigin(req *http.Request) bool {
	first, ok := firstRequest(req)
	return ok && sameOrigin(req.URL, first.URL)
}

// sameOrigin: same scheme, host and port (the scheme's default port when none is written).
func sameOrigin(a, b *url.URL) bool {
	return a != nil && b != nil && strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && portOf(a) == portOf(b)
}

// chain makes resp.Request lead back to the request the chain started with, so that the next redirect hop's origin
// can be compared with it (onFirstOrigin): a Base that sets no Request (or one from another chain) gets sent's.
func chain(resp *http.Response, sent *http.Request) {
	if resp.Request != nil {
		if got, ok := firstRequest(resp.Request); ok {
			if want, ok := firstRequest(sent); ok && got == want {
				return
			}
		}
	}
	resp.Request = sent
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// bridgeRedirect is the URL a redirect hop (req.Response set by http.Client) goes to: the redirect's Location resolved
// against the URL that answered it (the Bridge URL actually sent, not the provider URL the caller may have written),
// and whether that is on this connection's Bridge.
func (t *Transport) bridgeRedirect(req *http.Request) (*url.URL, bool) {
	from := req.URL
	if req.Response.Request != nil && req.Response.Request.URL != nil {
		from = req.Response.Request.URL
	}
	target, err := from.Parse(req.Response.Header.Get("Location"))
	if err != nil {
		return nil, false
	}
	return target, t.onBridge(target)
}

// onBridge tells whether u is on this connection's Bridge: Nexus's scheme, host and port, no user info, and a path
// that is BridgeURL's or under it, with no dot segment (escaped or not) that could lead out of it.
func (t *Transport) onBridge(u *url.URL) bool {
	bridge, err := url.Parse(t.Client.BridgeURL(t.ConnectionID))
	if err != nil || u.User != nil || !strings.EqualFold(u.Scheme, bridge.Scheme) || !strings.EqualFold(u.Hostname(), bridge.Hostname()) ||
		portOf(u) != portOf(bridge) {
		return false
	}
	path, prefix := u.EscapedPath(), bridge.EscapedPath()
	if path != prefix && !strings.HasPrefix(path, prefix+"/") {
		return false
	}
	for _, segment := range strings.Split(path, "/") {
		if s, err := url.PathUnescape(segment); err != nil || s == "." || s == ".." {
			return false
		}
	}
	return true
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

func (t *Transport) roundTripBridge(req *http.Request) (*http.Response, error) {
	c := t.Client
	out := req.Clone(req.Context())
	bridge := c.BridgeURL(t.ConnectionID)
	if req.Response != nil {
		// A redirect hop. Only one to this connection's Bridge is sent, to that Bridge URL; any other is not mapped to
		// the Bridge as a first request is (https://slack.com/other, outside an API based at https://slack.com/api,
		// would become .../api/other), nor sent anywhere with the key.
		target, ok := t.bridgeRedirect(req)
		if !ok {
			closeBody(req)
			where := "an unreadable Location"
			if target != nil {
				where = target.Scheme + "://" + target.Host + target.EscapedPath()
			}
			return nil, errors.New("nexus: the Bridge's redirect to " + where + " is not this connection's Bridge and is not followed " +
				"(Client.HTTPClient hands it back; give your http.Client a CheckRedirect that returns http.ErrUseLastResponse)")
		}
		out.URL, out.Host = target, ""
	} else if full := req.URL.Scheme + "://" + req.URL.Host + req.URL.EscapedPath(); full != bridge && !strings.HasPrefix(full, bridge+"/") {
		// A URL elsewhere: its path and query are relative to the provider's api_base_url.
		target, err := url.Parse(bridge + req.URL.EscapedPath())
		if err != nil {
			closeBody(req)
			return nil, err
		}
		target.RawQuery = req.URL.RawQuery
		out.URL, out.Host = target, ""
	}
	out.Header.Set("X-API-Key", string(c.apiKey))
	// Retried per the client's RetryPolicy (retryWait, as its API calls are) when the method is idempotent and the body
	// can be sent again (none, or GetBody): Nexus's own transient refusals (429, 502, 503, 504 problems of type
	// urn:nexus:problem:...) and a connection that failed before any answer. A provider's answer is never retried here.
	attempts := 1
	if idempotent(out.Method) && (out.Body == nil || out.Body == http.NoBody || out.GetBody != nil) {
		attempts = c.retry.MaxAttempts
	}
	for attempt := 0; ; attempt++ {
		resp, err := t.bridgeOnce(req, out)
		if err == nil {
			return resp, nil
		}
		d, retry := c.retryWait(req.Context(), attempt, attempts, err)
		if !retry || sleep(req.Context(), d) != nil {
			return nil, unwrapTransport(err)
		}
		out = out.Clone(req.Context())
		if out.GetBody != nil {
			body, gerr := out.GetBody()
			if gerr != nil {
				return nil, unwrapTransport(err)
			}
			out.Body = body
		}
	}
}

// unwrapTransport hands the caller the Base's own error for a Bridge request that got no answer, as before retries.
func unwrapTransport(err error) error {
	if tr, ok := err.(*transportError); ok {
		return tr.err
	}
	return err
}

// bridgeOnce sends out (req as it goes to the Bridge) once: a problem from Nexus itself becomes a typed error, no
// answer at all a *transportError.
func (t *Transport) bridgeOnce(req, out *http.Request) (*http.Response, error) {
	c := t.Client
	var timedOut func() bool
	if c.timeout > 0 {
		// The client's timeout bounds each attempt until the answer's headers (as an http.Client's Timeout would, but
		// not the body, which the caller reads at its own pace): a Bridge call that stalls is not waited for forever.
		ctx, cancel := context.WithCancel(out.Context())
		var fired int32
		timer := time.AfterFunc(c.timeout, func() { atomic.StoreInt32(&fired, 1); cancel() })
		out = out.WithContext(ctx)
		timedOut = func() bool { return !timer.Stop() && atomic.LoadInt32(&fired) == 1 }
		defer func() {
			if timedOut != nil { // no answer to hand on: nothing will close a body
				timer.Stop()
				cancel()
			}
		}()
		resp, err := t.base().RoundTrip(out)
		if err == nil && timedOut() {
			resp.Body.Close()
			err = context.DeadlineExceeded
		}
		if err != nil {
			if atomic.LoadInt32(&fired) == 1 {
				err = fmt.Errorf("nexus: the Bridge did not answer within %s: %w", c.timeout, context.DeadlineExceeded)
			}
			return nil, &transportError{req.Method, out.URL.EscapedPath(), err}
		}
		resp.Body = cancelOnClose{resp.Body, cancel}
		timedOut = nil
		return t.bridgeAnswer(req, out, resp)
	}
	resp, err := t.base().RoundTrip(out)
	if err != nil {
		return nil, &transportError{req.Method, out.URL.EscapedPath(), err}
	}
	return t.bridgeAnswer(req, out, resp)
}

// cancelOnClose releases an attempt's context when the caller closes the answer's body.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// bridgeAnswer turns Nexus's own problem in resp into a typed error; any other answer is returned as it is.
func (t *Transport) bridgeAnswer(req, out *http.Request, resp *http.Response) (*http.Response, error) {
	c := t.Client
	if resp.Request == nil {
		resp.Request = out // what a redirect's Location is resolved against (bridgeRedirect)
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/problem+json" {
		return resp, nil
	}
	// A problem from Nexus itself (its type is urn:nexus:problem:...) becomes a typed error; a provider's own
	// problem passes through.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if !bytes.Contains(head, []byte(problemPrefix)) {
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(head))
	perr := readProblem(resp, req.Method, out.URL.EscapedPath(), c.now())
	var api *APIError
	if errors.As(perr, &api) && !strings.HasPrefix(api.Type, problemPrefix) {
		resp.Body = io.NopCloser(bytes.NewReader(head))
		return resp, nil
	}
	return nil, perr
}

type readCloser struct {
	io.Reader
	io.Closer
}
