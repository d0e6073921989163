namespace Nexus.Server.Hosting;

/// <summary>
/// Text no client has a reason to send: a NUL character (PostgreSQL refuses it in text, error 22021, and C
/// libraries end strings at it) or a lone UTF-16 surrogate (not a character: it cannot be encoded as UTF-8, so
/// it cannot be stored, logged or compared reliably). Both are refused at the edge, before a handler sees them.
/// </summary>
internal static class InputText
{
    /// <summary>True when <paramref name="text"/> has no NUL and no unpaired surrogate.</summary>
    public static bool IsClean(ReadOnlySpan<char> text)
    {
        // Fast path: almost all input has neither a NUL nor any surrogate.
        if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            return !text.Contains('\0');
        }

        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\0')
            {
                return false;
            }

            if (char.IsHighSurrogate(c))
            {
                if (i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1]))
                {
                    return false;
                }

                i++;
            }
            else if (char.IsLowSurrogate(c))
            {
                return false;
            }
        }

        return true;
    }

    public static bool IsClean(string? text) => text is null || IsClean(text.AsSpan());

    /// <summary>
    /// True when <paramref name="url"/> is written in visible ASCII only (no space, control or non-ASCII character),
    /// as a URL that goes out in a Location header or is compared as a string must be (RFC 3986 §2: anything else is
    /// percent-encoded); with <paramref name="allowBackslash"/> false, a backslash is refused too (browsers read it
    /// as a slash).
    /// </summary>
    public static bool IsVisibleAscii(ReadOnlySpan<char> url, bool allowBackslash = true) =>
        url.IndexOfAnyExceptInRange('!', '~') < 0 && (allowBackslash || !url.Contains('\\'));
}
