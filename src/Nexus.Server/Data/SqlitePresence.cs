using Microsoft.Data.Sqlite;

namespace Nexus.Server.Data;

/// <summary>
/// While a server runs on SQLite it keeps one connection of its own open on the database, outside the pool, with the
/// WAL attached. Pooled connections come and go (the pool prunes idle ones), so without this an idle server could look
/// absent to <c>restore</c>, whose "is anyone using the database?" check is that SQLite refuses to leave WAL mode while
/// another connection has the WAL open. The connection holds no transaction and blocks no reader, writer or checkpoint.
/// </summary>
internal sealed class SqlitePresence(NexusDatabase database) : IHostedService, IAsyncDisposable
{
    private SqliteConnection? connection;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (database.Engine != DatabaseEngine.Sqlite)
        {
            return;
        }

        var held = new SqliteConnection(new SqliteConnectionStringBuilder(database.ConnectionString) { Pooling = false }.ToString());
        await held.OpenAsync(cancellationToken);
        await using (var command = held.CreateCommand())
        {
            // A first read is what attaches the connection to the WAL (an open alone touches no file).
            command.CommandText = "PRAGMA journal_mode=WAL; SELECT count(*) FROM sqlite_master;";
            await command.ExecuteScalarAsync(cancellationToken);
        }

        connection = held;
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync();

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref connection, null) is { } held)
        {
            await held.DisposeAsync();
        }
    }
}
