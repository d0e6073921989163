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
    [InlineData("disable", SslMode.Disable)]
    [InlineData("allow", SslMode.Allow)]
    [InlineData("prefer", SslMode.Prefer)]
    [InlineData("require", SslMode.Require)]
    [InlineData("verify-ca", SslMode.VerifyCA)]
    [InlineData("verify-full", SslMode.VerifyFull)]
    [InlineData("VerifyFull", SslMode.VerifyFull)]
    public void TakesLibpqsSslModes(string value, SslMode expected)
    {
        Assert.Equal(expected, new NpgsqlConnectionStringBuilder(DatabaseUrl.ToNpgsqlConnectionString($"postgres://u@db.example.com/app?sslmode={value}")).SslMode);
    }

    [Fact]
    public void TranslatesLibpqsCommonParametersToNpgsqls()
    {
        var cs = new NpgsqlConnectionStringBuilder(DatabaseUrl.ToNpgsqlConnectionString(
            "postgres://u@db.example.com/app?sslmode=verify-full&connect_timeout=7&application_name=nexus-eu&sslrootcert=%2Fetc%2Fca.pem&target_session_attrs=read-write"));
        Assert.Equal(SslMode.VerifyFull, cs.SslMode);
        Assert.Equal(7, cs.Timeout);
        Assert.Equal("nexus-eu", cs.ApplicationName);
        Assert.Equal("/etc/ca.pem", cs.RootCertificate);
        Assert.Equal("read-write", cs.TargetSessionAttributes);
    }

    [Theory]
    [InlineData("postgres://u@db.example.com/app?sslmode=verify-everything", "sslmode=verify-everything")]
    [InlineData("postgres://u@db.example.com/app?frobnicate=1", "'frobnicate'")]
    [InlineData("postgres://u@db.example.com/app?connect_timeout=soon", "connect_timeout=soon")]
    [InlineData("Host=db.example.com;Database=app;SSL Mode=verify-full", "")]
    public void AnUnusableParameterIsAConfigurationErrorThatNamesItNeverACrash(string value, string named)
    {
        var failure = new DatabaseOptionsValidator().Validate(null, new Nexus.Server.Hosting.NexusOptions { DatabaseUrl = value });
        Assert.True(failure.Failed);
        Assert.StartsWith("DATABASE_URL is not usable: ", failure.FailureMessage);
        Assert.Contains(named, failure.FailureMessage);
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
