using Nexus.Server.Accounts;
using Nexus.Server.ApiKeys;
using Nexus.Server.ApiReference;
using Nexus.Server.Audit;
using Nexus.Server.Bridge;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.Connections;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Credentials;
using Nexus.Server.Dashboard;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Hosting.Commands;
using Nexus.Server.Mcp;
using Nexus.Server.Notifications;
using Nexus.Server.Observability;
using Nexus.Server.Providers;
using Nexus.Server.RemoteMcp;
using Nexus.Server.Vault;

// The container's HEALTHCHECK: a fast path that reads no configuration and builds no host.
if (await HealthCheckCommand.TryRunAsync(args) is { } healthExitCode)
{
    return healthExitCode;
}

// The host reads only its own options (--urls, --environment, configuration keys); the rest belongs to the command.
var builder = WebApplication.CreateBuilder(NexusEnvironment.Options(CommandArguments.ForHost(args)));

builder.AddHosting();
builder.AddObservability();
builder.AddData();
builder.AddVault();
builder.AddAccounts();
builder.AddAuthorizationServer();
builder.AddProviders();
builder.AddApiKeys();
builder.AddAudit();
builder.AddCredentials();
builder.AddConnections();
builder.AddConnectionRefresh();
builder.AddNotifications();
builder.AddBridge();
builder.AddRemoteMcp();
builder.AddDashboard();
builder.AddMcpServer();
builder.AddApiReference();

var app = builder.Build();
// --help and bad command lines are answered before the configuration is read or the database touched.
if (NexusCommandLine.TryHelp(app.Services, args, Console.Out, Console.Error) is { } helpExitCode)
{
    return helpExitCode;
}

if (NexusCommandLine.CheckConfiguration(app) is { } configurationExitCode)
{
    return configurationExitCode;
}

app.MapHosting();
app.MapObservability();
app.MapAccounts();
app.MapAuthorizationServer();
app.MapProviders();
app.MapApiKeys();
app.MapAudit();
app.MapConnections();
app.MapConnectionRefresh();
app.MapNotifications();
app.MapBridge();
app.MapRemoteMcp();
app.MapDashboard();
app.MapMcpServer();
app.MapApiReference();

return await app.RunNexusAsync(args);
