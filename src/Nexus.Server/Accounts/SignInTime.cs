using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;

namespace Nexus.Server.Accounts;

/// <summary>
/// When the person behind a session authenticated (OIDC Core §2, auth_time: "Time when the End-User authentication
/// occurred"), kept in the session cookie's properties. The cookie's IssuedUtc is not that time: sliding expiration
/// moves it forward at every renewal, so a session authenticated days ago would report an auth_time of an hour ago and
/// pass a client's max_age check it should fail.
/// </summary>
internal static class SignInTime
{
    private const string Key = "nexus.auth_time";

    /// <summary>When this Nexus session began (Unix seconds), for its absolute lifetime; auth_time may be older (an upstream's).</summary>
    private const string StartedKey = "nexus.session_started";

    /// <summary>
    /// The cookie handler's OnSigningIn: every sign-in (password, sign-up, upstream, the one after a password change)
    /// starts with new properties and is stamped now; properties carried over keep their stamp.
    /// </summary>
    public static Task StampAsync(CookieSigningInContext context)
    {
        var now = context.HttpContext.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow().ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Properties.Items.TryAdd(Key, now);
        context.Properties.Items.TryAdd(StartedKey, now);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Whether the session has outlived Nexus:SessionMaxHours since it began, however often it was renewed. A session
    /// from before the stamp existed is stamped now (and its cookie renewed), so it too ends within the limit.
    /// </summary>
    public static bool Outlived(Microsoft.AspNetCore.Authentication.Cookies.CookieValidatePrincipalContext context, TimeSpan max, DateTimeOffset now)
    {
        if (context.Properties.Items.TryGetValue(StartedKey, out var value)
            && long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var started))
        {
            return now - DateTimeOffset.FromUnixTimeSeconds(started) > max;
        }

        context.Properties.Items[StartedKey] = now.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.ShouldRenew = true;
        return false;
    }

    /// <summary>
    /// Properties for a sign-in whose authentication happened elsewhere and earlier: at the upstream identity provider,
    /// which says when in its ID token's auth_time (its single sign-on may not have asked the person anything now).
    /// </summary>
    public static AuthenticationProperties At(long authTime) =>
        new() { Items = { [Key] = authTime.ToString(System.Globalization.CultureInfo.InvariantCulture) } };

    /// <summary>The session's authentication time in Unix seconds; its cookie's issue time for a session older than the stamp.</summary>
    public static long? Of(AuthenticationProperties? properties) =>
        properties?.Items.TryGetValue(Key, out var value) == true && long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds)
            ? seconds
            : properties?.IssuedUtc?.ToUnixTimeSeconds();
}
