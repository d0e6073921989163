using Nexus.Server.ApiKeys;
using Nexus.Server.Audit;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.Connections;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.Vault;

var builder = WebApplication.CreateBuilder(args);

builder.AddHosting();
builder.AddData();
builder.AddVault();
builder.AddAuthorizationServer();
builder.AddProviders();
builder.AddApiKeys();
builder.AddAudit();
builder.AddConnections();

var app = builder.Build();

app.MapHosting();
app.MapAuthorizationServer();
app.MapProviders();
app.MapApiKeys();
app.MapAudit();
app.MapConnections();

return await app.RunNexusAsync(args);
