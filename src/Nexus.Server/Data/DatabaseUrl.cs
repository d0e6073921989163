using Npgsql;

namespace Nexus.Server.Data;

/// <summary>Accepts the postgres:// URLs that hosting platforms hand out as well as Npgsql connection strings.</summary>
internal static class DatabaseUrl
{
    public static string ToNpgsqlConnectionString(string value)
    {
        value = value.Trim();
        if (value.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || value.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase))
        {
            if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
            {
                throw new FormatException("The URL could not be parsed.");
            }

            var builder = new NpgsqlConnectionStringBuilder
            {
                Host = uri.Host,
                Port = uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port,
                Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')),
            };
            if (!string.IsNullOrEmpty(uri.UserInfo))
            {
                var parts = uri.UserInfo.Split(':', 2);
                builder.Username = Uri.UnescapeDataString(parts[0]);
                if (parts.Length == 2)
                {
                    builder.Password = Uri.UnescapeDataString(parts[1]);
                }
            }

            foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                var kv = pair.Split('=', 2);
                var key = Uri.UnescapeDataString(kv[0]);
                var val = kv.Length == 2 ? Uri.UnescapeDataString(kv[1]) : "";
                Apply(builder, key, val);
            }

            if (string.IsNullOrEmpty(builder.Database))
            {
                throw new FormatException("The URL names no database.");
            }

            return builder.ConnectionString;
        }

        try
        {
            return new NpgsqlConnectionStringBuilder(value).ConnectionString;
        }
        catch (Exception e) when (e is ArgumentException or InvalidCastException or OverflowException)
        {
            throw new FormatException(e.Message, e);
        }
    }

    /// <summary>libpq's sslmode values (what a postgres:// URL from a hosting platform carries) and Npgsql's.</summary>
    private static readonly Dictionary<string, SslMode> SslModes = new(StringComparer.OrdinalIgnoreCase)
    {
        ["disable"] = SslMode.Disable,
        ["allow"] = SslMode.Allow,
        ["prefer"] = SslMode.Prefer,
        ["require"] = SslMode.Require,
        ["verify-ca"] = SslMode.VerifyCA,
        ["verify-full"] = SslMode.VerifyFull,
        ["verifyca"] = SslMode.VerifyCA,
        ["verifyfull"] = SslMode.VerifyFull,
    };

    /// <summary>libpq's URL parameters that Npgsql names otherwise (libpq's documentation, "Parameter Key Words").</summary>
    private static readonly Dictionary<string, string> LibpqKeys = new(StringComparer.OrdinalIgnoreCase)
    {
        ["connect_timeout"] = "Timeout",
        ["application_name"] = "Application Name",
        ["sslrootcert"] = "Root Certificate",
        ["sslcert"] = "SSL Certificate",
        ["sslkey"] = "SSL Key",
        ["sslpassword"] = "SSL Password",
        ["options"] = "Options",
        ["target_session_attrs"] = "Target Session Attributes",
        ["keepalives_idle"] = "Keepalive",
        ["user"] = "Username",
        ["password"] = "Password",
        ["dbname"] = "Database",
        ["port"] = "Port",
        ["client_encoding"] = "Client Encoding",
    };

    /// <summary>
    /// One <c>?key=value</c> of a URL: a libpq parameter, or an Npgsql connection string keyword. Anything else (or a
    /// value the keyword does not take) is a <see cref="FormatException"/>, which startup reports as "DATABASE_URL is not
    /// usable": Npgsql's ArgumentException (from Enum.Parse, or an unknown keyword) would otherwise escape the options
    /// validation and end startup with a stack trace.
    /// </summary>
    private static void Apply(NpgsqlConnectionStringBuilder builder, string key, string value)
    {
        switch (key.ToLowerInvariant())
        {
            case "sslmode":
                builder.SslMode = SslModes.TryGetValue(value, out var mode) ? mode
                    : throw new FormatException($"sslmode={value} is not an SSL mode (disable, allow, prefer, require, verify-ca or verify-full).");
                return;
            case "host":
                // libpq's way of naming a unix socket directory.
                builder.Host = value;
                return;
        }

        var keyword = LibpqKeys.GetValueOrDefault(key, key);
        try
        {
            builder[keyword] = value;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            throw new FormatException(builder.ContainsKey(keyword)
                ? $"The URL's parameter {key}={value} has a value it does not take."
                : $"The URL's parameter '{key}' is neither a libpq parameter Nexus translates ({string.Join(", ", LibpqKeys.Keys.Prepend("sslmode"))}) nor an Npgsql connection string keyword.", e);
        }
    }
}
