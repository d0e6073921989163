using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using Nexus.Server.Hosting;

namespace Nexus.Server.Accounts;

internal static class AccountsExtensions
{
    public static WebApplicationBuilder AddAccounts(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddAuthentication(IdentityConstants.ApplicationScheme)
            .AddIdentityCookies(cookies => cookies.ApplicationCookie!.Configure(o =>
            {
                o.Cookie.Name = "nexus.session";
                o.Cookie.HttpOnly = true;
                // Secure whenever the request came over https; SameSite=Lax keeps the session on top-level
                // redirects back from an OAuth client while blocking cross-site form posts.
                o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
                o.Cookie.SameSite = SameSiteMode.Lax;
                o.LoginPath = AccountEndpoints.SignInPath;
                o.LogoutPath = "/account/signout";
                o.ExpireTimeSpan = TimeSpan.FromHours(12);
                o.SlidingExpiration = true;
                // Every request checks the cookie against the account (sign-out ends it) and reads the role from it.
                o.Events.OnValidatePrincipal = context => context.HttpContext.RequestServices.GetRequiredService<SessionValidator>().ValidateAsync(context);
                // auth_time and max_age (OIDC Core §2, §3.1.2.1) need when the person signed in, which renewals keep.
                o.Events.OnSigningIn = SignInTime.StampAsync;
            }));
        services.AddAuthorization();
        SessionPolicies.Add(services);
        services.AddIdentityCore<NexusUser>(o =>
            {
                // NIST SP 800-63B: length over composition rules.
                o.Password.RequiredLength = 10;
                o.Password.RequireDigit = false;
                o.Password.RequireLowercase = false;
                o.Password.RequireUppercase = false;
                o.Password.RequireNonAlphanumeric = false;
                o.Lockout.MaxFailedAccessAttempts = 5;
                o.Lockout.DefaultLockoutTimeSpan = TimeSpan.FromMinutes(15);
                o.Lockout.AllowedForNewUsers = true;
                o.User.RequireUniqueEmail = true;
                o.User.AllowedUserNameCharacters = null!;
            })
            .AddUserStore<UserStore>()
            .AddSignInManager()
            .AddDefaultTokenProviders();
        services.AddAntiforgery(o =>
        {
            o.Cookie.Name = "nexus.csrf";
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.FormFieldName = ProtectedForm.FieldName;
        });
        services.AddScoped<UserStore>();
        services.AddScoped<PasswordSignIn>();
        services.AddScoped<PasswordChange>();
        services.AddScoped<AccountSignOut>();
        services.AddSingleton<SignInLimiter>();
        services.AddSingleton<SessionValidator>();
        services.AddSingleton<Administrators>();
        // After the vault exists; creates the secret-hashing key itself if it runs first.
        services.AddSingleton<IStartupStep, SetupTokenStartup>();
        services.AddSingleton<DeploymentSettings>();
        services.AddSingleton(DataProtectionKeyRepository.Column);
        services.AddSingleton<DataProtectionKeyRepository>();
        services.AddDataProtection().SetApplicationName("nexus");
        // DataProtectionKeyRepository encrypts every key with the key ring before storing it, which Data Protection
        // cannot see, so its "no XML encryptor configured" warning would be a false alarm at every start.
        builder.Logging.AddFilter("Microsoft.AspNetCore.DataProtection.KeyManagement.XmlKeyManager", LogLevel.Error);
        services.AddSingleton<IConfigureOptions<KeyManagementOptions>>(sp => new ConfigureOptions<KeyManagementOptions>(o =>
            o.XmlRepository = sp.GetRequiredService<DataProtectionKeyRepository>()));
        services.AddSingleton<UpstreamSignIn>();
        // Discovery, JWKS and the token answer are small: a megabyte is far beyond any, and a larger answer is refused
        // (HttpRequestException) instead of being buffered whole.
        services.AddHttpClient(UpstreamSignIn.HttpClientName, c =>
        {
            c.Timeout = TimeSpan.FromSeconds(10);
            c.MaxResponseContentBufferSize = 1024 * 1024;
        });
        services.AddAccountsCommands();
        // The page header's link to site management, for site administrators only.
        services.AddSingleton(new NavigationLink(90, "/admin", "⚙ Site management", Class: "gear", Label: "Site management", ShownTo: SystemAdmin.IsSystemAdmin));
        return builder;
    }

    public static WebApplication MapAccounts(this WebApplication app)
    {
        app.UseSessionAuthentication();
        app.MapAccountPages();
        app.MapUpstreamSignIn();
        app.MapSetup();
        var admin = app.MapAdminGroup();
        admin.MapUsersAdmin();
        return app;
    }
}
