using System.Net;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Accounts;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.Accounts;

/// <summary>
/// Issue 13 item 1: sign-up and the user administration know a taken address by ASP.NET Identity's error code
/// (DuplicateEmail, DuplicateUserName), surfaced by <see cref="UserAccounts.CreateAsync"/>, not by the word
/// "already" in a message that a deployment's <see cref="IdentityErrorDescriber"/> may reword or translate.
/// </summary>
public sealed class TakenAddressTests
{
    /// <summary>Identity's messages in other words (here German), as a localised deployment would have them.</summary>
    private sealed class RewordedErrors : IdentityErrorDescriber
    {
        public override IdentityError DuplicateEmail(string email) => new() { Code = nameof(DuplicateEmail), Description = $"Die Adresse {email} ist vergeben." };

        public override IdentityError DuplicateUserName(string userName) => new() { Code = nameof(DuplicateUserName), Description = $"Der Name {userName} ist vergeben." };
    }

    [Fact]
    public async Task ATakenAddressIsKnownByIdentitysErrorCodeWhateverItsMessageSays()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:FailedSignInLimit"] = "2",
            services: s => s.AddScoped<IdentityErrorDescriber, RewordedErrors>());
        var taken = new[] { NewEmail(), NewEmail(), NewEmail() };
        foreach (var email in taken)
        {
            await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        }

        // The admin API answers 409 user_exists, not a 400 with the reworded message.
        var again = await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email = taken[0], password = Password }, HttpStatusCode.Conflict);
        Assert.Equal("user_exists", again.GetProperty("code").GetString());

        // Sign-up shows the describer's words, and each taken address counts against the address that probes.
        using var probe = new Browser(server);
        for (var i = 0; i < 2; i++)
        {
            await probe.NavigateAsync("/account/signup");
            await probe.SubmitAsync("/account/signup", new Dictionary<string, string> { ["email"] = taken[i], ["password"] = Password });
            Assert.Equal(HttpStatusCode.BadRequest, probe.LastStatus);
            Assert.Contains("ist vergeben", probe.LastPage);
        }

        await probe.NavigateAsync("/account/signup");
        await probe.SubmitAsync("/account/signup", new Dictionary<string, string> { ["email"] = taken[2], ["password"] = Password });
        Assert.Equal(HttpStatusCode.TooManyRequests, probe.LastStatus);
    }

    [Fact]
    public async Task CreatingAnAccountSaysWhetherTheAddressIsTakenAndNothingElseCountsAsTaken()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        using var scope = server.Services.CreateScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<NexusUser>>();
        var email = NewEmail();
        var first = await UserAccounts.CreateAsync(users, email, Password);
        Assert.NotNull(first.User);
        Assert.False(first.EmailTaken);

        var second = await UserAccounts.CreateAsync(users, email, Password);
        Assert.Null(second.User);
        Assert.True(second.EmailTaken);

        // A weak password for a new address is an error, not a taken address.
        var weak = await UserAccounts.CreateAsync(users, NewEmail(), "short");
        Assert.Null(weak.User);
        Assert.False(weak.EmailTaken);
        Assert.NotEmpty(weak.Errors);
    }
}
