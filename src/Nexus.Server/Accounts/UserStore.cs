using System.Security.Cryptography;
using Dapper;
using Microsoft.AspNetCore.Identity;
using Nexus.Server.Data;

namespace Nexus.Server.Accounts;

/// <summary>
/// ASP.NET Core Identity's persistence for Nexus users, over the same Dapper data layer as the rest of Nexus, so
/// users live in SQLite or PostgreSQL beside everything else and follow the same migrations. Identity keeps
/// doing what it is good at: password hashing (PBKDF2), lockout, and security stamps.
/// </summary>
internal sealed class UserStore(NexusDatabase db, TimeProvider time, Microsoft.Extensions.Options.IOptions<IdentityOptions> identity) :
    IUserPasswordStore<NexusUser>, IUserEmailStore<NexusUser>, IUserLockoutStore<NexusUser>, IUserSecurityStampStore<NexusUser>,
    IUserLoginStore<NexusUser>
{
    private const string Columns = "id, email, normalized_email, email_confirmed, display_name, password_hash, security_stamp, concurrency_stamp, lockout_enabled, lockout_end, access_failed_count, created_at, password_change_required";

    // is_admin is read with the row but written only by Administrators, never by Identity's UpdateAsync.
    private const string SelectColumns = Columns + ", is_admin";

    private sealed class Row
    {
        public string Id { get; init; } = "";
        public string Email { get; init; } = "";
        public string NormalizedEmail { get; init; } = "";
        public long EmailConfirmed { get; init; }
        public string? DisplayName { get; init; }
        public string? PasswordHash { get; init; }
        public string SecurityStamp { get; init; } = "";
        public string ConcurrencyStamp { get; init; } = "";
        public long LockoutEnabled { get; init; }
        public long? LockoutEnd { get; init; }
        public long AccessFailedCount { get; init; }
        public long CreatedAt { get; init; }

        public long PasswordChangeRequired { get; init; }

        public long IsAdmin { get; init; }

        public NexusUser ToUser() => new()
        {
            Id = Id,
            Email = Email,
            NormalizedEmail = NormalizedEmail,
            EmailConfirmed = EmailConfirmed != 0,
            DisplayName = DisplayName,
            PasswordHash = PasswordHash,
            SecurityStamp = SecurityStamp,
            ConcurrencyStamp = ConcurrencyStamp,
            LockoutEnabled = LockoutEnabled != 0,
            LockoutEnd = LockoutEnd is { } l ? DateTimeOffset.FromUnixTimeMilliseconds(l) : null,
            AccessFailedCount = (int)AccessFailedCount,
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt),
            IsSystemAdmin = IsAdmin != 0,
            PasswordChangeRequired = PasswordChangeRequired != 0,
        };
    }

    private static object Parameters(NexusUser u) => new
    {
        u.Id,
        u.Email,
        u.NormalizedEmail,
        EmailConfirmed = u.EmailConfirmed ? 1 : 0,
        u.DisplayName,
        u.PasswordHash,
        u.SecurityStamp,
        u.ConcurrencyStamp,
        LockoutEnabled = u.LockoutEnabled ? 1 : 0,
        LockoutEnd = u.LockoutEnd?.ToUnixTimeMilliseconds(),
        u.AccessFailedCount,
        CreatedAt = u.CreatedAt.ToUnixTimeMilliseconds(),
        PasswordChangeRequired = u.PasswordChangeRequired ? 1 : 0,
    };

    public async Task<IdentityResult> CreateAsync(NexusUser user, CancellationToken ct)
    {
        if (user.CreatedAt == default)
        {
            user.CreatedAt = time.GetUtcNow();
        }

        await using var connection = await db.OpenAsync(ct);
        var inserted = await connection.ExecuteAsync(new CommandDefinition(
            $"INSERT INTO users ({Columns}) VALUES (@Id, @Email, @NormalizedEmail, @EmailConfirmed, @DisplayName, @PasswordHash, @SecurityStamp, @ConcurrencyStamp, @LockoutEnabled, @LockoutEnd, @AccessFailedCount, @CreatedAt, @PasswordChangeRequired) ON CONFLICT (normalized_email) DO NOTHING",
            Parameters(user), cancellationToken: ct));
        return inserted == 1 ? IdentityResult.Success : IdentityResult.Failed(new IdentityError { Code = UserAccounts.DuplicateEmail, Description = "An account with this email already exists." });
    }

    /// <summary>
    /// Disables an account (locked out to the end of time, a new security stamp, so every session ends) or lifts its
    /// lockout (enable and unlock; the failed-attempt count starts again from zero), in one write that does not depend
    /// on what was read: a concurrent update made from an earlier read (a failed sign-in counting) then fails its own
    /// compare-and-set instead of putting the old lockout back. False when there is no such account.
    /// </summary>
    public async Task<bool> SetDisabledAsync(string id, bool disabled, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var concurrency = Guid.NewGuid().ToString("N");
        return await connection.ExecuteAsync(new CommandDefinition(
            disabled
                ? "UPDATE users SET lockout_enabled = 1, lockout_end = @end, security_stamp = @stamp, concurrency_stamp = @concurrency WHERE id = @id"
                : "UPDATE users SET lockout_end = NULL, access_failed_count = 0, concurrency_stamp = @concurrency WHERE id = @id",
            new { id, end = DisabledUntil, stamp = Convert.ToHexString(RandomNumberGenerator.GetBytes(20)), concurrency },
            cancellationToken: ct)) == 1;
    }

    /// <summary>
    /// Counts a password attempt for the account as failed before the password is checked, in one write that reads
    /// nothing first: the count goes up by exactly one however many attempts arrive at once, and the write that reaches
    /// Identity's MaxFailedAccessAttempts locks the account for its DefaultLockoutTimeSpan and starts the count again.
    /// False, with nothing written, when the account is locked or disabled (lockout_end in the future): the attempt
    /// must not be checked. Identity's own counting (AccessFailedAsync) counted after the check, on the copy each
    /// request read, and wrote it back compare-and-set: of attempts made together all were checked and one counted.
    /// <see cref="ClearFailedPasswordsAsync"/> takes the count back when the password was right.
    /// </summary>
    public async Task<bool> ReserveFailedPasswordAsync(string id, CancellationToken ct)
    {
        // Identity's lockout settings (LockoutOptions: 5 attempts, 15 minutes), on the server's clock.
        var lockout = identity.Value.Lockout;
        var now = time.GetUtcNow();
        var (maxFailures, lockedUntil) = (lockout.MaxFailedAccessAttempts, now + lockout.DefaultLockoutTimeSpan);
        await using var connection = await db.OpenAsync(ct);
        return await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE users SET
                lockout_end = CASE WHEN lockout_enabled = 1 AND access_failed_count + 1 >= @maxFailures THEN @until ELSE lockout_end END,
                access_failed_count = CASE WHEN lockout_enabled = 1 AND access_failed_count + 1 >= @maxFailures THEN 0 ELSE access_failed_count + 1 END
            WHERE id = @id AND (lockout_end IS NULL OR lockout_end <= @now)
            """,
            new { id, maxFailures, until = lockedUntil.ToUnixTimeMilliseconds(), now = now.ToUnixTimeMilliseconds() },
            cancellationToken: ct)) == 1;
    }

    /// <summary>
    /// The password was right: the failed-attempt count starts again, and a lockout that attempts made meanwhile (this
    /// one's reservation included) set is lifted; a disabled account (locked to the end of time) stays disabled.
    /// </summary>
    public async Task ClearFailedPasswordsAsync(string id, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE users SET access_failed_count = 0, lockout_end = CASE WHEN lockout_end < @disabled THEN NULL ELSE lockout_end END WHERE id = @id",
            new { id, disabled = DisabledUntil }, cancellationToken: ct));
    }

    /// <summary>
    /// Lifts a lockout that failed sign-ins set (the count starts again), never an administrator's disabling: an unlock
    /// from a page read before the account was disabled leaves it disabled. False when there is no such account.
    /// </summary>
    public async Task<bool> UnlockAsync(string id, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE users SET lockout_end = NULL, access_failed_count = 0, concurrency_stamp = @concurrency WHERE id = @id AND (lockout_end IS NULL OR lockout_end < @disabled)",
            new { id, concurrency = Guid.NewGuid().ToString("N"), disabled = DisabledUntil }, cancellationToken: ct));
        return await connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT COUNT(*) FROM users WHERE id = @id", new { id }, cancellationToken: ct)) == 1;
    }

    /// <summary>lockout_end of a disabled account (SetDisabledAsync): locked to the end of time.</summary>
    private static readonly long DisabledUntil = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();

    public async Task<IdentityResult> UpdateAsync(NexusUser user, CancellationToken ct)
    {
        var expected = user.ConcurrencyStamp;
        user.ConcurrencyStamp = Guid.NewGuid().ToString("N");
        await using var connection = await db.OpenAsync(ct);
        // Optimistic concurrency: two sign-ins racing on the failure counter must not overwrite each other silently.
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE users SET email = @Email, normalized_email = @NormalizedEmail, email_confirmed = @EmailConfirmed, display_name = @DisplayName,
                password_hash = @PasswordHash, security_stamp = @SecurityStamp, concurrency_stamp = @ConcurrencyStamp, lockout_enabled = @LockoutEnabled,
                password_change_required = @PasswordChangeRequired
            WHERE id = @Id AND concurrency_stamp = @Expected
            """,
            WithExpected(user, expected), cancellationToken: ct));
        if (updated == 1)
        {
            return IdentityResult.Success;
        }

        user.ConcurrencyStamp = expected;
        return IdentityResult.Failed(new IdentityError { Code = "ConcurrencyFailure", Description = "The account was changed concurrently; try again." });
    }

    private static DynamicParameters WithExpected(NexusUser user, string expected)
    {
        var parameters = new DynamicParameters(Parameters(user));
        parameters.Add("Expected", expected);
        return parameters;
    }

    public async Task<IdentityResult> DeleteAsync(NexusUser user, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("DELETE FROM users WHERE id = @Id", new { user.Id }, cancellationToken: ct));
        return IdentityResult.Success;
    }

    public Task<NexusUser?> FindByIdAsync(string userId, CancellationToken ct) => FindAsync("id = @value", userId, ct);

    public Task<NexusUser?> FindByNameAsync(string normalizedUserName, CancellationToken ct) => FindByEmailAsync(normalizedUserName, ct);

    public Task<NexusUser?> FindByEmailAsync(string normalizedEmail, CancellationToken ct) => FindAsync("normalized_email = @value", normalizedEmail, ct);

    private async Task<NexusUser?> FindAsync(string where, string value, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition($"SELECT {SelectColumns} FROM users WHERE {where}", new { value }, cancellationToken: ct));
        return row?.ToUser();
    }

    public async Task<IReadOnlyList<NexusUser>> ListAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        return (await connection.QueryAsync<Row>(new CommandDefinition($"SELECT {SelectColumns} FROM users ORDER BY created_at", cancellationToken: ct))).Select(r => r.ToUser()).ToList();
    }

    // The user name is the email: one identifier for people to remember.
    public Task<string> GetUserIdAsync(NexusUser user, CancellationToken ct) => Task.FromResult(user.Id);

    public Task<string?> GetUserNameAsync(NexusUser user, CancellationToken ct) => Task.FromResult<string?>(user.Email);

    public Task SetUserNameAsync(NexusUser user, string? userName, CancellationToken ct)
    {
        user.Email = userName ?? user.Email;
        return Task.CompletedTask;
    }

    public Task<string?> GetNormalizedUserNameAsync(NexusUser user, CancellationToken ct) => Task.FromResult<string?>(user.NormalizedEmail);

    public Task SetNormalizedUserNameAsync(NexusUser user, string? normalizedName, CancellationToken ct)
    {
        user.NormalizedEmail = normalizedName ?? user.NormalizedEmail;
        return Task.CompletedTask;
    }

    public Task SetPasswordHashAsync(NexusUser user, string? passwordHash, CancellationToken ct)
    {
        user.PasswordHash = passwordHash;
        return Task.CompletedTask;
    }

    public Task<string?> GetPasswordHashAsync(NexusUser user, CancellationToken ct) => Task.FromResult(user.PasswordHash);

    public Task<bool> HasPasswordAsync(NexusUser user, CancellationToken ct) => Task.FromResult(user.PasswordHash is not null);

    public Task SetEmailAsync(NexusUser user, string? email, CancellationToken ct)
    {
        user.Email = email ?? "";
        return Task.CompletedTask;
    }

    public Task<string?> GetEmailAsync(NexusUser user, CancellationToken ct) => Task.FromResult<string?>(user.Email);

    public Task<bool> GetEmailConfirmedAsync(NexusUser user, CancellationToken ct) => Task.FromResult(user.EmailConfirmed);

    public Task SetEmailConfirmedAsync(NexusUser user, bool confirmed, CancellationToken ct)
    {
        user.EmailConfirmed = confirmed;
        return Task.CompletedTask;
    }

    public Task<string?> GetNormalizedEmailAsync(NexusUser user, CancellationToken ct) => Task.FromResult<string?>(user.NormalizedEmail);

    public Task SetNormalizedEmailAsync(NexusUser user, string? normalizedEmail, CancellationToken ct)
    {
        user.NormalizedEmail = normalizedEmail ?? "";
        return Task.CompletedTask;
    }

    public Task<DateTimeOffset?> GetLockoutEndDateAsync(NexusUser user, CancellationToken ct) => Task.FromResult(user.LockoutEnd);

    // The lockout columns (lockout_end, access_failed_count) are written here, each in a statement of its own, and never
    // by UpdateAsync: an update made from an earlier read (a sign-out changing the security stamp, an upstream sign-in
    // confirming the address) would otherwise put back the count and lockout it read, undoing attempts counted since
    // (ReserveFailedPasswordAsync). For a user not stored yet (CreateAsync), the insert carries them.

    public async Task SetLockoutEndDateAsync(NexusUser user, DateTimeOffset? lockoutEnd, CancellationToken ct)
    {
        user.LockoutEnd = lockoutEnd;
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("UPDATE users SET lockout_end = @end WHERE id = @id",
            new { id = user.Id, end = lockoutEnd?.ToUnixTimeMilliseconds() }, cancellationToken: ct));
    }

    public async Task<int> IncrementAccessFailedCountAsync(NexusUser user, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var counted = await connection.ExecuteScalarAsync<int?>(new CommandDefinition(
            "UPDATE users SET access_failed_count = access_failed_count + 1 WHERE id = @id RETURNING access_failed_count", new { id = user.Id }, cancellationToken: ct));
        return user.AccessFailedCount = counted ?? user.AccessFailedCount + 1;
    }

    public async Task ResetAccessFailedCountAsync(NexusUser user, CancellationToken ct)
    {
        user.AccessFailedCount = 0;
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("UPDATE users SET access_failed_count = 0 WHERE id = @id", new { id = user.Id }, cancellationToken: ct));
    }

    public Task<int> GetAccessFailedCountAsync(NexusUser user, CancellationToken ct) => Task.FromResult(user.AccessFailedCount);

    public Task<bool> GetLockoutEnabledAsync(NexusUser user, CancellationToken ct) => Task.FromResult(user.LockoutEnabled);

    public Task SetLockoutEnabledAsync(NexusUser user, bool enabled, CancellationToken ct)
    {
        user.LockoutEnabled = enabled;
        return Task.CompletedTask;
    }

    public Task SetSecurityStampAsync(NexusUser user, string stamp, CancellationToken ct)
    {
        user.SecurityStamp = stamp;
        return Task.CompletedTask;
    }

    public Task<string?> GetSecurityStampAsync(NexusUser user, CancellationToken ct) => Task.FromResult<string?>(user.SecurityStamp);

    public async Task AddLoginAsync(NexusUser user, UserLoginInfo login, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO user_logins (provider, provider_key, user_id) VALUES (@LoginProvider, @ProviderKey, @Id) ON CONFLICT (provider, provider_key) DO NOTHING",
            new { login.LoginProvider, login.ProviderKey, user.Id }, cancellationToken: ct));
    }

    public async Task RemoveLoginAsync(NexusUser user, string loginProvider, string providerKey, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM user_logins WHERE provider = @loginProvider AND provider_key = @providerKey AND user_id = @Id",
            new { loginProvider, providerKey, user.Id }, cancellationToken: ct));
    }

    public async Task<IList<UserLoginInfo>> GetLoginsAsync(NexusUser user, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var rows = await connection.QueryAsync<(string Provider, string Key)>(new CommandDefinition(
            "SELECT provider, provider_key FROM user_logins WHERE user_id = @Id", new { user.Id }, cancellationToken: ct));
        return rows.Select(r => new UserLoginInfo(r.Provider, r.Key, r.Provider)).ToList();
    }

    public async Task<NexusUser?> FindByLoginAsync(string loginProvider, string providerKey, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var id = await connection.QuerySingleOrDefaultAsync<string>(new CommandDefinition(
            "SELECT user_id FROM user_logins WHERE provider = @loginProvider AND provider_key = @providerKey", new { loginProvider, providerKey }, cancellationToken: ct));
        return id is null ? null : await FindByIdAsync(id, ct);
    }

    public void Dispose()
    {
    }
}
