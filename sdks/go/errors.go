package nexus

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinels for errors.Is. Every typed error below matches its sentinel; *AttentionRequiredError also matches
// ErrNotActive, since attention_required is one of the states that is not active.
var (
	ErrAttentionRequired = errors.New("nexus: attention required")
	ErrNotActive         = errors.New("nexus: connection not active")
	ErrNotFound          = errors.New("nexus: not found")
	ErrForbidden         = errors.New("nexus: forbidden")
	ErrUnauthenticated   = errors.New("nexus: API key not accepted")
	ErrRateLimited       = errors.New("nexus: rate limited")
	ErrUnavailable       = errors.New("nexus: unavailable")
)

// Problem is an RFC 9457 problem details answer from Nexus, with the fields Nexus adds. Nexus never puts a secret
// in a problem, and the SDK never adds one: Path is the request path without its query string.
type Problem struct {
	StatusCode int    // HTTP status of the answer
	Type       string // "urn:nexus:problem:<code>"
	Code       string // stable machine-readable code, e.g. "connection_not_active"
	Title      string
	Detail     string
	TraceID    string
	// ConnectionID, Status and Reason are set on 409 connection_not_active: the connection, its status
	// (pending, failed, attention_required) and why (the problem's "error": invalid_grant, token_expired, ...).
	ConnectionID string
	Status       string
	Reason       string
	// RetryAfter is the answer's Retry-After (0 when it had none).
	RetryAfter time.Duration
	// Method and Path of the request that got this answer (never its query string).
	Method string
	Path   string
	// Extensions holds every member of the problem document as Nexus sent it (nil when the answer was not a JSON
	// object), the ones above included: what a code adds, such as auth_url, scopes and connection_id of a 403
	// insufficient_scope step-up, rounds of step_up_limit, errors of a 400 validation_failed. AuthURL and
	// ValidationErrors read the common ones.
	Extensions map[string]json.RawMessage
}

// AuthURL is the problem's auth_url (a 403 insufficient_scope step-up: where the person approves the wider scopes),
// or "".
func (p *Problem) AuthURL() string {
	var s string
	if raw, ok := p.Extensions["auth_url"]; ok && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// ValidationErrors is the errors member of a 400 validation_failed: the messages for each invalid field, or nil.
func (p *Problem) ValidationErrors() map[string][]string {
	var errs map[string][]string
	if raw, ok := p.Extensions["errors"]; ok && json.Unmarshal(raw, &errs) == nil {
		return errs
	}
	return nil
}

// Extension decodes the member name of the problem document into v (a pointer); false when the problem has no such
// member or it does not decode into v.
func (p *Problem) Extension(name string, v interface{}) bool {
	raw, ok := p.Extensions[name]
	return ok && json.Unmarshal(raw, v) == nil
}

func (p *Problem) message(kind string) string {
	var b strings.Builder
	b.WriteString("nexus: ")
	b.WriteString(kind)
	if p.Method != "" {
		fmt.Fprintf(&b, " (%s %s: %d", p.Method, p.Path, p.StatusCode)
	} else {
		fmt.Fprintf(&b, " (%d", p.StatusCode)
	}
	if p.Code != "" {
		b.WriteString(" ")
		b.WriteString(p.Code)
	}
	b.WriteString(")")
	if p.Title != "" {
		b.WriteString(": ")
		b.WriteString(p.Title)
	}
	if p.Detail != "" {
		b.WriteString(" ")
		b.WriteString(p.Detail)
	}
	if p.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", p.RetryAfter)
	}
	return b.String()
}

// APIError is a problem answer that none of the more specific types describes (400 validation_failed, ...).
type APIError struct{ Problem }

func (e *APIError) Error() string { return e.message("request failed") }

// AttentionRequiredError: the provider rejected the connection's grant (or its token expired without a refresh
// token); the user must connect again. Never retried. Reason is Nexus's "error" (invalid_grant, token_expired, ...).
type AttentionRequiredError struct{ Problem }

func (e *AttentionRequiredError) Error() string {
	msg := "nexus: connection " + e.ConnectionID + " needs attention"
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg + ": ask the user to connect again"
}

// Is matches ErrAttentionRequired and ErrNotActive.
func (e *AttentionRequiredError) Is(target error) bool {
	return target == ErrAttentionRequired || target == ErrNotActive
}

// Unwrap lets errors.As find a *NotActiveError in an attention-required error too.
func (e *AttentionRequiredError) Unwrap() error { return &NotActiveError{e.Problem} }

// NotActiveError: the connection exists but is pending (consent not completed) or failed (consent failed or
// expired), or, wrapped in *AttentionRequiredError, attention_required. Status says which.
type NotActiveError struct{ Problem }

func (e *NotActiveError) Error() string {
	msg := "nexus: connection " + e.ConnectionID + " is " + e.Status + ", not active"
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg
}

func (e *NotActiveError) Is(target error) bool { return target == ErrNotActive }

// NotFoundError: no such connection (or one in a workspace the API key may not act for: Nexus answers both alike).
type NotFoundError struct{ Problem }

func (e *NotFoundError) Error() string        { return e.message("not found") }
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ForbiddenError: the API key may not do this (workspace_not_allowed, credentials_not_readable, ...).
type ForbiddenError struct{ Problem }

func (e *ForbiddenError) Error() string        { return e.message("forbidden") }
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// AuthenticationError: Nexus did not accept the API key (401).
type AuthenticationError struct{ Problem }

func (e *AuthenticationError) Error() string        { return e.message("API key not accepted") }
func (e *AuthenticationError) Is(target error) bool { return target == ErrUnauthenticated }

// RateLimitedError: 429: Nexus asks this caller to slow down. RetryAfter says when to try again. Idempotent calls
// were already retried with backoff before this surfaced. (503 aws_sts_throttled is an *UnavailableError: AWS STS
// throttles Nexus, not this caller.)
type RateLimitedError struct{ Problem }

func (e *RateLimitedError) Error() string        { return e.message("rate limited") }
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// UnavailableError: 502, 503 or 504 (refresh_unavailable, upstream_unreachable, upstream_timeout,
// aws_sts_throttled: AWS STS is throttling Nexus's AssumeRole calls, ...): Nexus or what it depends on cannot answer now.
// RetryAfter says when to try again when Nexus said so. Idempotent calls were already retried before this surfaced.
type UnavailableError struct{ Problem }

func (e *UnavailableError) Error() string        { return e.message("unavailable") }
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// WaitTimeoutError: WaitUntilActive gave up before the connection became active. It matches
// context.DeadlineExceeded with errors.Is when the wait ran out of time. When the last poll failed transiently (Nexus
// unavailable, rate limited or unreachable), Last is that failure, and errors.Is and errors.As match it too: the
// wait ended because Nexus could not answer, not because the user did not complete consent.
type WaitTimeoutError struct {
	ConnectionID string
	LastStatus   string
	Err          error
	// Last is the last poll's transient failure, or nil when the last poll answered (the connection was pending).
	Last error
}

func (e *WaitTimeoutError) Error() string {
	msg := fmt.Sprintf("nexus: connection %s still %s when the wait ended: %v", e.ConnectionID, e.LastStatus, e.Err)
	if e.Last != nil {
		msg += " (last poll: " + e.Last.Error() + ")"
	}
	return msg
}

func (e *WaitTimeoutError) Unwrap() error { return e.Err }

// Is matches what the last poll's failure matches (ErrUnavailable, ErrRateLimited), besides Err through Unwrap.
func (e *WaitTimeoutError) Is(target error) bool { return e.Last != nil && errors.Is(e.Last, target) }

// As finds the last poll's failure (*UnavailableError, *RateLimitedError), besides Err through Unwrap.
func (e *WaitTimeoutError) As(target interface{}) bool {
	return e.Last != nil && errors.As(e.Last, target)
}

// RetryAfterOf returns the Retry-After an error carries (RateLimitedError, UnavailableError), or 0.
func RetryAfterOf(err error) time.Duration {
	var r *RateLimitedError
	if errors.As(err, &r) {
		return r.RetryAfter
	}
	var u *UnavailableError
	if errors.As(err, &u) {
		return u.RetryAfter
	}
	return 0
}

const problemPrefix = "urn:nexus:problem:"

// readProblem turns an error answer into a typed error. The body is read (at most 64 KiB) and closed.
func readProblem(resp *http.Response, method, path string, now time.Time) error {
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	p := Problem{StatusCode: resp.StatusCode, Method: method, Path: path, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now)}
	var body struct {
		Type         string `json:"type"`
		Code         string `json:"code"`
		Title        string `json:"title"`
		Detail       string `json:"detail"`
		TraceID      string `json:"traceId"`
		ConnectionID string `json:"connection_id"`
		// "status" is the HTTP status (a number) in RFC 9457 and the connection's status (a string) on 409
		// connection_not_active: Nexus writes the latter.
		Status json.RawMessage `json:"status"`
		Error  string          `json:"error"`
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(data, &members) == nil && members != nil {
		p.Extensions = members
	}
	if json.Unmarshal(data, &body) == nil {
		p.Type, p.Code, p.Title, p.Detail, p.TraceID = body.Type, body.Code, body.Title, body.Detail, body.TraceID
		p.ConnectionID, p.Reason = body.ConnectionID, body.Error
		var status string
		if json.Unmarshal(body.Status, &status) == nil {
			p.Status = status
		}
		if p.Code == "" && strings.HasPrefix(p.Type, problemPrefix) {
			p.Code = strings.TrimPrefix(p.Type, problemPrefix)
		}
	}
	if p.Title == "" {
		p.Title = http.StatusText(resp.StatusCode)
	}
	return problemError(p)
}

func problemError(p Problem) error {
	switch {
	case p.Code == "connection_not_active" && p.Status == "attention_required":
		return &AttentionRequiredError{p}
	case p.Code == "connection_not_active":
		return &NotActiveError{p}
	case p.Code == "connection_failed":
		if p.Status == "" {
			p.Status = "failed"
		}
		return &NotActiveError{p}
	case p.StatusCode == http.StatusUnauthorized:
		return &AuthenticationError{p}
	case p.StatusCode == http.StatusForbidden:
		return &ForbiddenError{p}
	case p.StatusCode == http.StatusNotFound:
		return &NotFoundError{p}
	case p.StatusCode == http.StatusTooManyRequests:
		return &RateLimitedError{p}
	case p.StatusCode == http.StatusBadGateway || p.StatusCode == http.StatusServiceUnavailable || p.StatusCode == http.StatusGatewayTimeout:
		return &UnavailableError{p}
	default:
		return &APIError{p}
	}
}

// parseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0
		}
		if s > 86400 {
			s = 86400
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
