using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.Dashboard;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

var builder = WebApplication.CreateBuilder(args);

builder.AddHosting();
builder.AddData();
builder.AddVault();
builder.AddAccounts();
builder.AddAuthorizationServer();

var app = builder.Build();

app.MapHosting();
app.MapAccounts();
app.MapAuthorizationServer();
app.MapDashboard();

return await app.RunNexusAsync(args);
