using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.Connections;

/// <summary>
/// /connect/values: the Nexus page a person sees before the provider's consent when the connection still lacks a
/// value only they know (their Shopify shop, their Zendesk subdomain), issue 17. The app's auth_url (and the
/// dashboard's connect button) lead here; the signed state of the pending connection is the link's only authority.
/// The entry is checked like connection_config at POST /v1/request-connection, stored with the connection, and the
/// browser goes on to the provider's consent page for that tenant.
/// </summary>
internal static class ConnectionValuesPage
{
    public const string FormPath = "/connect/values";

    public static void MapConnectionValuesPage(this IEndpointRouteBuilder app)
    {
        app.MapGet("/connect/values", FormAsync).ExcludeFromDescription();
        app.MapPost("/connect/values", SubmitAsync).ExcludeFromDescription().RequireProtectedForm();
    }

    public static string AuthUrl(NexusOptions options, string state) => $"{options.Issuer}{FormPath}?state={Uri.EscapeDataString(state)}";

    private static Task<(Connection? Connection, Provider? Provider, string? Error)> ResolveAsync(string? state, StateSigner signer, ConnectionStore store,
        ProviderRegistry providers, TimeProvider time, CancellationToken ct) =>
        ConnectionLinks.ResolveAsync(state, signer, store, providers, time, acceptReconnect: true, ct);

    private static async Task<IResult> FormAsync(HttpContext context, string? state, StateSigner signer, ConnectionStore store, ProviderRegistry providers,
        ConnectionService connections, TimeProvider time, PersonalConsent personal)
    {
        var (connection, provider, error) = await ResolveAsync(state, signer, store, providers, time, context.RequestAborted);
        if (connection is null)
        {
            return Error(context, "Cannot connect", error!);
        }

        if (await personal.GatePageAsync(context, connection, context.RequestAborted) is { } refused)
        {
            return refused;
        }

        // Nothing left to ask (a second tab, or values given meanwhile): straight on to the consent.
        return Missing(provider!, connection).Count == 0 ? Results.Redirect(connections.ConsentUrl(provider!, connection, state!)) : Form(context, state!, provider!, connection, null);
    }

    private static List<KeyValuePair<string, CatalogPlaceholder>> Missing(Provider provider, Connection connection) =>
        ConnectionValues.AskedBeforeConsent(provider).Where(d => !connection.Values.ContainsKey(d.Key)).ToList();

    private static IResult Form(HttpContext context, string state, Provider provider, Connection connection, Dictionary<string, string[]>? errors, int status = 200)
    {
        context.Response.Headers["Referrer-Policy"] = "no-referrer";
        context.Response.Headers.CacheControl = "no-store";
        var inputs = string.Concat(Missing(provider, connection).Select(d =>
        {
            var name = d.Key;
            var error = errors is not null && errors.TryGetValue("values." + name, out var messages) ? $"<p class=\"error\" id=\"{E(name)}-error\">{E(string.Join(" ", messages))}</p>" : "";
            return $"""
                <label for="{E(name)}">{E(name)}</label>
                <input id="{E(name)}" name="{E(name)}" type="text" autocomplete="off" spellcheck="false" required aria-describedby="{E(name)}-help{(error.Length > 0 ? $" {E(name)}-error" : "")}">
                <p class="muted" id="{E(name)}-help">{E(d.Value.Description)}</p>{error}
                """;
        }));
        var alert = errors is { Count: > 0 } ? "<p class=\"error\" role=\"alert\">Check the highlighted fields.</p>" : "";
        return Page(context, "Connect " + provider.DisplayName, $"""
            <section class="card narrow"><h1>Connect {E(provider.DisplayName)}</h1>
            <p>{E(provider.DisplayName)} needs to know which account to connect before it asks for your consent.</p>{alert}
            <form method="post" action="{FormPath}">{AntiforgeryField(context)}<input type="hidden" name="state" value="{E(state)}">{inputs}
            <div class="actions"><button type="submit">Continue</button></div></form></section>
            """, status);
    }

    private static async Task<IResult> SubmitAsync(HttpContext context, StateSigner signer, ConnectionStore store, ProviderRegistry providers, ConnectionService connections,
        TimeProvider time, PersonalConsent personal)
    {
        var ct = context.RequestAborted;
        var form = ProtectedForm.Of(context);

        var state = form["state"].ToString();
        var (connection, provider, error) = await ResolveAsync(state, signer, store, providers, time, ct);
        if (connection is null)
        {
            return Error(context, "Cannot connect", error!);
        }

        if (await personal.GatePageAsync(context, connection, ct) is { } refused)
        {
            return refused;
        }

        // Only the values still missing are read: one given by the app is not the person's to change.
        var given = Missing(provider!, connection).ToDictionary(d => d.Key, d => form[d.Key].Count == 1 ? form[d.Key][0]?.Trim() : null);
        var all = new Dictionary<string, string?>(connection.Values.ToDictionary(v => v.Key, v => (string?)v.Value));
        foreach (var (name, value) in given)
        {
            all[name] = value;
        }

        var (values, errors) = connections.CheckValues(provider!, all, "values");
        if (values is null)
        {
            return Form(context, state, provider!, connection, errors, 400);
        }

        await store.SetValuesAsync(connection.Id, values, ct);
        return Results.Redirect(connections.ConsentUrl(provider!, connection with { ConnectionConfig = ConnectionValues.Serialize(values) }, state));
    }
}
