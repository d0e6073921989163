using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A fresh, empty database for one test server: a SQLite file in a temporary folder, or, when
/// NEXUS_TEST_POSTGRES names a PostgreSQL server (the test script starts a throwaway cluster), a new
/// database on it that is dropped afterwards.
/// </summary>
public sealed class TestDatabase : IAsyncDisposable
{
    public const string PostgresVariable = "NEXUS_TEST_POSTGRES";

    private readonly string? adminConnectionString;

    private TestDatabase(string dataDirectory, string? databaseUrl, string? adminConnectionString, string? databaseName)
    {
        DataDirectory = dataDirectory;
        DatabaseUrl = databaseUrl;
        this.adminConnectionString = adminConnectionString;
        DatabaseName = databaseName;
    }

    public static bool UsePostgres => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(PostgresVariable));

    public string Engine => DatabaseUrl is null ? "sqlite" : "postgres";

    /// <summary>Nexus's data folder (SQLite file, development key).</summary>
    public string DataDirectory { get; }

    /// <summary>The DATABASE_URL to give Nexus; null for SQLite.</summary>
    public string? DatabaseUrl { get; }

    public string? DatabaseName { get; }

    public string SqliteFile => Path.Combine(DataDirectory, "nexus.db");

    public static Task<TestDatabase> CreateAsync() => CreateAsync(Environment.GetEnvironmentVariable(PostgresVariable));

    /// <summary>A new database on the PostgreSQL server <paramref name="admin"/> names (SQLite when null).</summary>
    public static async Task<TestDatabase> CreateAsync(string? admin)
    {
        var dataDirectory = Directory.CreateTempSubdirectory("nexus-test-").FullName;
        if (string.IsNullOrEmpty(admin))
        {
            return new TestDatabase(dataDirectory, null, null, null);
        }

        var name = "nexus_test_" + Guid.NewGuid().ToString("N")[..16];
        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await command.ExecuteNonQueryAsync();
        }

        var url = new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString;
        return new TestDatabase(dataDirectory, url, admin, name);
    }

    /// <summary>Every value stored in every table, as text, for at-rest scans.</summary>
    public async Task<string> DumpAllRowsAsync()
    {
        var dump = new StringBuilder();
        if (DatabaseUrl is null)
        {
            await using var connection = new SqliteConnection($"Data Source={SqliteFile};Pooling=False");
            await connection.OpenAsync();
            var tables = new List<string>();
            await using (var list = new SqliteCommand("SELECT name FROM sqlite_master WHERE type = 'table'", connection))
            await using (var reader = await list.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    tables.Add(reader.GetString(0));
                }
            }

            foreach (var table in tables)
            {
                await using var select = new SqliteCommand($"SELECT * FROM \"{table}\"", connection);
                await using var reader = await select.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    for (var i = 0; i < reader.FieldCount; i++)
                    {
                        dump.Append(reader.GetValue(i) is byte[] bytes ? Encoding.Latin1.GetString(bytes) : reader.GetValue(i)?.ToString()).Append('|');
                    }

                    dump.AppendLine();
                }
            }
        }
        else
        {
            await using var connection = new NpgsqlConnection(DatabaseUrl);
            await connection.OpenAsync();
            var tables = new List<string>();
            await using (var list = new NpgsqlCommand("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'", connection))
            await using (var reader = await list.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    tables.Add(reader.GetString(0));
                }
            }

            foreach (var table in tables)
            {
                // Row-to-text shows bytea as hex, so scan the raw bytes too.
                await using var select = new NpgsqlCommand($"SELECT * FROM \"{table}\"", connection);
                await using var reader = await select.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    for (var i = 0; i < reader.FieldCount; i++)
                    {
                        dump.Append(reader.GetValue(i) is byte[] bytes ? Encoding.Latin1.GetString(bytes) : reader.GetValue(i)?.ToString()).Append('|');
                    }

                    dump.AppendLine();
                }
            }
        }

        return dump.ToString();
    }

    /// <summary>Runs one query on this database (as a test inspects state the API does not show) and returns the first column of the first row.</summary>
    public async Task<object?> ScalarAsync(string sql, params (string Name, object? Value)[] parameters)
    {
        if (DatabaseUrl is null)
        {
            await using var connection = new SqliteConnection($"Data Source={SqliteFile};Pooling=False");
            await connection.OpenAsync();
            await using var command = new SqliteCommand(sql, connection);
            foreach (var (name, value) in parameters)
            {
                command.Parameters.AddWithValue(name, value ?? DBNull.Value);
            }

            var result = await command.ExecuteScalarAsync();
            return result is DBNull ? null : result;
        }

        await using (var connection = new NpgsqlConnection(DatabaseUrl))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(sql, connection);
            foreach (var (name, value) in parameters)
            {
                command.Parameters.AddWithValue(name, value ?? DBNull.Value);
            }

            var result = await command.ExecuteScalarAsync();
            return result is DBNull ? null : result;
        }
    }

    /// <summary>
    /// Waits until <paramref name="operation"/> has finished or, on PostgreSQL, a session of this database waits for a
    /// lock (a write queued behind a refresh that holds its connection's row): either way it has got as far as it can
    /// while the lock is held. Its outcome is the caller's to await.
    /// </summary>
    public async Task FinishedOrWaitingForALockAsync(Task operation, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!operation.IsCompleted)
        {
            if (DatabaseUrl is not null && Convert.ToInt64(await ScalarAsync(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"), CultureInfo.InvariantCulture) > 0)
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new Xunit.Sdk.XunitException("Timed out waiting: " + what);
            }

            await Task.WhenAny(operation, Task.Delay(50));
        }
    }

    /// <summary>The raw bytes of the SQLite database and its write-ahead log (empty on PostgreSQL).</summary>
    public byte[] RawSqliteBytes()
    {
        if (DatabaseUrl is not null)
        {
            return [];
        }

        var bytes = new List<byte>();
        foreach (var file in new[] { SqliteFile, SqliteFile + "-wal" })
        {
            if (File.Exists(file))
            {
                using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using var memory = new MemoryStream();
                stream.CopyTo(memory);
                bytes.AddRange(memory.ToArray());
            }
        }

        return bytes.ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        if (adminConnectionString is not null)
        {
            NpgsqlConnection.ClearAllPools();
            await DropAsync(adminConnectionString);
        }

        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A file still open by a finishing server; the OS temp cleaner gets it.
        }
    }

    private async Task DropAsync(string admin)
    {
        await using var connection = new NpgsqlConnection(admin);
        try
        {
            await connection.OpenAsync();
        }
        catch (NpgsqlException e) when (e.InnerException is System.Net.Sockets.SocketException)
        {
            // Nobody listens: a test stopped its own throwaway cluster (an outage test) and failed before starting it
            // again. The database goes with that cluster; throwing here would hide the test's own failure.
            return;
        }

        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {DatabaseName} WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }
}
