using Dapper;
using Nexus.Server.Data;

namespace Nexus.Server.Accounts;

/// <summary>Settings an admin changes at run time (stored in the database, shared by every instance).</summary>
internal sealed class DeploymentSettings(NexusDatabase db, TimeProvider time, IHostEnvironment environment)
{
    public const string SignUpEnabled = "sign_up_enabled";

    /// <summary>
    /// Self-service sign-up. Until an administrator decides, it is closed in Production (a fresh deployment on the
    /// internet does not take accounts from strangers) and open elsewhere (development, tests).
    /// </summary>
    public async Task<bool> IsSignUpEnabledAsync(CancellationToken ct) => await GetAsync(SignUpEnabled, ct) switch
    {
        "true" => true,
        "false" => false,
        _ => !environment.IsProduction(),
    };

    public async Task<string?> GetAsync(string name, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<string>(new CommandDefinition("SELECT value FROM settings WHERE name = @name", new { name }, cancellationToken: ct));
    }

    public async Task SetAsync(string name, string value, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO settings (name, value, updated_at) VALUES (@name, @value, @now) ON CONFLICT (name) DO UPDATE SET value = @value, updated_at = @now",
            new { name, value, now = time.GetUtcNow().ToUnixTimeMilliseconds() }, cancellationToken: ct));
    }
}
