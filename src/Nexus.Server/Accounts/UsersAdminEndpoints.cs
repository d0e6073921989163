using Microsoft.AspNetCore.Identity;
using Nexus.Server.Hosting;

namespace Nexus.Server.Accounts;

internal sealed record CreateUserRequest(string? Email, string? Password, string? DisplayName);

internal sealed record UserResponse(string Id, string Email, string? DisplayName, bool IsSystemAdmin, bool LockedOut, DateTimeOffset CreatedAt);

internal sealed record SettingsRequest(bool? SignUpEnabled);

/// <summary>/v1/admin/users and /v1/admin/settings.</summary>
internal static class UsersAdminEndpoints
{
    public static void MapUsersAdmin(this RouteGroupBuilder admin)
    {
        admin.MapPost("/users", CreateAsync).WithTags("Users");
        admin.MapGet("/users", ListAsync).WithTags("Users");
        // The bootstrap API_KEY makes (or unmakes) a system administrator; an email address never does.
        admin.MapPost("/users/{id}/admin", (string id, UserStore store, Administrators administrators, TimeProvider time, CancellationToken ct) =>
            SetAdminAsync(id, true, store, administrators, time, ct)).WithTags("Users");
        admin.MapDelete("/users/{id}/admin", (string id, UserStore store, Administrators administrators, TimeProvider time, CancellationToken ct) =>
            SetAdminAsync(id, false, store, administrators, time, ct)).WithTags("Users");
        admin.MapGet("/settings", async (DeploymentSettings settings, CancellationToken ct) =>
            TypedResults.Ok(new { sign_up_enabled = await settings.IsSignUpEnabledAsync(ct) })).WithTags("Settings");
        admin.MapPatch("/settings", async (HttpRequest request, DeploymentSettings settings, CancellationToken ct) =>
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

            return TypedResults.Ok(new { sign_up_enabled = await settings.IsSignUpEnabledAsync(ct) });
        }).WithTags("Settings");
    }

    private static async Task<IResult> SetAdminAsync(string id, bool admin, UserStore store, Administrators administrators, TimeProvider time, CancellationToken ct)
    {
        if (id.Length > 64 || !await administrators.SetAsync(id, admin, "the admin API", ct) || await store.FindByIdAsync(id, ct) is not { } user)
        {
            return Problems.NotFound("User");
        }

        return TypedResults.Ok(ToResponse(user, time));
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, UserManager<NexusUser> users, TimeProvider time, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<CreateUserRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        if (string.IsNullOrEmpty(body!.Password))
        {
            return Problems.Validation(new Dictionary<string, string[]> { ["password"] = ["A password of at least 10 characters is required."] });
        }

        // An administrator vouches for the address, so it counts as verified.
        var (user, errors) = await UserAccounts.CreateAsync(users, body.Email ?? "", body.Password, emailConfirmed: true);
        if (user is null)
        {
            return errors.Any(e => e.Contains("already", StringComparison.OrdinalIgnoreCase))
                ? Problems.Create(StatusCodes.Status409Conflict, "user_exists", "An account with this email already exists.")
                : Problems.Validation(new Dictionary<string, string[]> { ["user"] = errors.ToArray() });
        }

        if (!string.IsNullOrWhiteSpace(body.DisplayName))
        {
            user.DisplayName = body.DisplayName.Trim();
            await users.UpdateAsync(user);
        }

        return TypedResults.Created($"/v1/admin/users/{user.Id}", ToResponse(user, time));
    }

    private static async Task<IResult> ListAsync(UserStore store, TimeProvider time, CancellationToken ct) =>
        TypedResults.Ok(new { users = (await store.ListAsync(ct)).Select(u => ToResponse(u, time)) });

    private static UserResponse ToResponse(NexusUser u, TimeProvider time) => new(u.Id, u.Email, u.DisplayName, u.IsSystemAdmin, u.LockoutEnd > time.GetUtcNow(), u.CreatedAt);
}
