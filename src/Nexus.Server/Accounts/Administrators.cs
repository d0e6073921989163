using System.Data.Common;
using Dapper;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Server.Accounts;

/// <summary>
/// Who administers the deployment. The role is stored on the account (users.is_admin) and granted only by
/// something the operator controls: the one-time setup token (printed at first start or given as SETUP_TOKEN) at
/// /setup, the bootstrap API_KEY (POST /v1/admin/users/{id}/admin), or the <c>users promote</c> command. Never by
/// an email address: anyone can sign up with any address, and sign-up does not verify it.
/// </summary>
internal sealed class Administrators(NexusDatabase db, SecretHasher hasher, SessionValidator sessions, ILogger<Administrators> logger)
{
    /// <summary>The settings row holding the hash of the pending setup token; absent once an administrator exists.</summary>
    public const string SetupTokenSetting = "setup_token_hash";

    public async Task<bool> IsSetupPendingAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        return await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT COUNT(*) FROM settings WHERE name = @SetupTokenSetting", new { SetupTokenSetting }, cancellationToken: ct)) > 0;
    }

    /// <summary>
    /// Makes <paramref name="userId"/> an administrator if <paramref name="token"/> is the pending setup token, and
    /// consumes the token in the same transaction: of two people racing with it, exactly one wins.
    /// </summary>
    public async Task<bool> ClaimWithSetupTokenAsync(string userId, string token, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(token) || token.Length > 512)
        {
            return false;
        }

        await using var connection = await db.OpenAsync(ct);
        await using var tx = await db.BeginLockedTransactionAsync(connection, ct);
        // The stored value is a keyed HMAC of the token: equality on it reveals nothing about the token.
        var consumed = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM settings WHERE name = @SetupTokenSetting AND value = @hash", new { SetupTokenSetting, hash = hasher.Hash(token) }, tx, cancellationToken: ct));
        if (consumed != 1)
        {
            await tx.RollbackAsync(ct);
            return false;
        }

        // The operator vouched for this account by handing it the token, so its address counts as verified.
        var granted = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE users SET is_admin = 1, email_confirmed = 1 WHERE id = @userId", new { userId }, tx, cancellationToken: ct));
        if (granted != 1)
        {
            await tx.RollbackAsync(ct);
            return false;
        }

        await tx.CommitAsync(ct);
        sessions.Invalidate(userId);
        logger.LogWarning("Account {UserId} became a system administrator with the setup token", userId);
        return true;
    }

    /// <summary>
    /// Whether the account administers the deployment, read from its stored role as the dashboard's session check
    /// reads it (for callers that hold a user id from a token rather than a session, e.g. the MCP tools).
    /// </summary>
    public async Task<bool> IsAdministratorAsync(string userId, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        return await connection.ExecuteScalarAsync<long?>(new CommandDefinition(
            "SELECT is_admin FROM users WHERE id = @userId", new { userId }, cancellationToken: ct)) is { } admin && admin != 0;
    }

    /// <summary>Grants or withdraws the role (API_KEY or the command line). Returns false for an unknown account.</summary>
    public async Task<bool> SetAsync(string userId, bool admin, string grantedBy, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await using var tx = await db.BeginLockedTransactionAsync(connection, ct);
        var changed = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE users SET is_admin = @value WHERE id = @userId", new { userId, value = admin ? 1 : 0 }, tx, cancellationToken: ct));
        if (changed == 1 && admin)
        {
            // The deployment has an administrator now: a setup token still pending would only be a way in.
            await connection.ExecuteAsync(new CommandDefinition(
                "DELETE FROM settings WHERE name = @SetupTokenSetting", new { SetupTokenSetting }, tx, cancellationToken: ct));
        }

        await tx.CommitAsync(ct);
        sessions.Invalidate(userId);
        if (changed == 1)
        {
            logger.LogWarning("Account {UserId} {Change} by {GrantedBy}", userId, admin ? "became a system administrator" : "is no longer a system administrator", grantedBy);
        }

        return changed == 1;
    }
}

/// <summary>
/// At the server's start, while no administrator exists, arms a one-time setup token: SETUP_TOKEN when the operator
/// set one, otherwise a fresh random token written once to the console (standard output, never through the logger, so
/// it does not reach log collectors). Only its keyed hash is stored. Once an administrator exists, no token is kept.
/// A command of the command line leaves the token alone: re-arming it there would silently replace the token the
/// running server printed (a <c>migrate</c> job or a <c>backup</c> would lock the operator out of /setup).
/// </summary>
internal sealed class SetupTokenStartup(NexusOptions options, ServerSecrets secrets, SecretHasher hasher, TimeProvider time) : IStartupStep
{
    public async Task RunAsync(DbConnection connection, StartupPurpose purpose, CancellationToken ct)
    {
        if (!hasher.IsInitialized)
        {
            hasher.Initialize(await secrets.GetOrCreateAsync(connection, "secret_hash_key", ct));
        }

        if (purpose != StartupPurpose.Server)
        {
            return;
        }

        var admins = await connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT COUNT(*) FROM users WHERE is_admin = 1", cancellationToken: ct));
        if (admins > 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "DELETE FROM settings WHERE name = @name", new { name = Administrators.SetupTokenSetting }, cancellationToken: ct));
            return;
        }

        var generated = string.IsNullOrWhiteSpace(options.SetupToken);
        // Trimmed as what is entered at /setup is: a token read from a file with its final newline must still match.
        var token = generated ? SecretGenerator.Secret("nxsetup_") : options.SetupToken!.Trim();
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO settings (name, value, updated_at) VALUES (@name, @value, @now) ON CONFLICT (name) DO UPDATE SET value = @value, updated_at = @now",
            new { name = Administrators.SetupTokenSetting, value = hasher.Hash(token), now = time.GetUtcNow().ToUnixTimeMilliseconds() }, cancellationToken: ct));
        if (generated)
        {
            Console.WriteLine($"""

                Nexus has no administrator yet. Sign in (or create an account), open {options.BaseUrl.TrimEnd('/')}/setup
                and enter this one-time setup token (valid until it is used or Nexus restarts):

                    {token}

                """);
        }
    }
}
