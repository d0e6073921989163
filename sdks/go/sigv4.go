package nexus

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// AWS Signature Version 4, per AWS's "Create a signed AWS API request" (the canonical request, the string to
// sign, the HMAC-SHA256 signing key chain), verified against every case of AWS's SigV4 test suite.

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	amzDateFormat  = "20060102T150405Z"
	// EmptyPayloadHash is the hex SHA-256 of an empty body.
	EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	// UnsignedPayload may be set as X-Amz-Content-Sha256 to sign a streamed S3 upload without hashing it.
	UnsignedPayload = "UNSIGNED-PAYLOAD"
)

// sigV4Request is what a signature covers.
type sigV4Request struct {
	method      string
	path        string      // as sent on the wire (percent-encoded once)
	rawQuery    string      // as sent on the wire
	headers     [][2]string // name and value, in the order sent, Host included
	payloadHash string
}

type sigV4Result struct {
	canonicalRequest string
	stringToSign     string
	signedHeaders    string
	signature        string
	authorization    string
}

// signV4 signs r at t. keyCache (optional) keeps the day's signing key of one secret.
func signV4(r sigV4Request, accessKeyID, secretAccessKey, region, service string, t time.Time, keyCache *atomic.Pointer[signingKey]) sigV4Result {
	return sign(r, accessKeyID, secretAccessKey, region, service, formatAmzDate(t), keyCache, true)
}

// sign is signV4 with the X-Amz-Date value given; unless full, only the authorization is returned (the
// intermediate strings are for tests and diagnostics, and cost allocations).
func sign(r sigV4Request, accessKeyID, secretAccessKey, region, service, amzDate string, keyCache *atomic.Pointer[signingKey], full bool) sigV4Result {
	scope := amzDate[:8] + "/" + region + "/" + service + "/aws4_request"

	canonicalHeaders, signedHeaders := canonicalHeaders(r.headers)
	buf := scratchPool.Get().(*scratch)
	b := buf.b[:0]
	b = append(b, r.method...)
	b = append(b, '\n')
	b = append(b, canonicalURI(r.path, service)...)
	b = append(b, '\n')
	b = appendCanonicalQuery(b, r.rawQuery)
	b = append(b, '\n')
	b = append(b, canonicalHeaders...)
	b = append(b, '\n')
	b = append(b, signedHeaders...)
	b = append(b, '\n')
	b = append(b, r.payloadHash...)
	var creq, sts string
	if full {
		creq = string(b)
	}

	sum := sha256.Sum256(b)
	b = append(b[:0], sigV4Algorithm+"\n"...)
	b = append(b, amzDate...)
	b = append(b, '\n')
	b = append(b, scope...)
	b = append(b, '\n')
	b = appendHex(b, sum[:])
	if full {
		sts = string(b)
	}

	var k *signingKey
	if keyCache != nil {
		if cached := keyCache.Load(); cached != nil && cached.scope == scope {
			k = cached
		}
	}
	if k == nil {
		key := hmacSHA256([]byte("AWS4"+secretAccessKey), amzDate[:8])
		key = hmacSHA256(key, region)
		key = hmacSHA256(key, service)
		key = hmacSHA256(key, "aws4_request")
		k = &signingKey{scope: scope, key: key}
		if keyCache != nil {
			keyCache.Store(k)
		}
	}
	mac := k.sign(b, buf.sum[:0])
	b = append(b[:0], sigV4Algorithm+" Credential="...)
	b = append(b, accessKeyID...)
	b = append(b, '/')
	b = append(b, scope...)
	b = append(b, ", SignedHeaders="...)
	b = append(b, signedHeaders...)
	b = append(b, ", Signature="...)
	b = appendHex(b, mac)
	authorization := string(b)
	buf.b = b
	scratchPool.Put(buf)
	res := sigV4Result{authorization: authorization}
	if full {
		res.canonicalRequest, res.stringToSign, res.signedHeaders = creq, sts, signedHeaders
		res.signature = authorization[len(authorization)-64:]
	}
	return res
}

// appendHex appends the lowercase hex of data (hex.AppendEncode, which Go 1.19 lacks).
func appendHex(b, data []byte) []byte {
	const digits = "0123456789abcdef"
	for _, c := range data {
		b = append(b, digits[c>>4], digits[c&15])
	}
	return b
}

// scratch is a signing's working memory, pooled: the canonical request, then the string to sign, and the HMAC.
type scratch struct {
	b   []byte
	sum [sha256.Size]byte
}

var scratchPool = sync.Pool{New: func() interface{} { return &scratch{b: make([]byte, 0, 512)} }}

// formatAmzDate is t.UTC().Format("20060102T150405Z") without the formatter's allocations.
func formatAmzDate(t time.Time) string {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	var b [16]byte
	put := func(i, v, n int) {
		for k := i + n - 1; k >= i; k-- {
			b[k] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, y, 4)
	put(4, int(mo), 2)
	put(6, d, 2)
	b[8] = 'T'
	put(9, h, 2)
	put(11, mi, 2)
	put(13, sec, 2)
	b[15] = 'Z'
	return string(b[:])
}

// sign appends HMAC-SHA256(key, data) to out, with HMAC states keyed once and reused (hmac.New costs more than
// the hashing).
func (k *signingKey) sign(data, out []byte) []byte {
	m, _ := k.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, k.key)
	} else {
		m.Reset()
	}
	m.Write(data)
	out = m.Sum(out)
	k.macs.Put(m)
	return out
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// canonicalHeaders: lowercase names, sorted; values trimmed with inner runs of spaces or tabs collapsed; a repeated
// header's values joined with "," in the order sent.
func canonicalHeaders(headers [][2]string) (canonical, signed string) {
	type header struct{ name, value string }
	var stack [8]header
	list := stack[:0]
	size := 0
	for _, h := range headers {
		name := lower(strings.TrimSpace(h[0]))
		value := trimValue(h[1])
		size += len(name) + len(value) + 3
		found := false
		for i := range list {
			if list[i].name == name {
				list[i].value += "," + value
				found = true
				break
			}
		}
		if !found {
			list = append(list, header{name, value})
		}
	}
	// Insertion sort: a request has a handful of headers, and it keeps equal names (there are none) stable.
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && list[j].name < list[j-1].name; j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
	var b strings.Builder
	b.Grow(size * 3 / 2)
	for _, h := range list {
		b.WriteString(h.name)
		b.WriteByte(':')
		b.WriteString(h.value)
		b.WriteByte('\n')
	}
	mark := b.Len()
	for i, h := range list {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(h.name)
	}
	all := b.String()
	return all[:mark], all[mark:]
}

// lowerNames: the lowercase form of header names a signed request usually has, in Go's canonical form.
var lowerNames = map[string]string{
	"Accept": "accept", "Content-Type": "content-type", "Content-Md5": "content-md5", "Date": "date", "Host": "host",
	"X-Amz-Date": "x-amz-date", "X-Amz-Security-Token": "x-amz-security-token", "X-Amz-Content-Sha256": "x-amz-content-sha256",
	"X-Amz-Target": "x-amz-target",
}

func lower(s string) string {
	if l, ok := lowerNames[s]; ok {
		return l
	}
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// trimValue is a header value as SigV4 canonicalizes it, as the .NET, TypeScript and Python signers do: leading and
// trailing spaces and tabs removed (no other whitespace, unlike strings.TrimSpace), each inner run of spaces or tabs
// collapsed to one space.
func trimValue(v string) string {
	v = strings.Trim(v, " \t")
	if !strings.Contains(v, "  ") && !strings.Contains(v, "\t") {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	space := false
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == ' ' || c == '\t' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteByte(v[i])
	}
	return b.String()
}

// isS3 says whether service is one of the S3 family, signed the S3 way (path as sent, x-amz-content-sha256):
// the list of the .NET signer that the Nexus Bridge uses (SigV4Signer.IsS3), so that both sign alike.
func isS3(service string) bool {
	switch service {
	case "s3", "s3-outposts", "s3-object-lambda", "s3express":
		return true
	}
	return false
}

// canonicalURI: S3 signs the path exactly as sent. Every other service signs it with dot segments and empty
// segments removed (a trailing slash kept), URI-encoded a second time (a %20 on the wire is %2520 in the signature).
func canonicalURI(path, service string) string {
	if path == "" {
		return "/"
	}
	if isS3(service) || plainPath(path) {
		return path
	}
	segments := strings.Split(path, "/")
	out := make([]string, 0, len(segments))
	for _, s := range segments {
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, uriEncode(s, true))
		}
	}
	result := "/" + strings.Join(out, "/")
	// RFC 3986 §5.2.4, as the .NET, Python and TypeScript signers have it: a path that ends in a directory ("/a/",
	// "/a/b/.", "/a/b/..") keeps its trailing slash, so "/a/b/.." is "/a/", not "/a".
	switch segments[len(segments)-1] {
	case "", ".", "..":
		if len(out) > 0 {
			result += "/"
		}
	}
	return result
}

// plainPath: only unreserved characters and single slashes, no dot segments: already canonical.
func plainPath(p string) bool {
	if p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			if i+1 < len(p) && p[i+1] == '/' {
				return false
			}
		case c == '.':
			if p[i-1] == '/' && (i+1 == len(p) || p[i+1] == '/' || (p[i+1] == '.' && (i+2 == len(p) || p[i+2] == '/'))) {
				return false
			}
		case !unreserved(c):
			return false
		}
	}
	return true
}

// appendCanonicalQuery appends the canonical query: each name and value decoded, encoded again with only RFC 3986
// unreserved characters left as they are (a "+" is a literal plus), sorted by name, then value.
func appendCanonicalQuery(b []byte, raw string) []byte {
	if raw == "" {
		return b
	}
	var stack [8][2]string
	pairs := stack[:0]
	for rest := raw; rest != ""; {
		p := rest
		if i := strings.IndexByte(rest, '&'); i >= 0 {
			p, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if p == "" {
			continue
		}
		k, v := p, ""
		if i := strings.IndexByte(p, '='); i >= 0 {
			k, v = p[:i], p[i+1:]
		}
		pairs = append(pairs, [2]string{uriEncode(unescape(k), true), uriEncode(unescape(v), true)})
	}
	// Insertion sort: a query has a handful of parameters (sort.Slice would allocate).
	for i := 1; i < len(pairs); i++ {
		for j := i; j > 0 && (pairs[j][0] < pairs[j-1][0] || pairs[j][0] == pairs[j-1][0] && pairs[j][1] < pairs[j-1][1]); j-- {
			pairs[j], pairs[j-1] = pairs[j-1], pairs[j]
		}
	}
	for i, p := range pairs {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, p[0]...)
		b = append(b, '=')
		b = append(b, p[1]...)
	}
	return b
}

// canonicalQuery is appendCanonicalQuery as a string.
func canonicalQuery(raw string) string {
	return string(appendCanonicalQuery(nil, raw))
}

func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

const upperHex = "0123456789ABCDEF"

func uriEncode(s string, encodeSlash bool) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) && (encodeSlash || s[i] != '/') {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) * 3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || (!encodeSlash && c == '/') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~'
}

// Headers never signed: they are added or changed on the way (hop-by-hop, proxies, tracing) or are the signature.
var unsignedHeaders = map[string]bool{
	"Authorization": true, "User-Agent": true, "X-Amzn-Trace-Id": true, "Expect": true, "Connection": true,
	"Keep-Alive": true, "Proxy-Authorization": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Accept-Encoding": true,
	// Go writes Content-Length from Request.ContentLength, whatever Header says.
	"Content-Length": true,
}

// signHTTP signs req in place: X-Amz-Date, X-Amz-Security-Token (temporary credentials), X-Amz-Content-Sha256
// (S3), Authorization. A body that cannot be read twice is read into memory first (and made replayable).
func (c *Credentials) signHTTP(req *http.Request, t time.Time) error {
	hash := req.Header.Get("X-Amz-Content-Sha256")
	if hash == "" {
		var err error
		if hash, err = payloadHash(req); err != nil {
			return err
		}
	}
	amzDate := formatAmzDate(t)
	req.Header.Set("X-Amz-Date", amzDate)
	if c.SessionToken != "" {
		req.Header.Set("X-Amz-Security-Token", string(c.SessionToken))
	}
	if isS3(c.Strategy.Service) && req.Header.Get("X-Amz-Content-Sha256") == "" {
		req.Header.Set("X-Amz-Content-Sha256", hash)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	headers := make([][2]string, 0, len(req.Header)+1)
	headers = append(headers, [2]string{"host", host})
	for name, values := range req.Header {
		if unsignedHeaders[name] || strings.EqualFold(name, "host") {
			continue
		}
		for _, v := range values {
			headers = append(headers, [2]string{name, v})
		}
	}
	r := sigV4Request{method: req.Method, path: req.URL.EscapedPath(), rawQuery: req.URL.RawQuery, headers: headers, payloadHash: hash}
	var cache *atomic.Pointer[signingKey]
	if c.derived != nil {
		cache = &c.derived.signKey
	}
	res := sign(r, c.AccessKeyID, string(c.SecretAccessKey), c.Strategy.Region, c.Strategy.Service, amzDate, cache, false)
	req.Header.Set("Authorization", res.authorization)
	return nil
}

func payloadHash(req *http.Request) (string, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return EmptyPayloadHash, nil
	}
	h := sha256.New()
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	data, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return "", err
	}
	req.Body = io.NopCloser(bytes.NewReader(data))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	req.ContentLength = int64(len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)), nil
}
