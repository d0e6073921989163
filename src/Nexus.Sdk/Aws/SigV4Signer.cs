using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;

namespace Nexus.Sdk.Aws;

/// <summary>
/// Signs HTTP requests with AWS Signature Version 4 (<c>AWS4-HMAC-SHA256</c>, carried in the
/// <c>Authorization</c> header), as specified in the AWS documentation "Create a signed AWS API request".
/// </summary>
/// <remarks>
/// <para>
/// <see cref="Sign"/> is the transport-neutral core: it signs exactly the headers it is given (plus <c>Host</c>,
/// taken from the URI when absent, and the headers the signer owns, listed in
/// <see cref="SigV4SigningResult.AddedHeaders"/>). <see cref="SignAsync"/> signs an
/// <see cref="HttpRequestMessage"/> in place.
/// </para>
/// <para>
/// The path and query are canonicalized from the URI as it is sent on the wire (<see cref="Uri.AbsolutePath"/>
/// and <see cref="Uri.Query"/>), so what is signed is what the service receives. Encode spaces in queries as
/// <c>%20</c>: a <c>+</c> is taken literally.
/// </para>
/// </remarks>
public static class SigV4Signer
{
    /// <summary>The signing algorithm identifier, the first word of the <c>Authorization</c> header.</summary>
    public const string Algorithm = "AWS4-HMAC-SHA256";

    /// <summary>The payload hash that tells the service the body is not signed (S3 over HTTPS accepts it).</summary>
    public const string UnsignedPayload = "UNSIGNED-PAYLOAD";

    /// <summary>The hex SHA-256 of an empty body.</summary>
    public const string EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    private const string AmzDateHeader = "X-Amz-Date";
    private const string SecurityTokenHeader = "X-Amz-Security-Token";
    private const string ContentSha256Header = "x-amz-content-sha256";
    private const string Terminator = "aws4_request";
    private const int StackLimit = 512;

    /// <summary>
    /// Headers that <see cref="SignAsync"/> leaves unsigned: hop-by-hop and framing headers that the HTTP stack or
    /// a proxy may add, change or drop (<c>content-length</c> included: the handler owns it), and the ones AWS
    /// SDKs never sign.
    /// </summary>
    private static readonly HashSet<string> UnsignedMessageHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "authorization", "connection", "content-length", "expect", "keep-alive", "proxy-authorization",
        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
    };

    /// <summary>
    /// The signing key last derived for each <see cref="AwsCredentials"/> instance (records are immutable, and the
    /// table holds them weakly): the four-HMAC key chain over date, region and service runs once a day per
    /// credentials, region and service instead of on every request, as the AWS SDKs do.
    /// </summary>
    private static readonly ConditionalWeakTable<AwsCredentials, SigningKey> SigningKeys = new();

    /// <summary>
    /// Signs a request described by its parts and returns the signature and the headers to send.
    /// </summary>
    /// <param name="method">The HTTP method, as sent (for example <c>GET</c>).</param>
    /// <param name="uri">The absolute request URI; its path and query are canonicalized as they are sent.</param>
    /// <param name="headers">
    /// The headers to sign, in the order they are sent; a name may repeat. All are signed except
    /// <c>Authorization</c> and those the signer owns (<c>X-Amz-Date</c>, and <c>X-Amz-Security-Token</c> and
    /// <c>x-amz-content-sha256</c> when it adds them), whose values it supplies itself. <c>Host</c> is derived
    /// from <paramref name="uri"/> when absent.
    /// </param>
    /// <param name="payloadHash">The hex SHA-256 of the body (signed in lowercase), or <see cref="UnsignedPayload"/>.</param>
    /// <param name="region">The signing region, for example <c>us-east-1</c>.</param>
    /// <param name="service">The signing name of the service, for example <c>s3</c> or <c>sts</c>.</param>
    /// <param name="credentials">The credentials to sign with.</param>
    /// <param name="timestamp">The signing time; AWS rejects requests signed more than 5 minutes away from its clock.</param>
    /// <param name="options">Options; <see langword="null"/> applies the defaults AWS documents for <paramref name="service"/>.</param>
    /// <returns>The signature, the <c>Authorization</c> value and the other headers to add to the request.</returns>
    /// <exception cref="ArgumentException">An argument is empty, malformed or not absolute.</exception>
    public static SigV4SigningResult Sign(
        string method,
        Uri uri,
        IEnumerable<KeyValuePair<string, string>> headers,
        string payloadHash,
        string region,
        string service,
        AwsCredentials credentials,
        DateTimeOffset timestamp,
        SigV4Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(uri);
        ArgumentNullException.ThrowIfNull(headers);
        ArgumentNullException.ThrowIfNull(credentials);
        ArgumentException.ThrowIfNullOrEmpty(method);
        if (!IsToken(method))
        {
            throw new ArgumentException("The HTTP method is not a valid token.", nameof(method));
        }

        if (!uri.IsAbsoluteUri)
        {
            throw new ArgumentException("The request URI must be absolute.", nameof(uri));
        }

        ValidateScopePart(region, nameof(region));
        ValidateScopePart(service, nameof(service));
        if (string.IsNullOrEmpty(credentials.AccessKeyId) || string.IsNullOrEmpty(credentials.SecretAccessKey))
        {
            throw new ArgumentException("The access key id and the secret access key must not be empty.", nameof(credentials));
        }

        string hash = NormalizePayloadHash(payloadHash);
        bool s3 = IsS3(service);
        bool normalizePath = options?.NormalizePath ?? !s3;
        bool doubleEncodePath = options?.DoubleEncodePath ?? !s3;
        bool addContentSha256 = options?.AddContentSha256Header ?? s3;
        bool addToken = !string.IsNullOrEmpty(credentials.SessionToken);

        string amzDate = FormatAmzDate(timestamp.UtcDateTime);
        string dateStamp = amzDate[..8];

        var added = new List<KeyValuePair<string, string>>(3) { new(AmzDateHeader, amzDate) };
        if (addToken)
        {
            added.Add(new(SecurityTokenHeader, credentials.SessionToken!));
        }

        if (addContentSha256)
        {
            added.Add(new(ContentSha256Header, hash));
        }

        // Collect the headers to sign: lowercase names, the caller's order kept for repeated names.
        var entries = new List<HeaderEntry>();
        bool hasHost = false;
        foreach (var header in headers)
        {
            string name = LowercaseHeaderName(header.Key);
            if (name == "authorization"
                || name == "x-amz-date"
                || (addToken && name == "x-amz-security-token")
                || (addContentSha256 && name == "x-amz-content-sha256"))
            {
                continue;
            }

            hasHost |= name == "host";
            entries.Add(new HeaderEntry(name, header.Value ?? string.Empty, entries.Count));
        }

        if (!hasHost)
        {
            entries.Add(new HeaderEntry("host", HostHeaderValue(uri), entries.Count));
        }

        foreach (var header in added)
        {
            entries.Add(new HeaderEntry(LowercaseHeaderName(header.Key), header.Value, entries.Count));
        }

        // Ordinal by name; the insertion order breaks ties so repeated headers keep the order they are sent in.
        entries.Sort(static (a, b) =>
        {
            int byName = string.CompareOrdinal(a.Name, b.Name);
            return byName != 0 ? byName : a.Order.CompareTo(b.Order);
        });

        var canonical = RentBuilder(ref cachedCanonical);
        canonical.Append(method).Append('\n');
        AppendCanonicalUri(canonical, uri.AbsolutePath, normalizePath, doubleEncodePath);
        canonical.Append('\n');
        AppendCanonicalQuery(canonical, uri.Query);
        canonical.Append('\n');

        var signedHeaders = RentBuilder(ref cachedSignedHeaders);
        for (int i = 0; i < entries.Count; i++)
        {
            string name = entries[i].Name;
            if (i > 0 && entries[i - 1].Name == name)
            {
                canonical.Append(',');
            }
            else
            {
                if (i > 0)
                {
                    canonical.Append('\n');
                    signedHeaders.Append(';');
                }

                canonical.Append(name).Append(':');
                signedHeaders.Append(name);
            }

            AppendTrimmedValue(canonical, entries[i].Value, name);
        }

        canonical.Append("\n\n").Append(signedHeaders).Append('\n').Append(hash);

        string canonicalRequest = canonical.ToString();
        string scope = string.Concat(dateStamp, "/", region, "/", service, "/" + Terminator);
        string stringToSign = string.Concat(Algorithm + "\n", amzDate, "\n", scope, "\n", Sha256Hex(canonicalRequest));

        Span<byte> signature = stackalloc byte[32];
        GetSigningKey(credentials, dateStamp, region, service).Sign(stringToSign, signature);

        string signatureHex = Convert.ToHexStringLower(signature);
        string signedHeaderList = signedHeaders.ToString();
        string authorization =
            $"{Algorithm} Credential={credentials.AccessKeyId}/{scope}, SignedHeaders={signedHeaderList}, Signature={signatureHex}";

        ReturnBuilder(ref cachedCanonical, canonical);
        ReturnBuilder(ref cachedSignedHeaders, signedHeaders);
        return new SigV4SigningResult(canonicalRequest, stringToSign, signatureHex, signedHeaderList, authorization, added);
    }

    [ThreadStatic]
    private static StringBuilder? cachedCanonical;

    [ThreadStatic]
    private static StringBuilder? cachedSignedHeaders;

    [ThreadStatic]
    private static StringBuilder? cachedScratch;

    [ThreadStatic]
    private static IncrementalHash? cachedSha256;

    /// <summary>A cleared builder kept by this thread (taken: a nested use gets a new one), or a new one.</summary>
    private static StringBuilder RentBuilder(ref StringBuilder? slot)
    {
        var builder = slot ?? new StringBuilder(256);
        slot = null;
        return builder.Clear();
    }

    private static void ReturnBuilder(ref StringBuilder? slot, StringBuilder builder)
    {
        if (builder.Capacity <= 4096)
        {
            slot = builder;
        }
    }

    /// <summary>ISO 8601 basic format, <c>yyyyMMdd'T'HHmmss'Z'</c>, of a UTC time.</summary>
    private static string FormatAmzDate(DateTime utc) => string.Create(16, utc, static (destination, time) =>
    {
        Write(destination, 0, time.Year, 4);
        Write(destination, 4, time.Month, 2);
        Write(destination, 6, time.Day, 2);
        destination[8] = 'T';
        Write(destination, 9, time.Hour, 2);
        Write(destination, 11, time.Minute, 2);
        Write(destination, 13, time.Second, 2);
        destination[15] = 'Z';

        static void Write(Span<char> destination, int offset, int value, int digits)
        {
            for (int i = offset + digits - 1; i >= offset; i--)
            {
                destination[i] = (char)('0' + (value % 10));
                value /= 10;
            }
        }
    });

    /// <summary>
    /// Signs an <see cref="HttpRequestMessage"/> in place: sets <c>Authorization</c> and the headers listed in
    /// <see cref="SigV4SigningResult.AddedHeaders"/>, replacing any earlier values of them (so a request can be
    /// signed again, before a retry for instance). <c>X-Amz-Security-Token</c> is sent exactly when
    /// <paramref name="credentials"/> carry a session token.
    /// </summary>
    /// <param name="request">The request to sign. Its <see cref="HttpRequestMessage.RequestUri"/> must be absolute.</param>
    /// <param name="credentials">The credentials to sign with.</param>
    /// <param name="region">The signing region, for example <c>us-east-1</c>.</param>
    /// <param name="service">The signing name of the service, for example <c>s3</c>.</param>
    /// <param name="now">The signing time.</param>
    /// <param name="options">
    /// Options. Set <see cref="SigV4Options.PayloadHash"/> to a precomputed hash, or to
    /// <see cref="UnsignedPayload"/>, to sign a streamed body without reading it.
    /// </param>
    /// <param name="cancellationToken">Cancels reading the content to hash it.</param>
    /// <returns>The signing result, whose headers have already been set on <paramref name="request"/>.</returns>
    /// <remarks>
    /// <para>
    /// The request's own headers and its content headers are signed, except hop-by-hop and framing headers
    /// (<c>Content-Length</c>, <c>Transfer-Encoding</c>, <c>Connection</c>, <c>Expect</c>…), <c>User-Agent</c> and
    /// <c>X-Amzn-Trace-Id</c>, which an HTTP stack or a proxy may change. Headers that an
    /// <see cref="HttpClient"/> adds at send time (<see cref="HttpClient.DefaultRequestHeaders"/>) are not signed.
    /// </para>
    /// <para>
    /// An <c>x-amz-content-sha256</c> header already on the request is taken as the payload hash (unless
    /// <see cref="SigV4Options.PayloadHash"/> is set) and is sent again unless
    /// <see cref="SigV4Options.AddContentSha256Header"/> is <see langword="false"/>.
    /// Without a precomputed hash the content is hashed. Content that can be serialized again
    /// (<see cref="ByteArrayContent"/>, <see cref="StringContent"/>, <see cref="ReadOnlyMemoryContent"/>…) is read
    /// as is; any other content is first buffered in memory so that it can still be sent after being hashed.
    /// </para>
    /// </remarks>
    public static async Task<SigV4SigningResult> SignAsync(
        HttpRequestMessage request,
        AwsCredentials credentials,
        string region,
        string service,
        DateTimeOffset now,
        SigV4Options? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(credentials);
        Uri uri = request.RequestUri ?? throw new ArgumentException("The request has no URI.", nameof(request));
        if (!uri.IsAbsoluteUri)
        {
            throw new ArgumentException("The request URI must be absolute to be signed.", nameof(request));
        }

        // An x-amz-content-sha256 header already set is the body's hash, computed by the caller: use it, and keep
        // sending it unless told not to.
        string? presetHash = null;
        if (request.Headers.NonValidated.TryGetValues(ContentSha256Header, out var preset) && preset.Count == 1)
        {
            presetHash = preset.ToString();
            if (options?.AddContentSha256Header is null)
            {
                options = (options ?? new SigV4Options()) with { AddContentSha256Header = true };
            }
        }

        string payloadHash = options?.PayloadHash
            ?? presetHash
            ?? await HashContentAsync(request.Content, cancellationToken).ConfigureAwait(false);

        // The signer's own headers are set anew: values left by an earlier signing must be neither signed nor sent.
        request.Headers.Remove("Authorization");
        request.Headers.Remove(AmzDateHeader);
        request.Headers.Remove(SecurityTokenHeader);
        request.Headers.Remove(ContentSha256Header);

        var headers = new List<KeyValuePair<string, string>>();
        CollectSignableHeaders(request.Headers, headers);
        if (request.Content is not null)
        {
            CollectSignableHeaders(request.Content.Headers, headers);
        }

        var result = Sign(request.Method.Method, uri, headers, payloadHash, region, service, credentials, now, options);
        foreach (var header in result.AddedHeaders)
        {
            request.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        request.Headers.TryAddWithoutValidation("Authorization", result.AuthorizationHeader);
        return result;
    }

    private static void CollectSignableHeaders(System.Net.Http.Headers.HttpHeaders source, List<KeyValuePair<string, string>> target)
    {
        // NonValidated gives the values as they will be written, joined with the separator the handler uses.
        foreach (var header in source.NonValidated)
        {
            if (!UnsignedMessageHeaders.Contains(header.Key))
            {
                target.Add(new(header.Key, header.Value.ToString()));
            }
        }
    }

    private static async Task<string> HashContentAsync(HttpContent? content, CancellationToken cancellationToken)
    {
        if (content is null)
        {
            return EmptyPayloadHash;
        }

        // Byte-array and memory contents serialize from memory every time; anything else (a stream, for
        // instance) might only be readable once, so buffer it: the handler then sends the buffer.
        if (content is not (ByteArrayContent or ReadOnlyMemoryContent))
        {
            await content.LoadIntoBufferAsync(cancellationToken).ConfigureAwait(false);
        }

        using var sink = new Sha256Sink();
        await content.CopyToAsync(sink, cancellationToken).ConfigureAwait(false);
        return sink.GetHashHex();
    }

    internal static bool IsS3(string service) =>
        service is "s3" or "s3-outposts" or "s3-object-lambda" or "s3express";

    internal static string HostHeaderValue(Uri uri)
    {
        string host = uri.HostNameType == UriHostNameType.IPv6 ? uri.Host : uri.IdnHost;
        return uri.IsDefaultPort ? host : host + ":" + uri.Port.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Appends the canonical URI for a path as sent on the wire (percent-encoded once already).</summary>
    internal static void AppendCanonicalUri(StringBuilder builder, string wirePath, bool normalize, bool doubleEncode)
    {
        if (normalize)
        {
            wirePath = RemoveDotSegments(wirePath);
        }

        if (wirePath.Length == 0)
        {
            builder.Append('/');
        }
        else if (doubleEncode)
        {
            // Every service but S3: the path as sent is URI-encoded once more ("%20" becomes "%2520").
            AppendUriEncoded(builder, wirePath, decodePercent: false, keepSlash: true);
        }
        else
        {
            // S3: the path as sent, which is encoded once already, is the canonical URI. (S3 accepts "(" sent
            // raw, as .NET's Uri and the AWS SDK for .NET send it, as well as "%28", so it cannot re-encode.)
            builder.Append(wirePath);
        }
    }

    /// <summary>
    /// Removes <c>.</c>, <c>..</c> and empty segments (RFC 3986 section 5.2.4, plus AWS's collapsing of duplicate
    /// slashes), keeping the leading slash and, when the path ends in a directory, the trailing one.
    /// </summary>
    internal static string RemoveDotSegments(string path)
    {
        if (path.Length == 0)
        {
            return "/";
        }

        if (path[0] == '/' && !path.Contains("//", StringComparison.Ordinal) && !path.Contains("/.", StringComparison.Ordinal))
        {
            return path; // Nothing to remove (the common case).
        }

        var segments = new List<string>();
        bool trailingSlash = false;
        foreach (var range in path.AsSpan().Split('/'))
        {
            var segment = path.AsSpan(range);
            trailingSlash = segment.Length == 0 || segment is "." || segment is "..";
            if (segment is "..")
            {
                if (segments.Count > 0)
                {
                    segments.RemoveAt(segments.Count - 1);
                }
            }
            else if (!trailingSlash)
            {
                segments.Add(segment.ToString());
            }
        }

        if (segments.Count == 0)
        {
            return "/";
        }

        var builder = new StringBuilder(path.Length + 1);
        foreach (var segment in segments)
        {
            builder.Append('/').Append(segment);
        }

        if (trailingSlash)
        {
            builder.Append('/');
        }

        return builder.ToString();
    }

    /// <summary>
    /// Appends the canonical query string for a query as sent (with or without its leading <c>?</c>): every
    /// name and value decoded and encoded again strictly, then sorted by name and value (ordinal).
    /// </summary>
    internal static void AppendCanonicalQuery(StringBuilder builder, string wireQuery)
    {
        var query = wireQuery.AsSpan();
        if (query.StartsWith('?'))
        {
            query = query[1..];
        }

        if (query.IsEmpty)
        {
            return;
        }

        var parameters = new List<KeyValuePair<string, string>>();
        var scratch = RentBuilder(ref cachedScratch);
        foreach (var range in query.Split('&'))
        {
            var pair = query[range];
            if (pair.IsEmpty)
            {
                continue;
            }

            int equals = pair.IndexOf('=');
            ReadOnlySpan<char> name = equals < 0 ? pair : pair[..equals];
            ReadOnlySpan<char> value = equals < 0 ? ReadOnlySpan<char>.Empty : pair[(equals + 1)..];

            scratch.Clear();
            AppendUriEncoded(scratch, name, decodePercent: true, keepSlash: false);
            string encodedName = scratch.ToString();
            scratch.Clear();
            AppendUriEncoded(scratch, value, decodePercent: true, keepSlash: false);
            parameters.Add(new(encodedName, scratch.ToString()));
        }

        ReturnBuilder(ref cachedScratch, scratch);

        parameters.Sort(static (a, b) =>
        {
            int byName = string.CompareOrdinal(a.Key, b.Key);
            return byName != 0 ? byName : string.CompareOrdinal(a.Value, b.Value);
        });

        for (int i = 0; i < parameters.Count; i++)
        {
            if (i > 0)
            {
                builder.Append('&');
            }

            builder.Append(parameters[i].Key).Append('=').Append(parameters[i].Value);
        }
    }

    /// <summary>
    /// Percent-encodes the UTF-8 bytes of <paramref name="text"/>, leaving only RFC 3986 unreserved characters
    /// (<c>A-Z a-z 0-9 - . _ ~</c>) as they are and using uppercase hex.
    /// </summary>
    /// <param name="builder">Where to append.</param>
    /// <param name="text">The text to encode.</param>
    /// <param name="decodePercent">Decode <c>%XX</c> escapes first, so that already-encoded text is not encoded twice.</param>
    /// <param name="keepSlash">Leave literal <c>/</c> (path separators) unencoded.</param>
    internal static void AppendUriEncoded(StringBuilder builder, ReadOnlySpan<char> text, bool decodePercent, bool keepSlash)
    {
        int max = Encoding.UTF8.GetMaxByteCount(text.Length);
        byte[]? rented = null;
        Span<byte> bytes = max <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            int length = Encoding.UTF8.GetBytes(text, bytes);
            for (int i = 0; i < length; i++)
            {
                byte b = bytes[i];
                if (b == '/' && keepSlash)
                {
                    builder.Append('/');
                    continue;
                }

                if (decodePercent && b == '%' && i + 2 < length && IsHex(bytes[i + 1]) && IsHex(bytes[i + 2]))
                {
                    b = (byte)((HexValue(bytes[i + 1]) << 4) | HexValue(bytes[i + 2]));
                    i += 2;
                }

                if (IsUnreserved(b))
                {
                    builder.Append((char)b);
                }
                else
                {
                    builder.Append('%').Append("0123456789ABCDEF"[b >> 4]).Append("0123456789ABCDEF"[b & 0xF]);
                }
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Appends a header value trimmed, with each run of spaces or tabs collapsed to one space.</summary>
    private static void AppendTrimmedValue(StringBuilder builder, string value, string name)
    {
        var span = value.AsSpan().Trim(" \t");
        bool inWhitespace = false;
        foreach (char c in span)
        {
            if (c is '\r' or '\n' or '\0')
            {
                throw new ArgumentException($"The value of header '{name}' contains a line break or NUL.", nameof(value));
            }

            if (c is ' ' or '\t')
            {
                inWhitespace = true;
                continue;
            }

            if (inWhitespace)
            {
                builder.Append(' ');
                inWhitespace = false;
            }

            builder.Append(c);
        }
    }

    private static string LowercaseHeaderName(string name)
    {
        if (string.IsNullOrEmpty(name) || !IsToken(name))
        {
            throw new ArgumentException($"'{name}' is not a valid header name.", nameof(name));
        }

        return string.Create(name.Length, name, static (destination, source) =>
        {
            for (int i = 0; i < source.Length; i++)
            {
                char c = source[i];
                destination[i] = c is >= 'A' and <= 'Z' ? (char)(c + ('a' - 'A')) : c;
            }
        });
    }

    internal static string NormalizePayloadHash(string payloadHash)
    {
        ArgumentNullException.ThrowIfNull(payloadHash);
        if (payloadHash == UnsignedPayload)
        {
            return payloadHash;
        }

        if (payloadHash.Length != 64 || !IsAllHex(payloadHash))
        {
            throw new ArgumentException(
                $"The payload hash must be a hex SHA-256 (64 characters) or '{UnsignedPayload}'.", nameof(payloadHash));
        }

        return string.Create(64, payloadHash, static (destination, source) =>
        {
            for (int i = 0; i < source.Length; i++)
            {
                char c = source[i];
                destination[i] = c is >= 'A' and <= 'F' ? (char)(c + ('a' - 'A')) : c;
            }
        });
    }

    private static bool IsAllHex(string text)
    {
        foreach (char c in text)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return false;
            }
        }

        return true;
    }

    private static void ValidateScopePart(string value, string parameterName)
    {
        ArgumentException.ThrowIfNullOrEmpty(value, parameterName);
        foreach (char c in value)
        {
            if (c is '/' || char.IsWhiteSpace(c) || char.IsControl(c))
            {
                throw new ArgumentException("A region or service name cannot contain '/', spaces or control characters.", parameterName);
            }
        }
    }

    /// <summary>The signing key for the scope, from <see cref="SigningKeys"/> or derived (and then cached).</summary>
    private static SigningKey GetSigningKey(AwsCredentials credentials, string dateStamp, string region, string service)
    {
        if (SigningKeys.TryGetValue(credentials, out var cached) && cached.Matches(dateStamp, region, service))
        {
            return cached;
        }

        Span<byte> key = stackalloc byte[32];
        try
        {
            DeriveSigningKey(credentials.SecretAccessKey, dateStamp, region, service, key);
            var derived = new SigningKey(dateStamp, region, service, key.ToArray());
            SigningKeys.AddOrUpdate(credentials, derived);
            return derived;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private static void DeriveSigningKey(string secretAccessKey, string dateStamp, string region, string service, Span<byte> signingKey)
    {
        // kSecret = "AWS4" + secret; kDate = HMAC(kSecret, date); kRegion; kService; kSigning = HMAC(kService, "aws4_request").
        int max = Encoding.UTF8.GetMaxByteCount(secretAccessKey.Length + 4);
        byte[]? rented = null;
        Span<byte> secret = max <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(max));
        int length = 0;
        Span<byte> first = stackalloc byte[32];
        Span<byte> second = stackalloc byte[32];
        try
        {
            length = Encoding.UTF8.GetBytes("AWS4", secret);
            length += Encoding.UTF8.GetBytes(secretAccessKey, secret[length..]);
            HmacUtf8(secret[..length], dateStamp, first);
            HmacUtf8(first, region, second);
            HmacUtf8(second, service, first);
            HmacUtf8(first, Terminator, signingKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret[..length]);
            CryptographicOperations.ZeroMemory(first);
            CryptographicOperations.ZeroMemory(second);
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static void HmacUtf8(ReadOnlySpan<byte> key, string data, Span<byte> destination)
    {
        int max = Encoding.UTF8.GetMaxByteCount(data.Length);
        byte[]? rented = null;
        Span<byte> bytes = max <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            int length = Encoding.UTF8.GetBytes(data, bytes);
            HMACSHA256.HashData(key, bytes[..length], destination);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>The lowercase hex SHA-256 of the UTF-8 of <paramref name="text"/> (an <see cref="IncrementalHash"/> kept per thread).</summary>
    private static string Sha256Hex(string text)
    {
        var sha256 = cachedSha256 ?? IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        cachedSha256 = null;
        AppendUtf8(sha256, text);

        Span<byte> hash = stackalloc byte[32];
        sha256.GetHashAndReset(hash);
        cachedSha256 = sha256;
        return Convert.ToHexStringLower(hash);
    }

    private static bool IsUnreserved(byte b) =>
        b is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z' or >= (byte)'0' and <= (byte)'9'
            or (byte)'-' or (byte)'.' or (byte)'_' or (byte)'~';

    private static bool IsHex(byte b) => b < 128 && char.IsAsciiHexDigit((char)b);

    private static int HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        _ => b - 'A' + 10,
    };

    /// <summary>Whether <paramref name="text"/> is an RFC 9110 token (the syntax of methods and header names).</summary>
    private static bool IsToken(string text)
    {
        foreach (char c in text)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.'
                    or '^' or '_' or '`' or '|' or '~'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A derived signing key and the scope it signs for (replaced, never changed), with one spare HMAC context keyed
    /// with it: keying an HMAC costs as much as computing one, so a context is reused (taken and given back, so two
    /// threads never share one; a thread that finds none keys a new one).
    /// </summary>
    private sealed class SigningKey(string dateStamp, string region, string service, byte[] key)
    {
        private IncrementalHash? spare;

        public bool Matches(string dateStamp1, string region1, string service1) =>
            string.Equals(dateStamp, dateStamp1, StringComparison.Ordinal) && string.Equals(region, region1, StringComparison.Ordinal)
            && string.Equals(service, service1, StringComparison.Ordinal);

        /// <summary>HMAC-SHA256 of the UTF-8 of <paramref name="text"/> with the signing key.</summary>
        public void Sign(string text, Span<byte> destination)
        {
            var hmac = Interlocked.Exchange(ref spare, null) ?? IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key);
            AppendUtf8(hmac, text);
            hmac.GetHashAndReset(destination);
            if (Interlocked.CompareExchange(ref spare, hmac, null) is not null)
            {
                hmac.Dispose();
            }
        }
    }

    /// <summary>Feeds the UTF-8 of <paramref name="text"/> to <paramref name="hash"/>.</summary>
    private static void AppendUtf8(IncrementalHash hash, ReadOnlySpan<char> text)
    {
        int max = Encoding.UTF8.GetMaxByteCount(text.Length);
        byte[]? rented = null;
        Span<byte> bytes = max <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            hash.AppendData(bytes[..Encoding.UTF8.GetBytes(text, bytes)]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private readonly record struct HeaderEntry(string Name, string Value, int Order);

    /// <summary>A write-only stream that computes the SHA-256 of what is written to it.</summary>
    private sealed class Sha256Sink : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public string GetHashHex()
        {
            Span<byte> hash = stackalloc byte[32];
            _hash.GetHashAndReset(hash);
            return Convert.ToHexStringLower(hash);
        }

        public override void Write(byte[] buffer, int offset, int count) => _hash.AppendData(buffer, offset, count);

        public override void Write(ReadOnlySpan<byte> buffer) => _hash.AppendData(buffer);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            _hash.AppendData(buffer, offset, count);
            return Task.CompletedTask;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            _hash.AppendData(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override void Flush()
        {
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _hash.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
