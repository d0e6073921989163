namespace Nexus.Server.Hosting;

/// <summary>
/// Which environment Nexus runs in. What a person sets wins: ASPNETCORE_ENVIRONMENT, DOTNET_ENVIRONMENT or
/// --environment. Only when none is set does NEXUS_DEFAULT_ENVIRONMENT apply; the launch profile that
/// <c>dotnet run</c> uses sets it to Development, so the README's first command needs no setup while
/// <c>ASPNETCORE_ENVIRONMENT=Production dotnet run</c> really runs in Production. (A launch profile's
/// ASPNETCORE_ENVIRONMENT would override the variable the person set.) Without any of them, as in a
/// published build or a container, ASP.NET Core's default applies: Production.
/// </summary>
internal static class NexusEnvironment
{
    public const string DefaultVariable = "NEXUS_DEFAULT_ENVIRONMENT";

    public static WebApplicationOptions Options(string[] args)
    {
        var chosen = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("ASPNETCORE_ENVIRONMENT"))
            || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("DOTNET_ENVIRONMENT"))
            || args.Any(a => a.StartsWith("--environment", StringComparison.OrdinalIgnoreCase) || a.StartsWith("/environment", StringComparison.OrdinalIgnoreCase));
        var fallback = Environment.GetEnvironmentVariable(DefaultVariable);
        return chosen || string.IsNullOrEmpty(fallback)
            ? new WebApplicationOptions { Args = args }
            : new WebApplicationOptions { Args = args, EnvironmentName = fallback };
    }
}
