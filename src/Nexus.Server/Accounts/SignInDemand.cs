using System.Globalization;

namespace Nexus.Server.Accounts;

/// <summary>
/// What an application's authorization request asked of the sign-in it sent the person to: a fresh authentication
/// (<c>prompt=login</c>), a choice of account (<c>prompt=select_account</c>), or an authentication no older than
/// <c>max_age</c> seconds (OIDC Core §3.1.2.1). The sign-in page carries it, and a sign-in through the upstream
/// provider passes it on in its own authorization request, so that the upstream's single sign-on does not let the
/// person through unasked when the application asked for them to be asked. Only a request to the upstream: what the
/// application gets to check is the ID token's <c>auth_time</c>, which comes from the upstream's answer, never from here.
/// </summary>
internal readonly record struct SignInDemand(string? Prompt, long? MaxAge)
{
    public const string PromptParameter = "prompt";
    public const string MaxAgeParameter = "max_age";

    // The prompt values that ask the provider that authenticates for something; "consent" is Nexus's own to ask.
    private static readonly string[] Forwarded = ["login", "select_account"];

    public bool IsEmpty => Prompt is null && MaxAge is null;

    /// <summary>The demand from a request's values: unknown prompt values are dropped, a max_age that is not a non-negative integer is ignored.</summary>
    public static SignInDemand Parse(string? prompt, string? maxAge)
    {
        var prompts = (prompt ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(Forwarded.Contains).Distinct().ToArray();
        long? age = long.TryParse(maxAge, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) ? seconds : null;
        return new SignInDemand(prompts.Length == 0 ? null : string.Join(' ', prompts), age);
    }

    /// <summary>The demand as query parameters ("&amp;prompt=…&amp;max_age=…"), empty when there is none.</summary>
    public string ToQuery() =>
        (Prompt is null ? "" : $"&{PromptParameter}={Uri.EscapeDataString(Prompt)}")
        + (MaxAge is null ? "" : $"&{MaxAgeParameter}={MaxAge.Value.ToString(CultureInfo.InvariantCulture)}");

    /// <summary>The demand as the parameters of an OpenID Connect authorization request.</summary>
    public IEnumerable<KeyValuePair<string, string>> ToParameters()
    {
        if (Prompt is not null)
        {
            yield return new(PromptParameter, Prompt);
        }

        if (MaxAge is not null)
        {
            yield return new(MaxAgeParameter, MaxAge.Value.ToString(CultureInfo.InvariantCulture));
        }
    }
}
