using System.Buffers;
using System.Text;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// A strict application/x-www-form-urlencoded reader for OAuth endpoints. Stricter than the framework's form
/// reader on purpose: RFC 6749 §3.1/§3.2 forbid repeated parameters, and a body that is not valid
/// percent-encoded UTF-8 is rejected rather than silently repaired.
/// </summary>
internal sealed class OAuthForm
{
    public const int MaxBodyBytes = 16 * 1024;

    private static readonly string TooLarge = $"The request body exceeds {MaxBodyBytes} bytes.";

    /// <summary>The error for a parameter with a NUL character (Hosting/InputText); strict UTF-8 already excludes lone surrogates.</summary>
    public const string InvalidCharacters = "A parameter contains a NUL character.";

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Dictionary<string, string> values;

    private OAuthForm(Dictionary<string, string> values) => this.values = values;

    /// <summary>The request named more than one distinct resource (RFC 8707 §2); the first is the one held.</summary>
    public bool SeveralResources { get; private init; }

    /// <summary>RFC 6749 §3.1: a parameter sent without a value is treated as omitted.</summary>
    public string? this[string name] => values.TryGetValue(name, out var v) && v.Length > 0 ? v : null;

    public bool Has(string name) => this[name] is not null;

    public static bool IsFormContentType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return false;
        }

        var semicolon = contentType.IndexOf(';', StringComparison.Ordinal);
        var mediaType = (semicolon < 0 ? contentType : contentType[..semicolon]).Trim();
        if (!mediaType.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        // Only UTF-8 is defined for OAuth form bodies (RFC 6749 Appendix B).
        var charset = semicolon < 0 ? null : contentType[(semicolon + 1)..].Trim();
        return charset is null or "" || charset.Equals("charset=utf-8", StringComparison.OrdinalIgnoreCase)
            || charset.Equals("charset=\"utf-8\"", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Reads and parses the request body; the error is a description for an invalid_request response.</summary>
    public static async ValueTask<(OAuthForm? Form, string? Error)> ReadAsync(HttpRequest request, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(MaxBodyBytes);
        var length = 0;
        try
        {
            while (true)
            {
                var read = await request.Body.ReadAsync(buffer.AsMemory(length, buffer.Length - length), ct);
                if (read == 0)
                {
                    break;
                }

                length += read;
                if (length > MaxBodyBytes)
                {
                    // Read the rest (Kestrel caps it at MaxRequestBodySize) so that the client, which may still be
                    // uploading, receives this answer instead of a reset connection.
                    while (await request.Body.ReadAsync(buffer, ct) > 0)
                    {
                    }

                    length = buffer.Length;
                    return (null, TooLarge);
                }

                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
                    buffer = larger;
                }
            }

            return Parse(buffer.AsSpan(0, length));
        }
        catch (BadHttpRequestException)
        {
            length = buffer.Length;
            return (null, TooLarge);
        }
        finally
        {
            // The body holds secrets (client_secret, code, refresh_token): cleared before the buffer goes back to the pool.
            buffer.AsSpan(0, Math.Min(length, buffer.Length)).Clear();
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Names of the parameters present (with or without a value).</summary>
    public IEnumerable<string> Names => values.Keys;

    /// <summary>Merges two parameter sets (e.g. query string and body); a name in both counts as repeated.</summary>
    public static (OAuthForm? Form, string? Error) Merge(OAuthForm first, OAuthForm second)
    {
        var merged = new Dictionary<string, string>(first.values, StringComparer.Ordinal);
        var severalResources = first.SeveralResources || second.SeveralResources;
        foreach (var (name, value) in second.values)
        {
            // Wherever its copies are (query string and body), as within one of them.
            if (!Add(merged, name, value, ref severalResources))
            {
                return (null, $"The parameter '{Printable(name)}' is repeated.");
            }
        }

        return (new OAuthForm(merged) { SeveralResources = severalResources }, null);
    }

    public static (OAuthForm? Form, string? Error) Parse(ReadOnlySpan<byte> body)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var scratch = ArrayPool<byte>.Shared.Rent(Math.Max(body.Length, 1));
        try
        {
            return Parse(body, values, scratch);
        }
        finally
        {
            // Decoded parameters include secrets (client_secret, code, refresh_token): nothing is left in the shared pool.
            ArrayPool<byte>.Shared.Return(scratch, clearArray: true);
        }
    }

    private static (OAuthForm? Form, string? Error) Parse(ReadOnlySpan<byte> body, Dictionary<string, string> values, byte[] scratch)
    {
        var severalResources = false;
        while (!body.IsEmpty)
        {
            var amp = body.IndexOf((byte)'&');
            var pair = amp < 0 ? body : body[..amp];
            body = amp < 0 ? [] : body[(amp + 1)..];
            if (pair.IsEmpty)
            {
                continue;
            }

            var eq = pair.IndexOf((byte)'=');
            var name = Decode(eq < 0 ? pair : pair[..eq], scratch);
            var value = eq < 0 ? "" : Decode(pair[(eq + 1)..], scratch);
            if (name is null || value is null)
            {
                return (null, "The request body is not valid percent-encoded UTF-8.");
            }

            if (!Hosting.InputText.IsClean(name) || !Hosting.InputText.IsClean(value))
            {
                return (null, InvalidCharacters);
            }

            if (!Add(values, name, value, ref severalResources))
            {
                return (null, $"The parameter '{Printable(name)}' is repeated.");
            }
        }

        return (new OAuthForm(values) { SeveralResources = severalResources }, null);
    }

    /// <summary>
    /// Adds a parameter; false when it is repeated. RFC 6749 §3.1 and §3.2: request parameters MUST NOT be included more
    /// than once; RFC 8707 §2 lets resource be (the token endpoint answers invalid_target for more than one distinct
    /// value: Nexus binds a grant to one resource), which <paramref name="severalResources"/> records.
    /// </summary>
    private static bool Add(Dictionary<string, string> values, string name, string value, ref bool severalResources)
    {
        if (values.TryAdd(name, value))
        {
            return true;
        }

        if (name != Resources.ResourceIndicators.Parameter)
        {
            return false;
        }

        severalResources |= values[name] != value;
        return true;
    }

    /// <summary>Decodes one form-urlencoded component; null when it is not valid percent-encoded UTF-8.</summary>
    public static string? DecodeComponent(ReadOnlySpan<char> value)
    {
        if (value.IndexOfAny('%', '+') < 0)
        {
            // Nothing to decode (the usual client id and secret): the text as it is.
            return value.ToString();
        }

        var bytes = new byte[Encoding.UTF8.GetByteCount(value)];
        Encoding.UTF8.GetBytes(value, bytes);
        return Decode(bytes, new byte[bytes.Length]);
    }

    private static string? Decode(ReadOnlySpan<byte> encoded, byte[] scratch)
    {
        var n = 0;
        for (var i = 0; i < encoded.Length; i++)
        {
            var b = encoded[i];
            if (b == (byte)'+')
            {
                scratch[n++] = (byte)' ';
            }
            else if (b == (byte)'%')
            {
                if (i + 2 >= encoded.Length || !IsHex(encoded[i + 1]) || !IsHex(encoded[i + 2]))
                {
                    return null;
                }

                scratch[n++] = (byte)((HexValue(encoded[i + 1]) << 4) | HexValue(encoded[i + 2]));
                i += 2;
            }
            else
            {
                scratch[n++] = b;
            }
        }

        try
        {
            return StrictUtf8.GetString(scratch, 0, n);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    private static bool IsHex(byte b) => b is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f' or >= (byte)'A' and <= (byte)'F';

    private static int HexValue(byte b) => b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10;

    private static string Printable(string name) => name.Length > 40 || name.Any(char.IsControl) ? "(unprintable)" : name;
}
