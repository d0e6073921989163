namespace Nexus.Server.Vault;

/// <summary>
/// A column whose values the key ring encrypted. Every component that stores ciphertext registers its
/// columns, so that <see cref="ReEncryptor"/> can move all of them to the active key without knowing the schema.
/// </summary>
/// <param name="Table">Table name.</param>
/// <param name="KeyColumn">Primary key column (text).</param>
/// <param name="ValueColumn">The encrypted column.</param>
/// <param name="ContextPrefix">Associated-data prefix; the row key is appended.</param>
internal sealed record EncryptedColumn(string Table, string KeyColumn, string ValueColumn, string ContextPrefix)
{
    public string ContextFor(string key) => ContextPrefix + key;
}
