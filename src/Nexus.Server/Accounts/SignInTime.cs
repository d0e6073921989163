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

    /// <summary>
    /// The cookie handler's OnSigningIn: every sign-in (password, sign-up, upstream, the one after a password change)
    /// starts with new properties and is stamped now; properties carried over keep their stamp.
    /// </summary>
    public static Task StampAsync(CookieSigningInContext context)
    {
        if (!context.Properties.Items.ContainsKey(Key))
        {
            var now = context.HttpContext.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
            context.Properties.Items[Key] = now.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return Task.CompletedTask;
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
