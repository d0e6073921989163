using System.Collections.Frozen;
using Microsoft.Extensions.Compliance.Classification;
using Microsoft.Extensions.Compliance.Redaction;

namespace Nexus.Server.Hosting;

/// <summary>
/// Nexus's data classification (Microsoft.Extensions.Compliance): what is a secret. A structured log value whose name
/// says it holds a secret (<c>{ClientSecret}</c>, <c>{AccessToken}</c>, …) is replaced by the classification's redactor
/// in every log line, whatever it holds, so a log call cannot leak one by mistake; <see cref="LogRedaction"/> covers
/// the secrets that travel inside URLs and form bodies.
/// </summary>
internal static class NexusTaxonomy
{
    public const string Name = "Nexus";

    /// <summary>Tokens, codes, state, client secrets, keys, passwords: never logged, never exported.</summary>
    public static DataClassification Secret { get; } = new(Name, nameof(Secret));

    private static readonly FrozenSet<string> SecretNames = new[]
    {
        "AccessToken", "RefreshToken", "IdToken", "Token", "AuthorizationCode", "CodeVerifier", "State", "ClientSecret", "Secret",
        "Password", "ApiKey", "Key", "EncryptionKey", "SigningKey", "PrivateKey", "Assertion", "ClientAssertion", "SessionToken",
        "SecretAccessKey", "Signature", "Credential", "Credentials", "Authorization", "Cookie",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>The classification of a structured log value by its name, or null when the name says nothing.</summary>
    public static DataClassification? Classify(string name) =>
        SecretNames.Contains(name) || SecretNames.Contains(name.Replace("_", "", StringComparison.Ordinal)) ? Secret : null;

    public static IServiceCollection AddNexusRedaction(this IServiceCollection services) =>
        services.AddRedaction(r => r.SetRedactor<MarkingRedactor>(Secret));
}

/// <summary>Marks a secret as <c>[redacted]</c>: the line still shows that a value was there.</summary>
internal sealed class MarkingRedactor : Redactor
{
    public override int GetRedactedLength(ReadOnlySpan<char> input) => LogRedaction.Redacted.Length;

    public override int Redact(ReadOnlySpan<char> source, Span<char> destination)
    {
        LogRedaction.Redacted.AsSpan().CopyTo(destination);
        return LogRedaction.Redacted.Length;
    }
}

/// <summary>A property that holds a secret (see <see cref="NexusTaxonomy.Secret"/>).</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field | AttributeTargets.Parameter)]
internal sealed class SecretAttribute() : DataClassificationAttribute(NexusTaxonomy.Secret);
