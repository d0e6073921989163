// ScaleSeed --database CONNSTRING --encryption-key BASE64 --provider NAME --from I --count N [--workspaces 10000]
//
// Writes connections I … I+N-1 as active, with id conn_scale_<8 digits>, in workspace ws_scale_<5 digits> (i modulo
// --workspaces), each with an access and a refresh token encrypted by Nexus's KeyRing for that row (the associated
// data binds a ciphertext to its column and connection, so one ciphertext cannot be reused across rows). Tokens
// expire between 1 hour and 30 days from now, and next_refresh_at is 10 minutes before, as the refresher would have
// scheduled them: the due-connection query then sees a realistic spread. created_at increases with i, one
// millisecond apart. Prints {"written":N,"seconds":S}. The plaintext access token of connection i is "scale-at-<i>",
// which bench/scale.sh checks through GET /v1/token.
using System.Diagnostics;
using Nexus.Server.Connections;
using Nexus.Server.Vault;
using Npgsql;
using NpgsqlTypes;

var options = new Dictionary<string, string>();
for (var i = 0; i + 1 < args.Length; i += 2)
{
    options[args[i].TrimStart('-')] = args[i + 1];
}

foreach (var required in new[] { "database", "encryption-key", "provider", "from", "count" })
{
    if (!options.ContainsKey(required))
    {
        Console.Error.WriteLine($"--{required} is required");
        return 2;
    }
}

var from = long.Parse(options["from"], System.Globalization.CultureInfo.InvariantCulture);
var count = long.Parse(options["count"], System.Globalization.CultureInfo.InvariantCulture);
var workspaces = options.TryGetValue("workspaces", out var w) ? int.Parse(w, System.Globalization.CultureInfo.InvariantCulture) : 10_000;
var provider = options["provider"];
var keyRing = new KeyRing(Convert.FromBase64String(options["encryption-key"]), []);

var stopwatch = Stopwatch.StartNew();
var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
var createdBase = now - 400L * 24 * 3600 * 1000;
var random = new Random(20);

await using var connection = new NpgsqlConnection(options["database"]);
await connection.OpenAsync();
await using (var copy = await connection.BeginBinaryImportAsync(
    "COPY connections (id, workspace_id, provider_name, status, scopes, return_url, state_expires_at, access_token, refresh_token, token_type, " +
    "token_expires_at, created_by, created_at, updated_at, next_refresh_at, last_refreshed_at) FROM STDIN (FORMAT BINARY)"))
{
    for (var i = from; i < from + count; i++)
    {
        var id = $"conn_scale_{i:D8}";
        var expiresAt = now + 3_600_000L + (long)(random.NextDouble() * 29 * 24 * 3_600_000L);
        await copy.StartRowAsync();
        await copy.WriteAsync(id, NpgsqlDbType.Text);
        await copy.WriteAsync($"ws_scale_{i % workspaces:D5}", NpgsqlDbType.Text);
        await copy.WriteAsync(provider, NpgsqlDbType.Text);
        await copy.WriteAsync(ConnectionStatus.Active, NpgsqlDbType.Text);
        await copy.WriteAsync("read", NpgsqlDbType.Text);
        await copy.WriteAsync("http://127.0.0.1/connected", NpgsqlDbType.Text);
        await copy.WriteAsync(0L, NpgsqlDbType.Bigint);
        await copy.WriteAsync(keyRing.Encrypt($"scale-at-{i}", ConnectionStore.AccessTokenColumn.ContextFor(id)), NpgsqlDbType.Bytea);
        await copy.WriteAsync(keyRing.Encrypt($"scale-rt-{i}", ConnectionStore.RefreshTokenColumn.ContextFor(id)), NpgsqlDbType.Bytea);
        await copy.WriteAsync("Bearer", NpgsqlDbType.Text);
        await copy.WriteAsync(expiresAt, NpgsqlDbType.Bigint);
        await copy.WriteAsync("bench", NpgsqlDbType.Text);
        await copy.WriteAsync(createdBase + i, NpgsqlDbType.Bigint);
        await copy.WriteAsync(now, NpgsqlDbType.Bigint);
        await copy.WriteAsync(expiresAt - 600_000L, NpgsqlDbType.Bigint);
        await copy.WriteAsync(now, NpgsqlDbType.Bigint);
    }

    await copy.CompleteAsync();
}

await using (var analyze = new NpgsqlCommand("ANALYZE connections", connection))
{
    await analyze.ExecuteNonQueryAsync();
}

Console.WriteLine($"{{\"written\":{count},\"seconds\":{stopwatch.Elapsed.TotalSeconds:F1}}}");
return 0;
