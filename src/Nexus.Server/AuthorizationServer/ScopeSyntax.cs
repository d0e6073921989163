namespace Nexus.Server.AuthorizationServer;

internal static class ScopeSyntax
{
    /// <summary>The most scopes Nexus takes in one list (a request, a provider, a connection), wherever they come from.</summary>
    public const int MaxScopes = 100;

    /// <summary>What <see cref="IsValidList"/> enforces, said to whoever gave the list.</summary>
    public const string ListRule = "At most 100 scopes, each 1 to 200 printable ASCII characters without spaces, quotes or backslashes (RFC 6749 §3.3).";

    /// <summary>At most <see cref="MaxScopes"/> scopes, each a valid scope-token (RFC 6749 §3.3).</summary>
    public static bool IsValidList(IReadOnlyCollection<string?> scopes) => scopes.Count <= MaxScopes && scopes.All(s => s is not null && IsValidToken(s));

    /// <summary>RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).</summary>
    public static bool IsValidToken(string scope)
    {
        if (scope.Length is 0 or > 200)
        {
            return false;
        }

        foreach (var c in scope)
        {
            if (c < 0x21 || c == 0x22 || c == 0x5C || c > 0x7E)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Splits a space-delimited scope parameter; null when a token is malformed or there is none.</summary>
    public static List<string>? Parse(string value)
    {
        var result = new List<string>();
        foreach (var token in value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!IsValidToken(token))
            {
                return null;
            }

            if (!result.Contains(token))
            {
                result.Add(token);
            }
        }

        // RFC 6749 §3.3: scope = scope-token *( SP scope-token ), so a scope parameter holds at least one token; one of
        // blanks only ("scope=+") is malformed like a bad token, not an empty request that any consent would cover.
        return result.Count == 0 ? null : result;
    }
}
