using Nexus.Server.Data;
using Npgsql;

namespace Nexus.Server.Tests.Data;

public sealed class DatabaseUrlTests
{
    [Fact]
    public void ParsesPostgresUrlsWithEscapedCredentialsAndOptions()
    {
        var cs = new NpgsqlConnectionStringBuilder(DatabaseUrl.ToNpgsqlConnectionString("postgres://nexus:p%40ss%3Aword@db.internal:5433/nexus_prod?sslmode=require"));
        Assert.Equal("db.internal", cs.Host);
        Assert.Equal(5433, cs.Port);
        Assert.Equal("nexus", cs.Username);
        Assert.Equal("p@ss:word", cs.Password);
        Assert.Equal("nexus_prod", cs.Database);
        Assert.Equal(SslMode.Require, cs.SslMode);
    }

    [Fact]
    public void DefaultsThePortAndAcceptsPostgresqlScheme()
    {
        var cs = new NpgsqlConnectionStringBuilder(DatabaseUrl.ToNpgsqlConnectionString("postgresql://u@localhost/app"));
        Assert.Equal(5432, cs.Port);
        Assert.Equal("app", cs.Database);
    }

    [Fact]
    public void AcceptsNpgsqlConnectionStrings()
    {
        var cs = new NpgsqlConnectionStringBuilder(DatabaseUrl.ToNpgsqlConnectionString("Host=/tmp/sock;Port=5999;Database=x;Username=postgres"));
        Assert.Equal("/tmp/sock", cs.Host);
        Assert.Equal(5999, cs.Port);
    }

    [Theory]
    [InlineData("postgres://host-without-db")]
    [InlineData("postgres://")]
    [InlineData("this is = not ; valid = = =")]
    public void RejectsUnusableValuesWithFormatException(string value)
    {
        Assert.Throws<FormatException>(() => DatabaseUrl.ToNpgsqlConnectionString(value));
    }
}
