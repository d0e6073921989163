using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Identity;
using Nexus.Server.Hosting;

namespace Nexus.Server.Accounts;

/// <param name="PasswordChangeRequired">True: the password is temporary; its owner chooses their own at the first sign-in.</param>
internal sealed record CreateUserRequest(string? Email, string? Password, string? DisplayName, bool? PasswordChangeRequired = null);

/// <param name="State">active, locked_out (failed sign-ins; ends by itself) or disabled (by an administrator).</param>
internal sealed record UserResponse(string Id, string Email, string? DisplayName, bool IsSystemAdmin, bool LockedOut, DateTimeOffset CreatedAt, bool PasswordChangeRequired, string State)
{
    public static UserResponse From(NexusUser u, DateTimeOffset now) =>
        new(u.Id, u.Email, u.DisplayName, u.IsSystemAdmin, u.LockoutEnd > now, u.CreatedAt, u.PasswordChangeRequired, UserAdministration.Name(UserAdministration.StateOf(u, now)));
}

/// <summary>POST /v1/admin/users/{id}/reset-password: the account, and its temporary password, shown this once.</summary>
internal sealed record PasswordResetResponse(UserResponse User, string TemporaryPassword);

internal sealed record SettingsRequest(bool? SignUpEnabled);

/// <summary>The answer of GET and PATCH /v1/admin/settings.</summary>
internal sealed record SettingsResponse(bool SignUpEnabled);

/// <summary>GET /v1/admin/users: every account.</summary>
internal sealed record UserList(IEnumerable<UserResponse> Users);

/// <summary>What POST and DELETE /v1/admin/users/{id}/admin take: the user's id and the services that change the flag.</summary>
internal readonly record struct AdminFlagRequest(string Id, [property: FromServices] UserStore Store, [property: FromServices] Administrators Administrators, [property: FromServices] TimeProvider Time, CancellationToken Ct);

/// <summary>What disable, enable and reset-password take: the user's id and the services Site management › Users and the CLI use too.</summary>
internal readonly record struct UserChangeRequest(string Id, [property: FromServices] UserManager<NexusUser> Users, [property: FromServices] SessionValidator Sessions,
    [property: FromServices] IAccountGrants Grants, [property: FromServices] UserStore Store, [property: FromServices] TimeProvider Time, CancellationToken Ct);

/// <summary>/v1/admin/users and /v1/admin/settings.</summary>
internal static class UsersAdminEndpoints
{
    public static void MapUsersAdmin(this RouteGroupBuilder admin)
    {
        admin.MapPost("/v1/admin/users", CreateAsync).WithTags("Users");
        admin.MapGet("/v1/admin/users", ListAsync).WithTags("Users");
        // The bootstrap API_KEY makes (or unmakes) a system administrator; an email address never does.
        admin.MapPost("/v1/admin/users/{id}/admin", ([AsParameters] AdminFlagRequest request) => SetAdminAsync(request, true)).WithTags("Users");
        admin.MapDelete("/v1/admin/users/{id}/admin", ([AsParameters] AdminFlagRequest request) => SetAdminAsync(request, false)).WithTags("Users");
        // What Site management › Users and `users disable|enable` do (UserAdministration), for provisioning systems.
        admin.MapPost("/v1/admin/users/{id}/disable", ([AsParameters] UserChangeRequest request) => ChangeAsync(request, UserAdministration.Action.Disable)).WithTags("Users");
        admin.MapPost("/v1/admin/users/{id}/enable", ([AsParameters] UserChangeRequest request) => ChangeAsync(request, UserAdministration.Action.Enable)).WithTags("Users");
        admin.MapPost("/v1/admin/users/{id}/reset-password", ResetPasswordAsync).WithTags("Users");
        admin.MapGet("/v1/admin/settings", async (DeploymentSettings settings, CancellationToken ct) =>
            TypedResults.Ok(new SettingsResponse(await settings.IsSignUpEnabledAsync(ct)))).WithTags("Settings");
        admin.MapPatch("/v1/admin/settings", UpdateSettingsAsync).WithTags("Settings");
    }

    private static async Task<Results<Ok<SettingsResponse>, ProblemHttpResult>> UpdateSettingsAsync(HttpRequest request, DeploymentSettings settings, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<SettingsRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        if (body!.SignUpEnabled is { } enabled)
        {
            await settings.SetAsync(DeploymentSettings.SignUpEnabled, enabled ? "true" : "false", ct);
        }

        return TypedResults.Ok(new SettingsResponse(await settings.IsSignUpEnabledAsync(ct)));
    }

    private static async Task<Results<Ok<UserResponse>, ProblemHttpResult>> SetAdminAsync(AdminFlagRequest request, bool admin)
    {
        var (id, store, administrators, time, ct) = request;
        if (id.Length > 64 || !await administrators.SetAsync(id, admin, "the admin API", ct) || await store.FindByIdAsync(id, ct) is not { } user)
        {
            return Problems.TypedNotFound("User");
        }

        return TypedResults.Ok(ToResponse(user, time));
    }

    private static async Task<Results<Ok<UserResponse>, ProblemHttpResult>> ChangeAsync(UserChangeRequest request, UserAdministration.Action action)
    {
        var (id, users, sessions, grants, store, time, ct) = request;
        if (!await UserAdministration.ApplyAsync(store, sessions, grants, id, action) || await store.FindByIdAsync(id, ct) is not { } user)
        {
            return Problems.TypedNotFound("User");
        }

        return TypedResults.Ok(ToResponse(user, time));
    }

    private static async Task<Results<Ok<PasswordResetResponse>, ProblemHttpResult>> ResetPasswordAsync(HttpContext context, [AsParameters] UserChangeRequest request)
    {
        var (id, users, sessions, grants, store, time, ct) = request;
        var (reset, temporary) = await UserAdministration.ResetPasswordAsync(users, sessions, grants, id, time.GetUtcNow());
        if (reset is null || await store.FindByIdAsync(id, ct) is not { } user)
        {
            return Problems.TypedNotFound("User");
        }

        if (temporary is null)
        {
            // The account exists, but storing the temporary password failed (Identity's concurrency check: the account
            // was changed at the same moment). Not a 404: the administrator resets it again.
            return Problems.Typed(ProblemCatalog.PasswordResetFailed);
        }

        // The temporary password is in this answer only (Nexus keeps its hash): no cache may keep a copy.
        context.Response.Headers.CacheControl = "no-store";
        return TypedResults.Ok(new PasswordResetResponse(ToResponse(user, time), temporary));
    }

    private static async Task<Results<Created<UserResponse>, ProblemHttpResult>> CreateAsync(HttpRequest request, UserManager<NexusUser> users, TimeProvider time, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<CreateUserRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var (user, exists, errors) = await UserAdministration.CreateAsync(users, body!.Email, body.Password, body.DisplayName, temporary: body.PasswordChangeRequired == true);
        if (user is null)
        {
            return exists
                ? Problems.Typed(ProblemCatalog.UserExists)
                : Problems.TypedValidation(errors);
        }

        return TypedResults.Created($"/v1/admin/users/{user.Id}", ToResponse(user, time));
    }

    private static async Task<Ok<UserList>> ListAsync(UserStore store, TimeProvider time, CancellationToken ct) =>
        TypedResults.Ok(new UserList((await store.ListAsync(ct)).Select(u => ToResponse(u, time))));

    private static UserResponse ToResponse(NexusUser u, TimeProvider time) => UserResponse.From(u, time.GetUtcNow());
}
