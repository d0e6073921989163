namespace Nexus.Server.AuthorizationServer;

/// <summary>Scopes in plain words, for consent screens.</summary>
internal static class ScopeDescriptions
{
    private static readonly Dictionary<string, string> Known = new(StringComparer.Ordinal)
    {
        ["openid"] = "Confirm who you are",
        ["profile"] = "See your name",
        ["email"] = "See your email address",
        ["offline_access"] = "Keep access while you are not using it",
    };

    static ScopeDescriptions()
    {
        foreach (var (scope, text) in Resources.McpScopes.Descriptions)
        {
            Known[scope] = text;
        }
    }

    /// <summary>What a token without scopes still does: /api/v1/me answers with the account it speaks for.</summary>
    public const string NoScope = "Know which Nexus account you use (nothing else)";

    public static string Describe(string scope) => Known.TryGetValue(scope, out var text) ? text : $"Use the “{scope}” permission";
}
