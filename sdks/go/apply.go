package nexus

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Apply puts the credential on req, in place, the way its strategy says: Authorization: Bearer (oauth2), the API
// key in its header or query parameter with its prefix (api_key), Authorization: Basic (basic_auth), or an AWS
// Signature Version 4 computed now (aws_sigv4; sign last, after every other header is set).
func (c *Credentials) Apply(req *http.Request) error { return c.ApplyAt(req, time.Now()) }

// ApplyAt is Apply with the signing time of aws_sigv4 given.
func (c *Credentials) ApplyAt(req *http.Request, t time.Time) error {
	if req.URL == nil {
		return errors.New("nexus: the request has no URL")
	}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	switch c.Strategy.Type {
	case StrategyOAuth2, StrategyBasicAuth:
		req.Header["Authorization"] = []string{c.header()}
	case StrategyAPIKey:
		if strings.EqualFold(c.Strategy.In, "query") {
			req.URL.RawQuery = setQueryParam(req.URL.RawQuery, c.Strategy.Name, c.header())
		} else {
			req.Header.Set(c.Strategy.Name, c.header())
		}
	case StrategyAWSSigV4:
		return c.signHTTP(req, t)
	default:
		return errors.New("nexus: unknown strategy " + c.Strategy.Type)
	}
	return nil
}

// header is the value to send: precomputed when the credentials were parsed.
func (c *Credentials) header() string {
	if c.derived != nil && c.derived.header != "" {
		return c.derived.header
	}
	switch c.Strategy.Type {
	case StrategyOAuth2:
		return "Bearer " + string(c.AccessToken)
	case StrategyAPIKey:
		return c.Strategy.Prefix + string(c.APIKey)
	case StrategyBasicAuth:
		return basicAuth(string(c.Username), string(c.Password))
	}
	return ""
}

func basicAuth(user, password string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}

// setQueryParam replaces every name=... in raw with name=value (appended last), leaving the other parameters as
// they were written.
func setQueryParam(raw, name, value string) string {
	pair := url.QueryEscape(name) + "=" + url.QueryEscape(value)
	if raw == "" {
		return pair
	}
	var b strings.Builder
	b.Grow(len(raw) + len(pair) + 1)
	for _, p := range strings.Split(raw, "&") {
		k := p
		if i := strings.IndexByte(p, '='); i >= 0 {
			k = p[:i]
		}
		if uk, err := url.QueryUnescape(k); err == nil && uk == name || k == name || p == "" {
			continue
		}
		b.WriteString(p)
		b.WriteByte('&')
	}
	b.WriteString(pair)
	return b.String()
}
