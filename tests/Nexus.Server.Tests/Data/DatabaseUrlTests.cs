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

    [Fact]
    public void NexusPreparesItsStatementsAutomaticallyWhenTheConnectionStringDoesNotSay()
    {
        var cs = new NpgsqlConnectionStringBuilder(NexusDatabase.WithConnectionDefaults(DatabaseUrl.ToNpgsqlConnectionString("postgres://u@localhost/app")));
        Assert.Equal(64, cs.MaxAutoPrepare);
        Assert.Equal(2, cs.AutoPrepareMinUsages);
        Assert.Equal("app", cs.Database);
    }

    [Theory]
    [InlineData("postgres://u@localhost/app?Max%20Auto%20Prepare=0", 0)]
    [InlineData("Host=localhost;Database=app;Max Auto Prepare=0", 0)]
    [InlineData("Host=localhost;Database=app;max auto prepare=10", 10)]
    public void AConnectionStringThatSetsMaxAutoPrepareKeepsItsValue(string value, int expected)
    {
        var cs = new NpgsqlConnectionStringBuilder(NexusDatabase.WithConnectionDefaults(DatabaseUrl.ToNpgsqlConnectionString(value)));
        Assert.Equal(expected, cs.MaxAutoPrepare);
    }

    [Fact]
    public void NexusHandsOutPooledConnectionsWithoutTheResetWhenTheConnectionStringDoesNotSay()
    {
        Assert.True(new NpgsqlConnectionStringBuilder(NexusDatabase.WithConnectionDefaults(DatabaseUrl.ToNpgsqlConnectionString("postgres://u@localhost/app"))).NoResetOnClose);
    }

    [Theory]
    [InlineData("postgres://u@localhost/app?No%20Reset%20On%20Close=false")]
    [InlineData("Host=localhost;Database=app;No Reset On Close=false")]
    [InlineData("Host=localhost;Database=app;noresetonclose=false")]
    public void AConnectionStringThatSetsNoResetOnCloseKeepsItsValue(string value)
    {
        var cs = new NpgsqlConnectionStringBuilder(NexusDatabase.WithConnectionDefaults(DatabaseUrl.ToNpgsqlConnectionString(value)));
        Assert.False(cs.NoResetOnClose);
        Assert.Equal(64, cs.MaxAutoPrepare);
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
