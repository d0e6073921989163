namespace Nexus.Server.AuthorizationServer.Signing;

internal sealed record SigningKeyResponse(string Kid, string Alg, string Status, DateTimeOffset CreatedAt, DateTimeOffset? RetiredAt, DateTimeOffset? ExpiresAt)
{
    public static SigningKeyResponse From(SigningKey k) => new(k.Kid, k.Alg, k.RetiredAt is null ? "active" : "retired", k.CreatedAt, k.RetiredAt, k.ExpiresAt);
}

/// <summary>/v1/admin/signing-keys: list published keys and rotate them.</summary>
/// <summary>The published signing keys (GET /v1/admin/signing-keys), or the keys a rotation created.</summary>
internal sealed record SigningKeyList(IEnumerable<SigningKeyResponse> Keys);

internal static class SigningKeysAdminEndpoints
{
    public static void MapSigningKeysAdmin(this RouteGroupBuilder admin)
    {
        var keys = admin.MapGroup("").WithTags("Signing keys");
        keys.MapGet("/v1/admin/signing-keys", (SigningKeys signingKeys) =>
            TypedResults.Ok(new SigningKeyList(signingKeys.Published.OrderBy(k => k.CreatedAt).Select(SigningKeyResponse.From))));
        keys.MapPost("/v1/admin/signing-keys/rotate", async (SigningKeyStore store, SigningKeys signingKeys, CancellationToken ct) =>
        {
            var created = await store.RotateAsync(ct);
            await signingKeys.ReloadAsync(ct);
            return TypedResults.Ok(new SigningKeyList(created.Select(SigningKeyResponse.From)));
        });
    }
}
