namespace Nexus.Sdk.Aws;

/// <summary>
/// The outcome of signing a request with <see cref="SigV4Signer"/>: the signature, the header that carries it,
/// the other headers the request must be sent with, and the intermediate strings (useful to compare with the
/// canonical request and string to sign that AWS returns in a <c>SignatureDoesNotMatch</c> error).
/// </summary>
/// <param name="CanonicalRequest">The canonical request that was hashed, per the SigV4 specification.</param>
/// <param name="StringToSign">The string to sign: algorithm, timestamp, credential scope and canonical request hash.</param>
/// <param name="Signature">The signature, as lowercase hex.</param>
/// <param name="SignedHeaders">The signed header names: lowercase, sorted and separated by <c>;</c>.</param>
/// <param name="AuthorizationHeader">The value of the <c>Authorization</c> header.</param>
/// <param name="AddedHeaders">
/// The headers, other than <c>Authorization</c>, that the signature covers and that the signer supplies, and so
/// must be sent with the request: <c>X-Amz-Date</c> always, <c>X-Amz-Security-Token</c> when the credentials
/// carry a session token, and <c>x-amz-content-sha256</c> when <see cref="SigV4Options.AddContentSha256Header"/>
/// applies. (<c>Host</c> is signed too, but an HTTP client sends it from the URI by itself.)
/// </param>
public sealed record SigV4SigningResult(
    string CanonicalRequest,
    string StringToSign,
    string Signature,
    string SignedHeaders,
    string AuthorizationHeader,
    IReadOnlyList<KeyValuePair<string, string>> AddedHeaders)
{
    /// <summary>
    /// Describes the result by its signed headers and signature only: the canonical request and the added headers
    /// hold the session token (<c>x-amz-security-token</c>) of temporary credentials, which must stay out of logs.
    /// </summary>
    /// <returns>The signed header names and the signature.</returns>
    public override string ToString() => $"SigV4SigningResult {{ SignedHeaders = {SignedHeaders}, Signature = {Signature} }}";
}
