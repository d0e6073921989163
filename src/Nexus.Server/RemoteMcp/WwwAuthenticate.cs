namespace Nexus.Server.RemoteMcp;

/// <summary>
/// Reads the Bearer challenge of a WWW-Authenticate field (RFC 9110 §11.6.1, RFC 6750 §3): auth-params in any order,
/// values as tokens or quoted strings with backslash escapes, several challenges in one field or in several fields.
/// </summary>
internal static class WwwAuthenticate
{
    /// <summary>The parameters of the first Bearer challenge (names lower-cased), or null when there is none.</summary>
    public static Dictionary<string, string>? Bearer(IEnumerable<string> fields)
    {
        foreach (var field in fields)
        {
            if (Parse(field).FirstOrDefault(c => string.Equals(c.Scheme, "Bearer", StringComparison.OrdinalIgnoreCase)) is { Scheme: not null } bearer)
            {
                return bearer.Parameters;
            }
        }

        return null;
    }

    private static List<(string Scheme, Dictionary<string, string> Parameters)> Parse(string field)
    {
        var challenges = new List<(string, Dictionary<string, string>)>();
        var i = 0;
        Dictionary<string, string>? current = null;
        while (i < field.Length)
        {
            SkipSpaceAndCommas(field, ref i);
            var token = Token(field, ref i);
            if (token.Length == 0)
            {
                i++; // a character that starts nothing: skip it rather than loop
                continue;
            }

            var afterToken = i;
            SkipSpace(field, ref i);
            if (i < field.Length && field[i] == '=' && current is not null && !(i + 1 < field.Length && field[i + 1] == '=' && Token68Tail(field, i)))
            {
                i++;
                SkipSpace(field, ref i);
                // Leniently, an unquoted value runs to the next comma or space: servers send URLs unquoted, though a
                // token (RFC 9110 §5.6.2) may not contain ':' or '/'.
                var value = i < field.Length && field[i] == '"' ? Quoted(field, ref i) : Unquoted(field, ref i);
                current.TryAdd(token.ToLowerInvariant(), value);
                continue;
            }

            // A new challenge: auth-scheme [ 1*SP ( token68 / #auth-param ) ].
            i = afterToken;
            current = new Dictionary<string, string>(StringComparer.Ordinal);
            challenges.Add((token, current));
        }

        return challenges;
    }

    private static bool Token68Tail(string s, int i)
    {
        while (i < s.Length && s[i] == '=')
        {
            i++;
        }

        while (i < s.Length && s[i] == ' ')
        {
            i++;
        }

        return i >= s.Length || s[i] == ',';
    }

    private static void SkipSpace(string s, ref int i)
    {
        while (i < s.Length && s[i] is ' ' or '\t')
        {
            i++;
        }
    }

    private static void SkipSpaceAndCommas(string s, ref int i)
    {
        while (i < s.Length && s[i] is ' ' or '\t' or ',')
        {
            i++;
        }
    }

    private static string Token(string s, ref int i)
    {
        var start = i;
        while (i < s.Length && s[i] > ' ' && s[i] < 0x7f && "\"(),/:;<=>?@[\\]{}".IndexOf(s[i]) < 0)
        {
            i++;
        }

        return s[start..i];
    }

    private static string Unquoted(string s, ref int i)
    {
        var start = i;
        while (i < s.Length && s[i] is not (',' or ' ' or '\t'))
        {
            i++;
        }

        return s[start..i];
    }

    private static string Quoted(string s, ref int i)
    {
        var builder = new System.Text.StringBuilder();
        i++; // opening quote
        while (i < s.Length && s[i] != '"')
        {
            if (s[i] == '\\' && i + 1 < s.Length)
            {
                i++;
            }

            builder.Append(s[i]);
            i++;
        }

        i++; // closing quote
        return builder.ToString();
    }
}
