package nexus

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Transport is an http.RoundTripper that calls a provider's API with one connection's credentials.
//
// Directly (the default), it takes the connection's credentials from the Client (cached; one fetch shared by
// concurrent requests), applies them to a copy of each request and sends it with Base. When the provider answers
// 401, it has Nexus replace the credential (for OAuth 2.0, POST /v1/refresh) and sends the request once more if it
// can be replayed (no body, or GetBody set, as http.NewRequest does for in-memory bodies). A connection that needs
// attention then fails the request with *AttentionRequiredError.
//
// With Bridge set, requests go through the Nexus Bridge instead and the credential never reaches this process.
// Write their URLs as Client.BridgeURL(id) + path (the path relative to the provider's api_base_url); a URL
// anywhere else is sent to the Bridge with its path and query kept and its scheme and host dropped, so
// "https://api.github.com/user" becomes BridgeURL(id) + "/user". Nexus's own refusals (connection not active, not found, ...) come back as
// the same typed errors; the provider's answers pass through as they are.
type Transport struct {
	Client       *Client
	ConnectionID string
	// Bridge sends requests through the Nexus Bridge.
	Bridge bool
	// Base sends the requests: to the provider directly, or to Nexus with Bridge. Default: the Client's
	// http.Client transport, or http.DefaultTransport.
	Base http.RoundTripper
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
// to the same scheme and host (a credential must not follow a redirect elsewhere).
func (c *Client) HTTPClient(connectionID string, opts ...TransportOption) *http.Client {
	return &http.Client{
		Transport: c.Transport(connectionID, opts...),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			first := via[0].URL
			if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
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
		var na *NotActiveError
		var nf *NotFoundError
		if errors.As(rerr, &na) || errors.As(rerr, &nf) {
			drain(resp)
			return nil, rerr
		}
		// The refresh could not be done (refresh_not_supported, Nexus unavailable): the provider's 401 stands.
		return resp, nil
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
	return resp, scrub(err, fresh)
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func (t *Transport) roundTripBridge(req *http.Request) (*http.Response, error) {
	c := t.Client
	out := req.Clone(req.Context())
	bridge := c.BridgeURL(t.ConnectionID)
	if full := req.URL.Scheme + "://" + req.URL.Host + req.URL.EscapedPath(); full != bridge && !strings.HasPrefix(full, bridge+"/") {
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
	resp, err := t.base().RoundTrip(out)
	if err != nil {
		return nil, err
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
