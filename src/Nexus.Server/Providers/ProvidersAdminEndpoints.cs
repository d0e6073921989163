using Microsoft.AspNetCore.Http.HttpResults;
using Nexus.Server.Hosting;

namespace Nexus.Server.Providers;

/// <summary>/v1/providers (admin API key): register the OAuth apps Nexus connects users through.</summary>
/// <summary>GET /v1/providers: every registered provider (never a client secret).</summary>
internal sealed record ProviderList(IEnumerable<ProviderResponse> Providers);

internal static class ProvidersAdminEndpoints
{
    public static void MapProvidersAdmin(this IEndpointRouteBuilder app)
    {
        var group = app.MapAdminGroup().WithTags("Providers");
        group.MapPost("/v1/providers", CreateAsync);
        group.MapGet("/v1/providers", ListAsync);
        group.MapGet("/v1/providers/{name}", GetAsync);
        group.MapPatch("/v1/providers/{name}", UpdateAsync);
        group.MapDelete("/v1/providers/{name}", DeleteAsync);
    }

    private static async Task<Results<Created<ProviderResponse>, ProblemHttpResult>> CreateAsync(HttpRequest request, ProviderRegistration registration, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<ProviderRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var (provider, failure, _) = await registration.RegisterAsync(body!, ct);
        return failure is not null ? failure : TypedResults.Created($"/v1/providers/{provider!.Name}", ProviderResponse.From(provider));
    }

    private static async Task<Ok<ProviderList>> ListAsync(ProviderRegistry registry, CancellationToken ct) =>
        TypedResults.Ok(new ProviderList((await registry.ListAsync(ct)).Select(ProviderResponse.From)));

    private static async Task<Results<Ok<ProviderResponse>, ProblemHttpResult>> GetAsync(string name, ProviderRegistry registry, CancellationToken ct) =>
        await registry.FindAsync(name, ct) is { } provider ? TypedResults.Ok(ProviderResponse.From(provider)) : Problems.TypedNotFound("Provider");

    private static async Task<Results<Ok<ProviderResponse>, ProblemHttpResult>> UpdateAsync(string name, HttpRequest request, ProviderRegistration registration, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<ProviderRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var (updated, failure, _) = await registration.UpdateAsync(name, body!, ct);
        return failure is not null ? failure : TypedResults.Ok(ProviderResponse.From(updated!));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(string name, ProviderRegistry registry, CancellationToken ct) =>
        await registry.DeleteAsync(name, ct) switch
        {
            null => Problems.TypedNotFound("Provider"),
            false => Problems.Typed(ProblemCatalog.ProviderInUse,
                "Delete its connections first (DELETE /v1/connections/{id}); that also revokes their tokens at the provider."),
            true => TypedResults.NoContent(),
        };
}
