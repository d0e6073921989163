using Nexus.Server.Connections;

namespace Nexus.Server.Tests.Connections;

/// <summary>How a provider's token response is read (<see cref="ProviderClient.Parse"/>).</summary>
public sealed class ProviderClientTests
{
    [Theory]
    [InlineData("3599", 3599L)]
    [InlineData("315360000", ProviderClient.MaxLifetimeSeconds)]
    [InlineData("999999999999", ProviderClient.MaxLifetimeSeconds)]
    [InlineData("9223372036854775807", ProviderClient.MaxLifetimeSeconds)]
    [InlineData("99999999999999999999999999", ProviderClient.MaxLifetimeSeconds)]
    [InlineData("0", null)]
    [InlineData("-5", null)]
    [InlineData("soon", null)]
    public void AnAbsurdExpiresInIsReadAsTenYearsSoThatExpiryArithmeticStaysInRange(string expiresIn, long? expected)
    {
        var json = ProviderClient.Parse($$"""{"access_token":"at","token_type":"Bearer","expires_in":{{(expiresIn.All(char.IsAsciiDigit) ? expiresIn : $"\"{expiresIn}\"")}}}""", "application/json");
        var form = ProviderClient.Parse($"access_token=at&token_type=bearer&expires_in={Uri.EscapeDataString(expiresIn)}", "application/x-www-form-urlencoded");
        Assert.Equal(expected, json.ExpiresIn);
        Assert.Equal(expected, form.ExpiresIn);

        // What the callback and the refresher compute from it is in range.
        if (json.ExpiresIn is { } seconds)
        {
            var expiresAt = DateTimeOffset.UtcNow.AddSeconds(seconds).ToUnixTimeMilliseconds();
            Assert.True(expiresAt > DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            Assert.True(checked(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + (seconds * 1000)) > 0);
        }
    }
}
