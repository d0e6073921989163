namespace Nexus.Sdk.Aws;

/// <summary>
/// Options that adjust how <see cref="SigV4Signer"/> signs a request. Every option left <see langword="null"/>
/// takes the value AWS documents for the service being signed: Amazon S3 differs from every other service.
/// </summary>
public sealed record SigV4Options
{
    /// <summary>
    /// The payload hash to sign, used by <see cref="SigV4Signer.SignAsync"/> instead of reading the content:
    /// the lowercase hex SHA-256 of the body, or <see cref="SigV4Signer.UnsignedPayload"/>. Set it to sign a
    /// streamed body without buffering it. When <see langword="null"/>, an <c>x-amz-content-sha256</c> header
    /// already on the request is taken as the hash, and failing that the content is hashed (and buffered in
    /// memory if it cannot be read twice).
    /// </summary>
    public string? PayloadHash { get; init; }

    /// <summary>
    /// Whether to remove <c>.</c> and <c>..</c> segments and empty segments (duplicate slashes) from the path
    /// before it is canonicalized. Defaults to <see langword="true"/>, and to <see langword="false"/> for S3,
    /// whose object keys may legitimately contain such segments.
    /// </summary>
    public bool? NormalizePath { get; init; }

    /// <summary>
    /// Whether the canonical URI is the path as sent URI-encoded a second time (so <c>%20</c> becomes
    /// <c>%2520</c>, and only RFC 3986 unreserved characters stay as they are), as every service but S3 expects.
    /// When <see langword="false"/> (the S3 default) the path is signed exactly as it is sent, encoded once:
    /// build S3 URIs with each key segment percent-encoded (for example with <see cref="Uri.EscapeDataString(string)"/>).
    /// </summary>
    public bool? DoubleEncodePath { get; init; }

    /// <summary>
    /// Whether to send, and sign, the <c>x-amz-content-sha256</c> header holding the payload hash.
    /// S3 requires it, so it defaults to <see langword="true"/> for S3 and to <see langword="false"/> otherwise.
    /// </summary>
    public bool? AddContentSha256Header { get; init; }
}
