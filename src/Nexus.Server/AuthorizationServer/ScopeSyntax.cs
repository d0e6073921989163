namespace Nexus.Server.AuthorizationServer;

internal static class ScopeSyntax
{
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
