namespace Nexus.Server.Accounts;

/// <summary>A Nexus account. Property names match what ASP.NET Core Identity's managers read and write.</summary>
internal sealed class NexusUser
{
    public string Id { get; set; } = "";
    public string Email { get; set; } = "";
    public string NormalizedEmail { get; set; } = "";
    public bool EmailConfirmed { get; set; }
    public string? DisplayName { get; set; }
    public string? PasswordHash { get; set; }
    public string SecurityStamp { get; set; } = "";
    public string ConcurrencyStamp { get; set; } = Guid.NewGuid().ToString("N");
    public bool LockoutEnabled { get; set; } = true;
    public DateTimeOffset? LockoutEnd { get; set; }
    public int AccessFailedCount { get; set; }
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>
    /// The password was chosen by someone else (an administrator's reset, a generated temporary one): the account's
    /// sessions reach only the page that changes it (<see cref="PasswordChange"/>) until its owner does.
    /// </summary>
    public bool PasswordChangeRequired { get; set; }

    /// <summary>Read from the row; changed only through <see cref="Administrators"/>.</summary>
    public bool IsSystemAdmin { get; set; }
}
