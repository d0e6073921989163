using System.Security.Cryptography;
using Microsoft.AspNetCore.Identity;
using Nexus.Server.Hosting;
using Nexus.Server.Hosting.Commands;

namespace Nexus.Server.Accounts;

/// <summary>
/// The account commands: <c>users create|list|disable|enable|promote|demote</c>. They call what POST /v1/admin/users and
/// Site management › Users call (<see cref="UserAdministration"/>, <see cref="Administrators"/>).
/// </summary>
internal static class AccountsCommands
{
    private const string UserArgument = "USER (an email address or a usr_… id)";

    public static IServiceCollection AddAccountsCommands(this IServiceCollection services) => services
        .AddNexusCommand("users create", "create an account (its address counts as verified)", """
            Usage: Nexus.Server users create --email EMAIL [--display-name NAME] [--password-stdin | --password PASSWORD] [--temporary] [--admin] [--json]
              Creates an account, as POST /v1/admin/users does. The password (10 characters or more) is read from the
              first line of standard input with --password-stdin; --password shows it to other users of this machine
              (ps). Without either, a random temporary password is generated and shown once; the account's owner
              chooses their own password at the first sign-in.
              --temporary  the given password is temporary too: its owner chooses their own at the first sign-in
              --admin  also make the account a system administrator
              --json   the API's user object, with "temporary_password" when one was generated
            """, CreateAsync, options: ["email", "display-name", "password"], flags: ["password-stdin", "temporary", "admin"])
        .AddNexusCommand("users list", "list the accounts", """
            Usage: Nexus.Server users list [--json]
              Lists every account, as GET /v1/admin/users does.
              --json   {"users":[{"id","email","display_name","is_system_admin","locked_out","created_at","password_change_required","state"}]}
            """, ListAsync)
        .AddNexusCommand("users disable", "disable an account, end its sessions and revoke its applications' tokens", """
            Usage: Nexus.Server users disable USER [--json]
              Disables the account (an email address or a usr_… id) as Site management › Users does: no sign-in works
              any more, its sessions end on every device and every OAuth grant it gave is revoked (the refresh and
              access tokens of its applications and assistants stop working). `users enable USER` lets it sign in
              again; the revoked tokens stay revoked.
              --json   the API's user object
            """, (c, ct) => ChangeAsync(c, UserAdministration.Action.Disable, ct), arguments: 1)
        .AddNexusCommand("users enable", "enable a disabled (or locked-out) account", """
            Usage: Nexus.Server users enable USER [--json]
              Lifts a disable or a sign-in lockout of the account (an email address or a usr_… id).
              --json   the API's user object
            """, (c, ct) => ChangeAsync(c, UserAdministration.Action.Enable, ct), arguments: 1)
        .AddNexusCommand("users promote", "make an account a system administrator", """
            Usage: Nexus.Server users promote EMAIL [--json]
              Makes the account with this email (or usr_… id) a system administrator (Site management in the dashboard).
              --json   the API's user object
            """, (c, ct) => SetAdministratorAsync(c, true, ct), arguments: 1)
        .AddNexusCommand("users demote", "withdraw the system administrator role", """
            Usage: Nexus.Server users demote EMAIL [--json]
              Withdraws the system administrator role from the account with this email (or usr_… id).
              --json   the API's user object
            """, (c, ct) => SetAdministratorAsync(c, false, ct), arguments: 1);

    private static async Task<int> CreateAsync(CommandContext context, CancellationToken ct)
    {
        var email = context.Args.Required("email");
        string? generated = null;
        var password = context.Args.Option("password");
        if (context.Args.Flag("password-stdin"))
        {
            if (password is not null)
            {
                throw new CommandUsageException("Give the password either with --password-stdin or with --password, not both.");
            }

            password = (await Console.In.ReadLineAsync(ct))?.TrimEnd('\r') ?? "";
        }
        else if (password is null)
        {
            generated = password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(15)).Replace('+', '-').Replace('/', '_');
        }

        var users = context.Get<UserManager<NexusUser>>();
        var (user, exists, errors) = await UserAdministration.CreateAsync(users, email, password, context.Args.Option("display-name"),
            temporary: generated is not null || context.Args.Flag("temporary"));
        if (user is null)
        {
            throw exists ? new CommandFailedException("An account with this email already exists.", ProblemCatalog.UserExists) : CommandContext.Invalid(errors);
        }

        if (context.Args.Flag("admin"))
        {
            await context.Get<Administrators>().SetAsync(user.Id, true, "the command line", ct);
            user = await context.Get<UserStore>().FindByIdAsync(user.Id, ct) ?? user;
        }

        var response = UserResponse.From(user, context.Get<TimeProvider>().GetUtcNow());
        var text = $"Created {user.Email} ({user.Id}){(user.IsSystemAdmin ? ", a system administrator" : "")}."
            + (generated is null ? "" : $"\nTemporary password (shown once): {generated}");
        return await context.ResultAsync(generated is null ? response : context.With(response, new { temporary_password = generated }), text);
    }

    private static async Task<int> ListAsync(CommandContext context, CancellationToken ct)
    {
        var now = context.Get<TimeProvider>().GetUtcNow();
        var all = await context.Get<UserStore>().ListAsync(ct);
        var users = all.Select(u => UserResponse.From(u, now)).ToList();
        return await context.ListAsync(new { users }, users, "No accounts yet.",
            ("ID", u => u.Id), ("EMAIL", u => u.Email), ("NAME", u => u.DisplayName), ("ADMIN", u => u.IsSystemAdmin ? "yes" : ""),
            ("STATE", u => u.State), ("CREATED", u => u.CreatedAt.ToString("u")));
    }

    private static async Task<int> ChangeAsync(CommandContext context, UserAdministration.Action action, CancellationToken ct)
    {
        var user = await FindAsync(context, ct);
        await UserAdministration.ApplyAsync(context.Get<UserStore>(), context.Get<SessionValidator>(), context.Get<IAccountGrants>(), user.Id, action);
        user = (await context.Get<UserStore>().FindByIdAsync(user.Id, ct))!;
        var now = context.Get<TimeProvider>().GetUtcNow();
        return await context.ResultAsync(UserResponse.From(user, now), $"{user.Email} is {UserAdministration.Name(UserAdministration.StateOf(user, now)).Replace('_', ' ')}.");
    }

    private static async Task<int> SetAdministratorAsync(CommandContext context, bool admin, CancellationToken ct)
    {
        var user = await FindAsync(context, ct);
        await context.Get<Administrators>().SetAsync(user.Id, admin, "the command line", ct);
        user = (await context.Get<UserStore>().FindByIdAsync(user.Id, ct))!;
        return await context.ResultAsync(UserResponse.From(user, context.Get<TimeProvider>().GetUtcNow()),
            admin ? $"{user.Email} is a system administrator." : $"{user.Email} is no longer a system administrator.");
    }

    private static async Task<NexusUser> FindAsync(CommandContext context, CancellationToken ct)
    {
        var key = context.Args.Argument(0, UserArgument);
        var users = context.Get<UserManager<NexusUser>>();
        var user = key.Contains('@', StringComparison.Ordinal) ? await users.FindByEmailAsync(key) : key.Length <= 64 ? await users.FindByIdAsync(key) : null;
        return user ?? throw new CommandFailedException($"No account has the email or id '{key}'. Create it first (users create, sign up, or POST /v1/admin/users).", ProblemCatalog.NotFound);
    }
}
