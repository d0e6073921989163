package nexus

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Connection statuses.
const (
	StatusPending           = "pending"
	StatusActive            = "active"
	StatusAttentionRequired = "attention_required"
	StatusFailed            = "failed"
)

// Connection is one user's link to one provider, as GET /v1/connections/{id} describes it, with its health.
type Connection struct {
	ID          string
	Status      string
	Provider    string
	WorkspaceID string
	Scopes      []string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// ExpiresAt: while pending, when the consent window closes; when active, when the access token expires
	// (zero when it does not).
	ExpiresAt time.Time
	// Error and ErrorDescription say why a connection is failed or attention_required.
	Error            string
	ErrorDescription string
	// ConnectionConfig holds the per-connection values of the provider's URLs (a Shopify shop, a Salesforce
	// instance); nil when the provider has none.
	ConnectionConfig map[string]string
	// GrantedScopes are the scopes the provider granted (its token response's scope), else the requested ones once
	// active; nil while nothing is granted.
	GrantedScopes []string
	// LastRefreshedAt is when a refresh last succeeded (zero: never).
	LastRefreshedAt time.Time
	// NextRefreshAt is when Nexus next refreshes (or retries) the token (zero: nothing scheduled).
	NextRefreshAt time.Time
	// ConsecutiveFailures counts transient refresh failures in a row; 0 when healthy.
	ConsecutiveFailures int
	// LastError is the last thing that went wrong (a failing refresh's error, or why the connection stopped);
	// nil when nothing did. Never a secret.
	LastError *ConnectionError
	// Reconnecting is true while a reconnect waits for the user's consent; the current credentials keep working.
	Reconnecting bool
}

// ConnectionError is a connection's last error: the provider's or Nexus's code and a plain-words message.
type ConnectionError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// UnmarshalJSON reads Nexus's wire format (Unix seconds).
func (c *Connection) UnmarshalJSON(data []byte) error {
	var w struct {
		ConnectionID        string            `json:"connection_id"`
		Status              string            `json:"status"`
		Provider            string            `json:"provider"`
		WorkspaceID         string            `json:"workspace_id"`
		Scopes              []string          `json:"scopes"`
		CreatedAt           int64             `json:"created_at"`
		UpdatedAt           int64             `json:"updated_at"`
		ExpiresAt           *int64            `json:"expires_at"`
		Error               string            `json:"error"`
		ErrorDescription    string            `json:"error_description"`
		ConnectionConfig    map[string]string `json:"connection_config"`
		GrantedScopes       []string          `json:"granted_scopes"`
		LastRefreshedAt     *int64            `json:"last_refreshed_at"`
		NextRefreshAt       *int64            `json:"next_refresh_at"`
		ConsecutiveFailures int               `json:"consecutive_failures"`
		LastError           *ConnectionError  `json:"last_error"`
		Reconnecting        bool              `json:"reconnecting"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*c = Connection{ID: w.ConnectionID, Status: w.Status, Provider: w.Provider, WorkspaceID: w.WorkspaceID, Scopes: w.Scopes,
		CreatedAt: unix(w.CreatedAt), UpdatedAt: unix(w.UpdatedAt), Error: w.Error, ErrorDescription: w.ErrorDescription,
		ConnectionConfig: w.ConnectionConfig, GrantedScopes: w.GrantedScopes, ConsecutiveFailures: w.ConsecutiveFailures,
		LastError: w.LastError, Reconnecting: w.Reconnecting}
	if w.ExpiresAt != nil {
		c.ExpiresAt = unix(*w.ExpiresAt)
	}
	if w.LastRefreshedAt != nil {
		c.LastRefreshedAt = unix(*w.LastRefreshedAt)
	}
	if w.NextRefreshAt != nil {
		c.NextRefreshAt = unix(*w.NextRefreshAt)
	}
	return nil
}

func unix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// ConnectionRequest is what RequestConnection asks for.
type ConnectionRequest struct {
	WorkspaceID  string   `json:"workspace_id"`
	ProviderName string   `json:"provider_name"`
	Scopes       []string `json:"scopes,omitempty"`
	// ReturnURL is where Nexus sends the user's browser after consent (one of Nexus's ALLOWED_RETURN_URLS).
	ReturnURL string `json:"return_url"`
	// ConnectionConfig gives per-connection values the provider's URLs need ({"shop": "acme"}); Nexus asks the
	// user for those missing.
	ConnectionConfig map[string]string `json:"connection_config,omitempty"`
}

// PendingConnection is the answer to RequestConnection and Reconnect: store ConnectionID, and send the user's
// browser to AuthURL when it is set.
type PendingConnection struct {
	// AuthURL is where the user gives consent. Empty when the connection needs no consent (a machine-to-machine
	// server): it is active already, and Status says so.
	AuthURL      string `json:"auth_url"`
	ConnectionID string `json:"connection_id"`
	// Status is the connection's status when Nexus's answer gives one: StatusActive for a machine-to-machine
	// server's connection, which needs no consent. Empty when the answer is a consent URL.
	Status string `json:"status,omitempty"`
}

func connPath(prefix, id string) string { return prefix + url.PathEscape(id) }

// RequestConnection creates a pending connection (POST /v1/request-connection) and gives its consent URL. A
// machine-to-machine server's connection needs no consent: it is active at once, and the answer has an empty AuthURL
// and Status StatusActive. Not retried.
func (c *Client) RequestConnection(ctx context.Context, r ConnectionRequest) (*PendingConnection, error) {
	var out PendingConnection
	if err := c.do(ctx, http.MethodPost, "/v1/request-connection", nil, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Connection returns one connection (GET /v1/connections/{id}).
func (c *Client) Connection(ctx context.Context, id string) (*Connection, error) {
	var out Connection
	if err := c.do(ctx, http.MethodGet, connPath("/v1/connections/", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListOptions filters ListConnections; zero fields do not filter.
type ListOptions struct {
	WorkspaceID string
	Status      string // pending, active, attention_required or failed
	Provider    string // a registered provider's name
	Limit       int    // page size, 1 to 1000; Nexus's default is 100
	// Cursor is a NextCursor from an earlier page of the same list (same filters); empty for the first page.
	Cursor string
}

// ConnectionPage is one page of GET /v1/connections, newest first. NextCursor is empty on the last page.
type ConnectionPage struct {
	Connections []Connection `json:"connections"`
	NextCursor  string       `json:"next_cursor"`
}

// ListConnections returns the first page of connections, newest first (GET /v1/connections). Use
// ListConnectionsPage or Connections (an iterator over every page) to go further.
func (c *Client) ListConnections(ctx context.Context, o ListOptions) ([]Connection, error) {
	page, err := c.ListConnectionsPage(ctx, o)
	if err != nil {
		return nil, err
	}
	return page.Connections, nil
}

// ListConnectionsPage returns one page of connections (GET /v1/connections); pass its NextCursor back as
// ListOptions.Cursor, with the same filters, for the next one.
func (c *Client) ListConnectionsPage(ctx context.Context, o ListOptions) (*ConnectionPage, error) {
	q := url.Values{}
	if o.WorkspaceID != "" {
		q.Set("workspace_id", o.WorkspaceID)
	}
	if o.Status != "" {
		q.Set("status", o.Status)
	}
	if o.Provider != "" {
		q.Set("provider", o.Provider)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	var out ConnectionPage
	if err := c.do(ctx, http.MethodGet, "/v1/connections", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Connections returns an iterator over every connection the options select, following next_cursor page by page
// (o.Limit is the page size). Like bufio.Scanner:
//
//	it := client.Connections(nexus.ListOptions{Status: nexus.StatusAttentionRequired})
//	for it.Next(ctx) {
//		conn := it.Connection()
//		...
//	}
//	if err := it.Err(); err != nil { ... }
func (c *Client) Connections(o ListOptions) *ConnectionIterator {
	return &ConnectionIterator{client: c, opts: o}
}

// ConnectionIterator walks the pages of GET /v1/connections; see Client.Connections.
type ConnectionIterator struct {
	client  *Client
	opts    ListOptions
	page    []Connection
	current Connection
	done    bool
	err     error
}

// Next advances to the next connection, fetching the next page when needed; false at the end or on an error.
func (it *ConnectionIterator) Next(ctx context.Context) bool {
	for len(it.page) == 0 {
		if it.done || it.err != nil {
			return false
		}
		page, err := it.client.ListConnectionsPage(ctx, it.opts)
		if err != nil {
			it.err = err
			return false
		}
		it.page = page.Connections
		it.opts.Cursor = page.NextCursor
		it.done = page.NextCursor == ""
	}
	it.current, it.page = it.page[0], it.page[1:]
	return true
}

// Connection is the connection Next moved to.
func (it *ConnectionIterator) Connection() Connection { return it.current }

// Err is the error that ended the iteration, nil at the normal end.
func (it *ConnectionIterator) Err() error { return it.err }

// ReconnectOptions are the optional parts of Reconnect; zero values keep the connection's own.
type ReconnectOptions struct {
	Scopes    []string `json:"scopes,omitempty"`
	ReturnURL string   `json:"return_url,omitempty"`
}

// Reconnect starts a new consent for the same connection (POST /v1/connections/{id}/reconnect): send the user's
// browser to the returned AuthURL; ConnectionID stays the same. The current credentials keep working until the
// user completes the consent; then Nexus swaps in the new tokens and revokes the old ones at the provider.
// A machine-to-machine server's connection needs no consent: Nexus gets it a new token at once, and the answer has
// an empty AuthURL and Status StatusActive.
// A connection whose provider takes credentials rather than a consent gives *APIError with Code
// "not_an_oauth_connection" (replace those with SubmitCredentials). Not retried.
func (c *Client) Reconnect(ctx context.Context, id string, o ReconnectOptions) (*PendingConnection, error) {
	var out PendingConnection
	if err := c.do(ctx, http.MethodPost, connPath("/v1/connections/", id)+"/reconnect", nil, o, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteConnection revokes the connection's tokens at the provider (best effort) and deletes it
// (DELETE /v1/connections/{id}). Its cached credentials are dropped. A 404 after a retry is success: the attempt
// whose answer was lost (a proxy's 502, a reset) deleted it.
func (c *Client) DeleteConnection(ctx context.Context, id string) error {
	defer c.cache.invalidate(id)
	return c.do(ctx, http.MethodDelete, connPath("/v1/connections/", id), nil, nil, nil)
}

// Refresh has Nexus refresh the connection's token now, whatever its expiry (POST /v1/refresh/{id}), and drops
// the cached credentials. A provider that rejects the refresh gives *AttentionRequiredError. Not retried.
func (c *Client) Refresh(ctx context.Context, id string) (*Connection, error) {
	var out Connection
	err := c.do(ctx, http.MethodPost, connPath("/v1/refresh/", id), nil, nil, &out)
	c.cache.invalidate(id)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SubmitCredentials stores the credential fields of a pending api_key, basic_auth or aws_sigv4 connection
// (POST /v1/connections/{id}/credentials) and returns the connection, active. Values are secrets: they are never
// part of an error.
func (c *Client) SubmitCredentials(ctx context.Context, id string, fields map[string]string) (*Connection, error) {
	var out Connection
	err := c.do(ctx, http.MethodPost, connPath("/v1/connections/", id)+"/credentials", nil, fields, &out)
	c.cache.invalidate(id)
	if err != nil {
		// 409 connection_failed names no connection: it is the one the call was about.
		var na *NotActiveError
		if errors.As(err, &na) && na.ConnectionID == "" {
			na.ConnectionID = id
		}
		return nil, err
	}
	return &out, nil
}

// WaitUntilActive polls the connection until it is active and returns it. A connection that fails or needs attention
// ends the wait with *NotActiveError (or *AttentionRequiredError); so does one that is gone (*NotFoundError). While
// Reconnecting is true (a reconnect waits for the user's consent; the connection keeps its status, active or
// attention_required, meanwhile) the wait goes on: it ends when the consent completed (active, not reconnecting) or
// failed (Reconnecting false again, and the status then decides). A
// transient failure of a poll (*RateLimitedError; *UnavailableError without a Nexus code or with a transient one, as
// the retry policy decides; Nexus unreachable or too slow) does not end the wait: polling goes on (not sooner than the
// answer's Retry-After) until the connection is active or the wait ends. Any other error ends it at once: a 500
// internal_error (*APIError), a bug in Nexus, not a passing state, that polling through would only hide; and a
// 502/503/504 *UnavailableError with another code (token_request_failed, aws_assume_role_failed, …), a refusal that
// asking again does not change. When timeout (if > 0) or ctx ends the wait first, the error is
// *WaitTimeoutError, which matches the context's error with errors.Is and, when the last poll failed transiently, that
// failure too (errors.As finds the *UnavailableError or *RateLimitedError; Last holds it).
func (c *Client) WaitUntilActive(ctx context.Context, id string, timeout time.Duration) (*Connection, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	interval := 100 * time.Millisecond
	last := ""
	var lastErr error
	for {
		conn, err := c.Connection(ctx, id)
		wait := interval
		switch {
		case err == nil:
			last, lastErr = conn.Status, nil
			if conn.Reconnecting {
				// A reconnect of an active or attention_required connection keeps its status until the user completes
				// the new consent (or it fails, which clears Reconnecting): not done yet, whatever the status says.
				last = conn.Status + " (reconnecting)"
				break
			}
			switch conn.Status {
			case StatusActive:
				return conn, nil
			case StatusFailed, StatusAttentionRequired:
				p := Problem{StatusCode: http.StatusConflict, Code: "connection_not_active", ConnectionID: conn.ID, Status: conn.Status,
					Reason: conn.Error, Detail: conn.ErrorDescription, Method: http.MethodGet, Path: connPath("/v1/connections/", id)}
				return nil, problemError(p)
			}
		case ctx.Err() != nil:
			return nil, &WaitTimeoutError{ConnectionID: id, LastStatus: orUnknown(last), Err: ctx.Err(), Last: lastErr}
		default:
			// What the retry policy retries (a 429; a 502/503/504 without a Nexus code or with a transient one:
			// transientCode), and a poll that timed out. A 502/503/504 with another code is a refusal that the next
			// poll would get again.
			if !transientFailure(err) {
				return nil, err
			}
			lastErr = err
			if after := RetryAfterOf(err); after > wait {
				wait = after
			}
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, &WaitTimeoutError{ConnectionID: id, LastStatus: orUnknown(last), Err: err, Last: lastErr}
		}
		if interval < time.Second {
			interval = interval * 3 / 2
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
