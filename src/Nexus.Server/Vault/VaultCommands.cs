using System.Globalization;
using Nexus.Server.Hosting.Commands;

namespace Nexus.Server.Vault;

/// <summary>The encryption key's commands: <c>keys status</c> and <c>keys reencrypt</c>.</summary>
internal static class VaultCommands
{
    public static IServiceCollection AddVaultCommands(this IServiceCollection services) => services
        .AddNexusCommand("keys status", "show the encryption keys and how many stored secrets each one encrypted", """
            Usage: Nexus.Server keys status [--json]
              Shows the active encryption key (its id, a fingerprint, never the key), where it came from, the previous
              keys that still decrypt (PREVIOUS_ENCRYPTION_KEYS), and how many stored secrets each key id encrypted.
              Values under a key that is not configured cannot be read: put that key back in PREVIOUS_ENCRYPTION_KEYS.
              --json   {"active_key_id","source","development_key","key_ids":[…],"stored_values":[{"key_id","count","configured"}],"pending_reencryption"}
            """, StatusAsync)
        .AddNexusCommand("keys reencrypt", "re-encrypt every stored secret under ENCRYPTION_KEY (after a key rotation)", """
            Usage: Nexus.Server keys reencrypt [--json]
              Re-encrypts every stored secret under ENCRYPTION_KEY. Run it after a rotation, with the old key(s) in
              PREVIOUS_ENCRYPTION_KEYS (comma-separated); afterwards the old keys can be removed. Safe to repeat and to
              run while Nexus serves requests.
              --json   {"reencrypted":N,"active_key_id":"…"}
            """, ReEncryptAsync);

    private static string Id(uint id) => id.ToString("x8", CultureInfo.InvariantCulture);

    private static async Task<int> StatusAsync(CommandContext context, CancellationToken ct)
    {
        var keyRing = context.Get<KeyRing>();
        var counts = await context.Get<ReEncryptor>().CountByKeyAsync(ct);
        var stored = counts.OrderByDescending(c => c.Value)
            .Select(c => new { key_id = Id(c.Key), count = c.Value, configured = keyRing.KeyIds.Contains(c.Key) }).ToList();
        var pending = counts.Where(c => c.Key != keyRing.ActiveKeyId).Sum(c => c.Value);
        var result = new
        {
            active_key_id = Id(keyRing.ActiveKeyId),
            source = keyRing.Source,
            development_key = keyRing.IsDevelopmentKey,
            key_ids = keyRing.KeyIds.Select(Id).ToList(),
            stored_values = stored,
            pending_reencryption = pending,
        };
        var text = $"Active encryption key: {Id(keyRing.ActiveKeyId)} ({keyRing.Source})\n"
            + $"Keys that decrypt: {string.Join(", ", keyRing.KeyIds.Select(Id))}\n"
            + "Stored secrets by key: " + (stored.Count == 0 ? "none" : string.Join(", ", stored.Select(s => $"{s.key_id} {s.count}{(s.configured ? "" : " (key not configured!)")}"))) + "\n"
            + (pending == 0 ? "Everything is encrypted under the active key." : $"{pending} value(s) under older keys: run `keys reencrypt`.");
        return await context.ResultAsync(result, text);
    }

    private static async Task<int> ReEncryptAsync(CommandContext context, CancellationToken ct)
    {
        var reEncryptor = context.Get<ReEncryptor>();
        var keyRing = context.Get<KeyRing>();
        var count = await reEncryptor.ReEncryptAllAsync(context.Progress("Re-encrypting", reEncryptor.ColumnCount), ct);
        return await context.ResultAsync(new { reencrypted = count, active_key_id = Id(keyRing.ActiveKeyId) },
            $"Re-encrypted {count} value(s) under key {Id(keyRing.ActiveKeyId)}.");
    }
}
