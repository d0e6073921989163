using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Nexus.Server.Credentials;
using Nexus.Server.Providers;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Credentials;

/// <summary>
/// aws_sigv4 connections with a role: the stored keys assume it at a fake STS that checks every signature on its
/// own, GET /v1/token hands out only the temporary credentials (cached, single-flight, renewed 5 minutes before they
/// expire), the Bridge signs with them, and every way STS can fail is a stable problem, never a 500.
/// </summary>
public sealed class AwsAssumeRoleTests : IAsyncLifetime
{
    private const string ReturnUrl = "https://app.example.test/oauth/return";
    private const string KeyId = "AKIAIOSFODNN7LONGKEY";
    private const string Secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYLONGLIVED1";
    private const string Role = "arn:aws:iam::123456789012:role/nexus-reader";
    private const string OtherRole = "arn:aws:iam::123456789012:role/team/nexus-writer";

    private FakeSts sts = null!;
    private EchoUpstream echo = null!;
    private TestDatabase db = null!;
    private NexusTestServer server = null!;
    private readonly CapturedLogs logs = new();

    public async ValueTask InitializeAsync()
    {
        sts = await FakeSts.StartAsync();
        echo = await EchoUpstream.StartAsync();
        db = await TestDatabase.CreateAsync();
        server = await NexusTestServer.StartAsync(db, s =>
        {
            s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/";
            s["Nexus:UpstreamTimeoutSeconds"] = "2";
            // Every category at Trace, so that the log scan below sees what Nexus and its HttpClient write. Not quite
            // everything: Microsoft.AspNetCore.Hosting.Diagnostics is None by default (HostingExtensions) and the more
            // specific category wins over Default; it would log requests, which carry no credentials here.
            s["Logging:LogLevel:Default"] = "Trace";
        }, services: s => s.AddSingleton<ILoggerProvider>(logs));
        // The fake issues credentials on Nexus's clock, so moving the clock forward brings them near expiry.
        sts.Clock = server.Time.GetUtcNow;
        // The providers below sign for eu-west-1 and their STS (the fake, on loopback) says no region of its own.
        sts.Region = "eu-west-1";
    }

    public async ValueTask DisposeAsync()
    {
        await server.DisposeAsync();
        await db.DisposeAsync();
        await echo.DisposeAsync();
        await sts.DisposeAsync();
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> GatewayAsync(HttpMethod method, string path, object? json = null)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-API-Key", server.ApiKey);
        if (json is not null)
        {
            request.Content = JsonContent.Create(json);
        }

        using var response = await server.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>A custom aws_sigv4 provider in front of the echo upstream whose STS is the fake.</summary>
    private async Task<string> RegisterAsync(string name, Dictionary<string, string>? role = null, object? credentialSchema = null)
    {
        var aws = new Dictionary<string, string> { ["service"] = "execute-api", ["region"] = "eu-west-1", ["sts_endpoint"] = sts.BaseUrl };
        foreach (var (key, value) in role ?? new() { ["role_arn"] = Role })
        {
            if (value.Length == 0)
            {
                aws.Remove(key);
            }
            else
            {
                aws[key] = value;
            }
        }

        object body = credentialSchema is null
            ? new { name, auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl, aws }
            : new { name, auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl, aws, credential_schema = credentialSchema };
        var created = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", body, HttpStatusCode.Created);
        return created.GetProperty("name").GetString()!;
    }

    /// <summary>The default aws_sigv4 fields plus a region field whose pattern is as loose as a custom schema may make it.</summary>
    private static JsonNode SchemaWithLooseRegion() => JsonNode.Parse("""
        {
          "type": "object",
          "required": ["access_key_id", "secret_access_key"],
          "properties": {
            "access_key_id": {"type": "string", "title": "Access key ID"},
            "secret_access_key": {"type": "string", "title": "Secret access key", "x-secret": true},
            "session_token": {"type": "string", "title": "Session token", "x-secret": true},
            "region": {"type": "string", "title": "Region", "pattern": ".+"},
            "role_arn": {"type": "string", "title": "Role ARN"}
          },
          "additionalProperties": false
        }
        """)!;

    private async Task<string> RequestAsync(string provider)
    {
        var (status, body) = await GatewayAsync(HttpMethod.Post, "/v1/request-connection", new { workspace_id = "ws_aws", provider_name = provider, return_url = ReturnUrl });
        Assert.True(status == HttpStatusCode.Created, body.ToString());
        return body.GetProperty("connection_id").GetString()!;
    }

    private Task<(HttpStatusCode Status, JsonElement Body)> SubmitAsync(string id, Dictionary<string, string>? extra = null, string keyId = KeyId, string secret = Secret, string? sessionToken = null)
    {
        var fields = new Dictionary<string, string> { ["access_key_id"] = keyId, ["secret_access_key"] = secret };
        if (sessionToken is not null)
        {
            fields["session_token"] = sessionToken;
        }

        foreach (var (key, value) in extra ?? [])
        {
            fields[key] = value;
        }

        return GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", fields);
    }

    private async Task<string> ConnectAsync(string provider, Dictionary<string, string>? extra = null, string? sessionToken = null)
    {
        var id = await RequestAsync(provider);
        var (status, body) = await SubmitAsync(id, extra, sessionToken: sessionToken);
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        Assert.Equal("active", body.GetProperty("status").GetString());
        return id;
    }

    private async Task<(HttpStatusCode Status, string Body, EchoUpstream.Received? Echoed)> BridgeAsync(string id, HttpMethod method, string path, string? body = null)
    {
        var before = echo.Requests.Count;
        using var request = new HttpRequestMessage(method, $"/v1/bridge/{id}{path}");
        request.Headers.Add("X-API-Key", server.ApiKey);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        using var response = await server.Http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), echo.Requests.Count > before ? echo.Last : null);
    }

    [Fact]
    public async Task TokenReadReturnsAssumedRoleCredentialsNotTheLongLivedKeys()
    {
        sts.Allow(KeyId, Secret, Role);
        var provider = await RegisterAsync("aws-role");
        var id = await ConnectAsync(provider);

        var (status, token) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.OK, status);
        var issued = sts.LastIssued;
        var strategy = token.GetProperty("strategy");
        Assert.Equal("aws_sigv4", strategy.GetProperty("type").GetString());
        Assert.Equal("eu-west-1", strategy.GetProperty("region").GetString());
        Assert.Equal("execute-api", strategy.GetProperty("service").GetString());
        Assert.Equal(Role, strategy.GetProperty("role_arn").GetString());
        var credentials = token.GetProperty("credentials");
        Assert.Equal(issued.AccessKeyId, credentials.GetProperty("access_key_id").GetString());
        Assert.Equal(issued.SecretAccessKey, credentials.GetProperty("secret_access_key").GetString());
        Assert.Equal(issued.SessionToken, credentials.GetProperty("session_token").GetString());
        Assert.Equal(issued.Expiration.ToUnixTimeSeconds(), credentials.GetProperty("expires_at").GetInt64());
        Assert.Equal(issued.Expiration.ToUnixTimeSeconds(), token.GetProperty("expires_at").GetInt64());
        Assert.Equal(new[] { "access_key_id", "secret_access_key", "session_token", "expires_at" }, credentials.EnumerateObject().Select(p => p.Name));
        Assert.DoesNotContain(Secret, token.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(KeyId, token.ToString(), StringComparison.Ordinal);

        // One AssumeRole, made when the credentials were captured (it proved the keys can assume the role); the read
        // was served from the cache. The request was what the STS API reference describes.
        Assert.Equal(1, sts.CallCount);
        var call = Assert.Single(sts.Calls);
        Assert.Equal("issued", call.Outcome);
        Assert.Equal(KeyId, call.AccessKeyId);
        Assert.Equal("eu-west-1", call.Region);
        Assert.Equal("sts", call.Service);
        Assert.Equal(Role, call.Form["RoleArn"]);
        Assert.Equal("nexus-" + id, call.Form["RoleSessionName"]);
        Assert.Equal("3600", call.Form["DurationSeconds"]);
        Assert.False(call.Form.ContainsKey("ExternalId"));
        Assert.Null(call.SecurityToken);
    }

    [Fact]
    public async Task ConcurrentTokenReadsShareOneAssumeRoleCall()
    {
        sts.Allow(KeyId, Secret, Role);
        var id = await ConnectAsync(await RegisterAsync("aws-concurrent"));
        Assert.Equal(1, sts.CallCount);

        // Past the refresh point every reader needs new credentials at once; they must share one STS call.
        server.Time.Advance(TimeSpan.FromMinutes(56));
        sts.Delay = TimeSpan.FromMilliseconds(300);
        var reads = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => GatewayAsync(HttpMethod.Get, $"/v1/token/{id}")));
        Assert.All(reads, r => Assert.Equal(HttpStatusCode.OK, r.Status));
        Assert.Equal(2, sts.CallCount);
        Assert.Single(reads.Select(r => r.Body.GetProperty("credentials").GetProperty("access_key_id").GetString()).Distinct());
        Assert.Equal(sts.LastIssued.AccessKeyId, reads[0].Body.GetProperty("credentials").GetProperty("access_key_id").GetString());
    }

    [Fact]
    public async Task CredentialsAreAssumedAgainWithinFiveMinutesOfTheirExpiry()
    {
        sts.Allow(KeyId, Secret, Role);
        sts.IssuedDurationSeconds = 900;
        var id = await ConnectAsync(await RegisterAsync("aws-expiry", new() { ["role_arn"] = Role, ["session_duration_seconds"] = "900" }));
        Assert.Equal("900", sts.Calls.Single().Form["DurationSeconds"]);
        var first = (await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}")).Body.GetProperty("credentials");

        // 9 minutes in, 6 are left: still the same credentials, no new call.
        server.Time.Advance(TimeSpan.FromMinutes(9));
        var (_, still) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(first.GetProperty("access_key_id").GetString(), still.GetProperty("credentials").GetProperty("access_key_id").GetString());
        Assert.Equal(1, sts.CallCount);

        // 11 minutes in, 4 are left: inside the 5-minute margin, so Nexus assumes the role again.
        server.Time.Advance(TimeSpan.FromMinutes(2));
        var (status, renewed) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(2, sts.CallCount);
        Assert.NotEqual(first.GetProperty("access_key_id").GetString(), renewed.GetProperty("credentials").GetProperty("access_key_id").GetString());
        Assert.Equal(sts.LastIssued.AccessKeyId, renewed.GetProperty("credentials").GetProperty("access_key_id").GetString());
        Assert.True(renewed.GetProperty("expires_at").GetInt64() > first.GetProperty("expires_at").GetInt64());
        Assert.True(renewed.GetProperty("expires_at").GetInt64() - server.Time.GetUtcNow().ToUnixTimeSeconds() > 14 * 60);
    }

    [Fact]
    public async Task TheBridgeSignsWithTheTemporaryCredentialsAndSessionToken()
    {
        sts.Allow(KeyId, Secret, Role);
        var id = await ConnectAsync(await RegisterAsync("aws-bridge"));
        var issued = sts.LastIssued;

        var (status, _, echoed) = await BridgeAsync(id, HttpMethod.Get, "/prod/items?limit=5&after=a%20b");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.NotNull(echoed);
        var auth = SigV4Check.Parse(echoed.Headers["Authorization"])!;
        Assert.Equal(issued.AccessKeyId, auth.AccessKeyId);
        Assert.Equal("eu-west-1", auth.Region);
        Assert.Equal("execute-api", auth.Service);
        Assert.Equal(issued.SessionToken, echoed.Headers["X-Amz-Security-Token"]);
        Assert.Contains("x-amz-security-token", auth.SignedHeaders);
        // The upstream's side of the check: the signature is right for the temporary secret, not for the stored one.
        Assert.Null(SigV4Check.Verify(echoed.Method, echoed.Path, echoed.Query, echoed.Headers, echoed.BodySha256, issued.SecretAccessKey));
        Assert.NotNull(SigV4Check.Verify(echoed.Method, echoed.Path, echoed.Query, echoed.Headers, echoed.BodySha256, Secret));

        // A body is hashed into the signature too.
        (status, _, echoed) = await BridgeAsync(id, HttpMethod.Post, "/prod/items", """{"name":"widget"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Null(SigV4Check.Verify(echoed!.Method, echoed.Path, echoed.Query, echoed.Headers, echoed.BodySha256, issued.SecretAccessKey));
        Assert.Equal(1, sts.CallCount);
    }

    [Fact]
    public async Task LongLivedKeysWithASessionTokenSignTheAssumeRoleRequestWithIt()
    {
        const string token = "FwoGZXIvYXdzELONGLIVEDSESSIONTOKEN+/=";
        sts.Allow(KeyId, Secret, Role, sessionToken: token);
        var id = await ConnectAsync(await RegisterAsync("aws-chained"), sessionToken: token);
        Assert.Equal(token, sts.Calls.Single().SecurityToken);
        var (_, body) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(sts.LastIssued.SessionToken, body.GetProperty("credentials").GetProperty("session_token").GetString());
        Assert.DoesNotContain(token, body.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheConnectionsRoleArnOverridesTheProviders()
    {
        sts.Allow(KeyId, Secret, OtherRole);
        var provider = await RegisterAsync("aws-override");
        var id = await ConnectAsync(provider, new() { ["role_arn"] = OtherRole });
        Assert.Equal(OtherRole, sts.Calls.Single().Form["RoleArn"]);
        var (_, token) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(OtherRole, token.GetProperty("strategy").GetProperty("role_arn").GetString());

        // A provider without a role: connections without one get their stored keys as before; one with a role_arn assumes it.
        var plain = await RegisterAsync("aws-plain", new());
        var keysOnly = await ConnectAsync(plain);
        var (_, unchanged) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{keysOnly}");
        Assert.Equal(KeyId, unchanged.GetProperty("credentials").GetProperty("access_key_id").GetString());
        Assert.Equal(Secret, unchanged.GetProperty("credentials").GetProperty("secret_access_key").GetString());
        Assert.Equal(JsonValueKind.Null, unchanged.GetProperty("expires_at").ValueKind);
        Assert.False(unchanged.GetProperty("strategy").TryGetProperty("role_arn", out _));
        var withRole = await ConnectAsync(plain, new() { ["role_arn"] = OtherRole });
        var (_, assumed) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{withRole}");
        Assert.Equal(sts.LastIssued.AccessKeyId, assumed.GetProperty("credentials").GetProperty("access_key_id").GetString());
        Assert.Equal(2, sts.CallCount);

        // The connection's role_arn is checked like any field.
        var bad = await RequestAsync(plain);
        var (status, problem) = await SubmitAsync(bad, new() { ["role_arn"] = "arn:aws:iam::12345:user/someone" });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.True(problem.GetProperty("errors").TryGetProperty("role_arn", out _));
    }

    [Fact]
    public async Task TheExternalIdIsSentAndAWrongOneIsRefusedAtCapture()
    {
        sts.Allow(KeyId, Secret, Role, externalId: "nexus-tenant-42");
        var id = await ConnectAsync(await RegisterAsync("aws-external", new() { ["role_arn"] = Role, ["external_id"] = "nexus-tenant-42" }));
        Assert.Equal("nexus-tenant-42", sts.Calls.Single().Form["ExternalId"]);
        Assert.Equal(HttpStatusCode.OK, (await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}")).Status);

        var wrong = await RequestAsync(await RegisterAsync("aws-external-wrong", new() { ["role_arn"] = Role, ["external_id"] = "someone-else" }));
        var (status, problem) = await SubmitAsync(wrong);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Equal("credentials_rejected", problem.GetProperty("code").GetString());
        Assert.Contains("AccessDenied", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task AccessDeniedDuringRenewalDropsTheCachedCredentialsIsA502OnTokenReadAndBridgeAndA422AtCapture()
    {
        sts.Allow(KeyId, Secret, Role);
        var provider = await RegisterAsync("aws-denied");
        var id = await ConnectAsync(provider);

        sts.FailWith = FakeSts.Failure.AccessDenied;
        server.Time.Advance(TimeSpan.FromMinutes(56));
        var (status, problem) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Equal("aws_assume_role_failed", problem.GetProperty("code").GetString());
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.Contains("AccessDenied", detail);
        Assert.DoesNotContain(Secret, problem.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(KeyId, problem.ToString(), StringComparison.Ordinal);

        // STS's message names the IAM user behind the stored keys: the app or agent reading the connection is not
        // told it; Nexus's log is.
        const string StsWords = "user/nexus-broker is not authorized to perform: sts:AssumeRole";
        Assert.DoesNotContain(StsWords, problem.ToString(), StringComparison.Ordinal);
        Assert.Contains(StsWords, logs.All, StringComparison.Ordinal);

        var (bridgeStatus, bridgeBody, echoed) = await BridgeAsync(id, HttpMethod.Get, "/prod/items");
        Assert.Equal(HttpStatusCode.BadGateway, bridgeStatus);
        Assert.Equal("aws_assume_role_failed", JsonDocument.Parse(bridgeBody).RootElement.GetProperty("code").GetString());
        Assert.DoesNotContain(StsWords, bridgeBody, StringComparison.Ordinal);
        Assert.Null(echoed);

        // A definite refusal dropped the cached credentials (which had 4 minutes left): an STS 500 now does not
        // bring them back.
        sts.FailWith = FakeSts.Failure.ServerError;
        Assert.Equal(HttpStatusCode.BadGateway, (await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}")).Status);

        // Refusals are not remembered, transient failures only for a few seconds: once STS agrees again, so does Nexus.
        server.Time.Advance(AwsRoleCredentials.TransientRetryInterval + TimeSpan.FromSeconds(1));
        sts.FailWith = FakeSts.Failure.None;
        Assert.Equal(HttpStatusCode.OK, (await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}")).Status);

        // Keys that may not assume the role never make an active connection.
        var refused = await RequestAsync(await RegisterAsync("aws-denied-2", new() { ["role_arn"] = OtherRole }));
        var (captureStatus, captureProblem) = await SubmitAsync(refused);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, captureStatus);
        Assert.Equal("credentials_rejected", captureProblem.GetProperty("code").GetString());
        // Whoever submits the keys is told what STS said of them.
        Assert.Contains("AccessDenied", captureProblem.GetProperty("detail").GetString());
        Assert.Contains(StsWords, captureProblem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("pending", (await GatewayAsync(HttpMethod.Get, $"/v1/connections/{refused}")).Body.GetProperty("status").GetString());
    }

    [Fact]
    public async Task TheFakeStsRefusesAWrongSignatureAndNexusSaysSo()
    {
        // STS knows the key with another secret: the signature cannot match.
        sts.Allow(KeyId, "AnotherSecretAnotherSecretAnotherSecret0", Role);
        var id = await RequestAsync(await RegisterAsync("aws-badsig"));
        var (status, problem) = await SubmitAsync(id);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("SignatureDoesNotMatch", problem.GetProperty("detail").GetString());
        Assert.Equal("bad signature", sts.Calls.Single().Outcome);

        // A key STS does not know at all.
        var unknown = await RequestAsync(await RegisterAsync("aws-unknown"));
        (status, problem) = await SubmitAsync(unknown, keyId: "AKIAUNKNOWNKEY000000");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("InvalidClientTokenId", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task StsSlowIs504AndUnreachableIs502OnceTheCachedCredentialsAreAlmostExpired()
    {
        sts.Allow(KeyId, Secret, Role);
        var provider = await RegisterAsync("aws-flaky");
        var id = await ConnectAsync(provider);
        // 15 s of the first credentials are left: too little to keep handing them out while STS does not answer.
        server.Time.Advance(TimeSpan.FromMinutes(59) + TimeSpan.FromSeconds(45));

        sts.FailWith = FakeSts.Failure.Hang;
        var (status, problem) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.GatewayTimeout, status);
        Assert.Equal("upstream_timeout", problem.GetProperty("code").GetString());
        var (bridgeStatus, bridgeBody, _) = await BridgeAsync(id, HttpMethod.Get, "/prod/items");
        Assert.Equal(HttpStatusCode.GatewayTimeout, bridgeStatus);
        Assert.Equal("upstream_timeout", JsonDocument.Parse(bridgeBody).RootElement.GetProperty("code").GetString());
        // The Bridge got the remembered failure: an STS that hangs is not asked again on every request.
        Assert.Single(sts.Calls, c => c.Outcome == "hang");

        // STS moved to a port where nothing listens.
        sts.FailWith = FakeSts.Failure.None;
        int closedPort;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            closedPort = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        await server.AdminJsonAsync(HttpMethod.Patch, $"/v1/providers/{provider}",
            new { aws = new { service = "execute-api", region = "eu-west-1", role_arn = Role, sts_endpoint = $"http://127.0.0.1:{closedPort}" } });
        (status, problem) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Equal("upstream_unreachable", problem.GetProperty("code").GetString());
        (bridgeStatus, bridgeBody, _) = await BridgeAsync(id, HttpMethod.Get, "/prod/items");
        Assert.Equal(HttpStatusCode.BadGateway, bridgeStatus);
        Assert.Equal("upstream_unreachable", JsonDocument.Parse(bridgeBody).RootElement.GetProperty("code").GetString());
    }

    [Fact]
    public async Task AnUnparseableStsAnswerIs502AssumeRoleFailed()
    {
        sts.Allow(KeyId, Secret, Role);
        var id = await ConnectAsync(await RegisterAsync("aws-garbage"));

        // A 500 is transient, but 15 s of credentials are too few to keep serving.
        server.Time.Advance(TimeSpan.FromMinutes(59) + TimeSpan.FromSeconds(45));
        sts.FailWith = FakeSts.Failure.ServerError;
        var (status, problem) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Equal("aws_assume_role_failed", problem.GetProperty("code").GetString());
        Assert.Contains("500", problem.GetProperty("detail").GetString());

        // Past the expiry and the pause after a transient failure: a 200 that is not XML.
        server.Time.Advance(TimeSpan.FromMinutes(1));
        sts.FailWith = FakeSts.Failure.NotXml;
        (status, problem) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Equal("aws_assume_role_failed", problem.GetProperty("code").GetString());
        Assert.Equal(3, sts.CallCount);
    }

    [Fact]
    public async Task BadRoleSettingsAreRefusedAtRegistration()
    {
        async Task<JsonElement> Refused(Dictionary<string, string> aws, string field)
        {
            var body = new { name = "aws-bad", auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl, aws };
            var problem = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", body, HttpStatusCode.BadRequest);
            Assert.Equal("validation_failed", problem.GetProperty("code").GetString());
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
            return problem;
        }

        Dictionary<string, string> With(string key, string value) => new() { ["service"] = "execute-api", ["region"] = "eu-west-1", [key] = value };

        await Refused(With("role_arn", "arn:aws:iam::123:role/short-account"), "aws.role_arn");
        await Refused(With("role_arn", "arn:aws:iam::123456789012:user/not-a-role"), "aws.role_arn");
        await Refused(With("session_duration_seconds", "600"), "aws.session_duration_seconds");
        await Refused(With("session_duration_seconds", "43201"), "aws.session_duration_seconds");
        await Refused(With("session_duration_seconds", "one hour"), "aws.session_duration_seconds");
        await Refused(With("sts_endpoint", "ftp://sts.example.com"), "aws.sts_endpoint");
        await Refused(With("sts_endpoint", "http://sts.eu-west-1.amazonaws.com"), "aws.sts_endpoint");
        await Refused(With("sts_endpoint", "https://sts.eu-west-1.amazonaws.com/some/path"), "aws.sts_endpoint");
        await Refused(With("external_id", "x"), "aws.external_id");
        await Refused(With("rolearn", Role), "aws.rolearn");

        // A complete, valid set registers, and a bad PATCH is refused the same way.
        var good = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "aws-good", auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl,
            aws = new Dictionary<string, string>
            {
                ["service"] = "execute-api", ["region"] = "eu-west-1", ["role_arn"] = Role, ["external_id"] = "tenant-7",
                ["session_duration_seconds"] = "43200", ["sts_endpoint"] = "https://sts.eu-west-1.amazonaws.com",
            },
        }, HttpStatusCode.Created);
        Assert.Equal(Role, good.GetProperty("aws").GetProperty("role_arn").GetString());
        Assert.True(good.GetProperty("credential_schema").GetProperty("properties").TryGetProperty("role_arn", out var field));
        Assert.False(field.TryGetProperty("x-secret", out _));
        Assert.DoesNotContain("role_arn", good.GetProperty("credential_schema").GetProperty("required").EnumerateArray().Select(r => r.GetString()));
        var patched = await server.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/aws-good",
            new { aws = new { service = "execute-api", region = "eu-west-1", role_arn = "not-an-arn" } }, HttpStatusCode.BadRequest);
        Assert.True(patched.GetProperty("errors").TryGetProperty("aws.role_arn", out _));
    }

    [Fact]
    public async Task PlainHttpStsEndpointsFollowTheInsecureUpstreamPolicy()
    {
        await using var strictDb = await TestDatabase.CreateAsync();
        await using var strict = await NexusTestServer.StartAsync(strictDb, s => s["Nexus:AllowInsecureUpstreams"] = "false");
        var problem = await strict.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "aws-strict", auth_mode = "aws_sigv4", api_base_url = "https://api.example.test",
            aws = new { service = "execute-api", region = "eu-west-1", role_arn = Role, sts_endpoint = sts.BaseUrl },
        }, HttpStatusCode.BadRequest);
        Assert.Contains("AllowInsecureUpstreams", problem.GetProperty("errors").GetProperty("aws.sts_endpoint")[0].GetString());
    }

    [Fact]
    public void TheCatalogChecksRoleFieldsInTheAwsBlock()
    {
        var entry = ProviderCatalog.LoadEmbedded().Find("aws")!;
        Assert.Empty(ProviderCatalog.ValidateEntry("aws", entry));
        Assert.True(entry.CredentialSchema!.Value.GetProperty("properties").TryGetProperty("role_arn", out _));

        var withRole = entry with { Aws = new() { ["service"] = "{service}", ["region"] = "{region}", ["role_arn"] = Role, ["session_duration_seconds"] = "7200" } };
        Assert.Empty(ProviderCatalog.ValidateEntry("aws", withRole));
        var errors = ProviderCatalog.ValidateEntry("aws", entry with
        {
            Aws = new() { ["service"] = "{service}", ["region"] = "{region}", ["role_arn"] = "arn:aws:iam::1:role/x", ["session_duration_seconds"] = "60", ["sts_endpoint"] = "http://sts.example.com" },
        }).ToList();
        Assert.Contains(errors, e => e.StartsWith("aws.role_arn", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("aws.session_duration_seconds", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("aws.sts_endpoint", StringComparison.Ordinal));
        // An endpoint built from the entry's placeholders is fine once it is https.
        Assert.Empty(ProviderCatalog.ValidateEntry("aws", entry with { Aws = new() { ["service"] = "{service}", ["region"] = "{region}", ["sts_endpoint"] = "https://sts.{region}.amazonaws.com" } }));
    }

    [Fact]
    public async Task DeletingAConnectionDropsItsCachedCredentials()
    {
        sts.Allow(KeyId, Secret, Role);
        var id = await ConnectAsync(await RegisterAsync("aws-deleted"));
        var roles = server.Services.GetRequiredService<AwsRoleCredentials>();
        // The same role and keys the connection resolves to: served from the cache while the connection exists.
        var role = new AwsRole(Role, null, 3600, sts.BaseUrl + "/", "eu-west-1");
        var keys = new Nexus.Sdk.Aws.AwsCredentials(KeyId, Secret);
        Assert.Equal(sts.LastIssued.AccessKeyId, (await roles.GetAsync(id, role, keys, CancellationToken.None)).Credentials.AccessKeyId);
        Assert.Equal(1, sts.CallCount);

        Assert.Equal(HttpStatusCode.NoContent, (await GatewayAsync(HttpMethod.Delete, $"/v1/connections/{id}")).Status);
        await roles.GetAsync(id, role, keys, CancellationToken.None);
        Assert.Equal(2, sts.CallCount);
    }

    [Fact]
    public void SessionNamesAreTheConnectionIdWithinStsLimits()
    {
        Assert.Equal("nexus-conn_01JABC", StsClient.SessionName("conn_01JABC"));
        Assert.Equal("nexus-a-b", StsClient.SessionName("a b"));
        Assert.Equal(64, StsClient.SessionName(new string('x', 100)).Length);
    }

    [Fact]
    public async Task NeitherTheStoredNorTheTemporarySecretsAreLoggedOrStored()
    {
        const string token = "FwoGZXIvYXdzELONGLIVEDTOKENMARKER0042";
        sts.Allow(KeyId, Secret, Role, sessionToken: token);
        var provider = await RegisterAsync("aws-logs");
        var id = await ConnectAsync(provider, sessionToken: token);
        await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        await BridgeAsync(id, HttpMethod.Get, "/prod/items");
        sts.FailWith = FakeSts.Failure.AccessDenied;
        server.Time.Advance(TimeSpan.FromMinutes(56));
        Assert.Equal(HttpStatusCode.BadGateway, (await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}")).Status);
        var issued = sts.IssuedCredentials.Single();

        var logged = logs.All;
        Assert.Contains("AssumeRole", logged, StringComparison.Ordinal); // the capture works: Nexus logged the refusal
        foreach (var secret in new[] { Secret, token, issued.SecretAccessKey, issued.SessionToken })
        {
            Assert.DoesNotContain(secret, logged, StringComparison.Ordinal);
        }

        // Temporary credentials live in memory only: nothing of them is in the database.
        var rows = await db.DumpAllRowsAsync();
        var raw = Encoding.Latin1.GetString(db.RawSqliteBytes());
        foreach (var value in new[] { issued.AccessKeyId, issued.SecretAccessKey, issued.SessionToken, Secret, token })
        {
            Assert.DoesNotContain(value, rows, StringComparison.Ordinal);
            Assert.DoesNotContain(value, raw, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task RegisteringADeleteCallbackWhileADeleteRunsDoesNotBreakTheDelete()
    {
        var store = server.Services.GetRequiredService<Nexus.Server.Connections.ConnectionStore>();
        var seen = new List<string>();
        // AwsRoleCredentials registers when it is first resolved, which can happen while another request deletes.
        store.OnDeleted(id =>
        {
            seen.Add(id);
            store.OnDeleted(_ => { });
        });
        var connection = await RequestAsync(await RegisterAsync("aws-delete-race"));
        Assert.Equal(HttpStatusCode.NoContent, (await GatewayAsync(HttpMethod.Delete, $"/v1/connections/{connection}")).Status);
        Assert.Equal([connection], seen);
    }

    /// <summary>A provider row as the registry hands it out, for the resolution rules that need no server.</summary>
    private static Provider AwsProvider(Dictionary<string, string> aws) => new("aws-unit", null, "AWS", AuthModes.AwsSigV4,
        new ProviderConfig { ApiBaseUrl = "https://execute-api.eu-west-1.amazonaws.com", Aws = aws }, [], "", null, [], DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);

    private static readonly Dictionary<string, string> Keys = new() { ["access_key_id"] = KeyId, ["secret_access_key"] = Secret };

    private static Dictionary<string, string> KeysWith(string name, string value) => new(Keys) { [name] = value };

    [Fact]
    public async Task ARegionThatIsNotAnAwsRegionNeverBecomesPartOfTheStsHost()
    {
        // A custom schema may let any region through; without an sts_endpoint the STS host is built from it.
        sts.Allow(KeyId, Secret, Role);
        var provider = await RegisterAsync("aws-ssrf", new() { ["role_arn"] = Role, ["sts_endpoint"] = "" }, SchemaWithLooseRegion());
        foreach (var region in new[] { "evil.example/", "evil.example#", "eu-west-1.evil.example", "eu-west-1:8443", "us-east-1\u0661" })
        {
            var id = await RequestAsync(provider);
            var (status, problem) = await SubmitAsync(id, new() { ["region"] = region });
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Equal("validation_failed", problem.GetProperty("code").GetString());
            Assert.True(problem.GetProperty("errors").TryGetProperty("region", out _), problem.ToString());
            Assert.Equal("pending", (await GatewayAsync(HttpMethod.Get, $"/v1/connections/{id}")).Body.GetProperty("status").GetString());
        }

        Assert.Equal(0, sts.CallCount);

        // A row stored before the check (or by any other way in) is refused at read time, never a 500 or a call.
        var stored = await RequestAsync(provider);
        var store = server.Services.GetRequiredService<Nexus.Server.Connections.ConnectionStore>();
        var values = JsonSerializer.Serialize(KeysWith("region", "evil.example/"));
        var row = (await server.Services.GetRequiredService<Nexus.Server.Providers.ProviderRegistry>().FindAsync(provider, CancellationToken.None))!;
        await store.ActivateAsync(stored, row, store.Encrypt(Nexus.Server.Connections.ConnectionStore.AccessTokenColumn, stored, values), null, "credential", null, CancellationToken.None);
        var (readStatus, readProblem) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{stored}");
        Assert.Equal(HttpStatusCode.Conflict, readStatus);
        Assert.Equal("credentials_unusable", readProblem.GetProperty("code").GetString());
        var (bridgeStatus, bridgeBody, echoed) = await BridgeAsync(stored, HttpMethod.Get, "/prod/items");
        Assert.Equal(HttpStatusCode.Conflict, bridgeStatus);
        Assert.Equal("credentials_unusable", JsonDocument.Parse(bridgeBody).RootElement.GetProperty("code").GetString());
        Assert.Null(echoed);
        Assert.Equal(0, sts.CallCount);
    }

    [Fact]
    public void TheStsEndpointAndItsSigningRegionFollowTheRegionAndTheEndpointHost()
    {
        AwsRole RoleOf(Dictionary<string, string> aws, Dictionary<string, string>? values = null)
        {
            var stored = UpstreamCredentials.From(AwsProvider(aws), values ?? Keys);
            Assert.Null(stored.Problem);
            return stored.Role!;
        }

        var provider = new Dictionary<string, string> { ["service"] = "execute-api", ["region"] = "eu-west-1", ["role_arn"] = Role };

        // The default endpoint is the regional one; the China partition's is under amazonaws.com.cn.
        Assert.Equal(("https://sts.eu-west-1.amazonaws.com/", "eu-west-1"), (RoleOf(provider).StsEndpoint, RoleOf(provider).SigningRegion));
        var china = RoleOf(new(provider) { ["region"] = "cn-north-1" });
        Assert.Equal(("https://sts.cn-north-1.amazonaws.com.cn/", "cn-north-1"), (china.StsEndpoint, china.SigningRegion));
        var connectionsRegion = RoleOf(provider, KeysWith("region", "us-gov-west-1"));
        Assert.Equal(("https://sts.us-gov-west-1.amazonaws.com/", "us-gov-west-1"), (connectionsRegion.StsEndpoint, connectionsRegion.SigningRegion));

        // With sts_endpoint, the signature is for the endpoint's region, whatever the connection signs its API calls for.
        foreach (var (endpoint, region) in new[]
        {
            ("https://sts.ap-southeast-2.amazonaws.com", "ap-southeast-2"),
            ("https://sts.amazonaws.com", "us-east-1"),
            ("https://sts-fips.us-east-2.amazonaws.com", "us-east-2"),
            ("https://sts.cn-northwest-1.amazonaws.com.cn/", "cn-northwest-1"),
            ("https://vpce-0123456789abcdef0-abcdefgh.sts.eu-central-1.vpce.amazonaws.com", "eu-central-1"),
        })
        {
            var role = RoleOf(new(provider) { ["sts_endpoint"] = endpoint, ["sts_region"] = region });
            Assert.Equal(region, role.SigningRegion);
            Assert.Equal(region, RoleOf(new(provider) { ["sts_endpoint"] = endpoint }).SigningRegion);
            Assert.Equal("eu-west-1", ((UpstreamCredential.AwsSigV4)UpstreamCredentials.From(AwsProvider(new(provider) { ["sts_endpoint"] = endpoint }), Keys).Credential!).Region);
        }

        // A host whose name says nothing (a proxy, a test fake) takes sts_region, else the connection's region.
        Assert.Equal("us-east-1", RoleOf(new(provider) { ["sts_endpoint"] = "https://sts-proxy.corp.example", ["sts_region"] = "us-east-1" }).SigningRegion);
        Assert.Equal("eu-west-1", RoleOf(new(provider) { ["sts_endpoint"] = "https://sts-proxy.corp.example" }).SigningRegion);
        Assert.Equal("eu-north-1", RoleOf(new(provider) { ["sts_endpoint"] = "https://sts-proxy.corp.example" }, KeysWith("region", "eu-north-1")).SigningRegion);

        // Regions that are not: refused with the field at fault, never thrown.
        foreach (var bad in new[] { "evil.example/", "EU-WEST-1", "eu-west-1 ", "eu_west_1", "west-1", "eu-west-1.amazonaws.com", "" + new string('a', 60) + "-1" })
        {
            var stored = UpstreamCredentials.From(AwsProvider(provider), KeysWith("region", bad));
            Assert.Equal("region", stored.Problem?.Field);
            Assert.Null(stored.Credential);
            Assert.Null(UpstreamCredentials.From(AwsProvider(new(provider) { ["region"] = bad }), Keys).Credential);
        }

        Assert.Throws<ArgumentException>(() => AwsRoleConfig.DefaultStsEndpoint("evil.example/"));
    }

    [Fact]
    public async Task TheAssumeRoleCallIsSignedForTheStsEndpointsRegionNotTheConnections()
    {
        // The fake stands for an STS that serves us-east-1 behind a host whose name does not say so.
        sts.Region = "us-east-1";
        sts.Allow(KeyId, Secret, Role);
        var id = await ConnectAsync(await RegisterAsync("aws-sts-region", new() { ["role_arn"] = Role, ["sts_region"] = "us-east-1" }));
        Assert.Equal("us-east-1", sts.Calls.Single().Region);

        // The API calls are still signed for the connection's region.
        var (status, _, echoed) = await BridgeAsync(id, HttpMethod.Get, "/prod/items");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("eu-west-1", SigV4Check.Parse(echoed!.Headers["Authorization"])!.Region);

        // Signed for eu-west-1 (no sts_region), STS refuses the signature as the real one does.
        var refused = await RequestAsync(await RegisterAsync("aws-sts-region-wrong"));
        var (captureStatus, problem) = await SubmitAsync(refused);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, captureStatus);
        Assert.Contains("SignatureDoesNotMatch", problem.GetProperty("detail").GetString());
        Assert.Equal("wrong region", sts.Calls.Last().Outcome);

        // A region that contradicts a host that names its own is refused at registration.
        var contradiction = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "aws-sts-contradiction", auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl,
            aws = new { service = "execute-api", region = "eu-west-1", role_arn = Role, sts_endpoint = "https://sts.eu-west-1.amazonaws.com", sts_region = "us-east-1" },
        }, HttpStatusCode.BadRequest);
        Assert.True(contradiction.GetProperty("errors").TryGetProperty("aws.sts_region", out _));
        var badRegion = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "aws-bad-region", auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl, aws = new { service = "execute-api", region = "evil.example/" },
        }, HttpStatusCode.BadRequest);
        Assert.True(badRegion.GetProperty("errors").TryGetProperty("aws.region", out _));
    }

    [Fact]
    public async Task TokenReadsReportTheConnectionsRegionTheOneTheBridgeSignsWith()
    {
        sts.Region = "eu-central-1";
        sts.Allow(KeyId, Secret, Role);
        var withRole = await ConnectAsync(await RegisterAsync("aws-own-region", credentialSchema: SchemaWithLooseRegion()), new() { ["region"] = "eu-central-1" });
        var (_, token) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{withRole}");
        Assert.Equal("eu-central-1", token.GetProperty("strategy").GetProperty("region").GetString());
        var (_, _, echoed) = await BridgeAsync(withRole, HttpMethod.Get, "/prod/items");
        Assert.Equal("eu-central-1", SigV4Check.Parse(echoed!.Headers["Authorization"])!.Region);

        var plain = await RegisterAsync("aws-own-region-plain", new() { ["role_arn"] = "" }, SchemaWithLooseRegion());
        var keysOnly = await ConnectAsync(plain, new() { ["region"] = "ap-northeast-1" });
        (_, token) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{keysOnly}");
        Assert.Equal("ap-northeast-1", token.GetProperty("strategy").GetProperty("region").GetString());
        (_, _, echoed) = await BridgeAsync(keysOnly, HttpMethod.Get, "/prod/items");
        Assert.Equal("ap-northeast-1", SigV4Check.Parse(echoed!.Headers["Authorization"])!.Region);

        // Without a region of its own, the provider's.
        var providers = await ConnectAsync(plain);
        Assert.Equal("eu-west-1", (await GatewayAsync(HttpMethod.Get, $"/v1/token/{providers}")).Body.GetProperty("strategy").GetProperty("region").GetString());
    }

    [Fact]
    public async Task ATransientStsFailureDuringRenewalKeepsServingTheStillValidCredentials()
    {
        sts.Allow(KeyId, Secret, Role);
        var id = await ConnectAsync(await RegisterAsync("aws-outage"));
        var first = sts.LastIssued;

        // 4 minutes left, inside the renewal margin, and STS is down.
        server.Time.Advance(TimeSpan.FromMinutes(56));
        sts.FailWith = FakeSts.Failure.ServerError;
        var (status, token) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(first.AccessKeyId, token.GetProperty("credentials").GetProperty("access_key_id").GetString());
        Assert.Equal(first.Expiration.ToUnixTimeSeconds(), token.GetProperty("expires_at").GetInt64());
        Assert.Equal(2, sts.CallCount);

        // The Bridge signs with them too, and neither asks STS again for a few seconds.
        var (bridgeStatus, _, echoed) = await BridgeAsync(id, HttpMethod.Get, "/prod/items");
        Assert.Equal(HttpStatusCode.OK, bridgeStatus);
        Assert.Equal(first.AccessKeyId, SigV4Check.Parse(echoed!.Headers["Authorization"])!.AccessKeyId);
        Assert.Null(SigV4Check.Verify(echoed.Method, echoed.Path, echoed.Query, echoed.Headers, echoed.BodySha256, first.SecretAccessKey));
        await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => GatewayAsync(HttpMethod.Get, $"/v1/token/{id}")));
        Assert.Equal(2, sts.CallCount);

        // After the pause STS is tried again (an unreachable STS is as transient as a 500)…
        server.Time.Advance(AwsRoleCredentials.TransientRetryInterval + TimeSpan.FromSeconds(1));
        sts.FailWith = FakeSts.Failure.Throttling;
        Assert.Equal(first.AccessKeyId, (await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}")).Body.GetProperty("credentials").GetProperty("access_key_id").GetString());
        Assert.Equal(3, sts.CallCount);

        // …and once it answers, the new credentials replace the old.
        server.Time.Advance(AwsRoleCredentials.TransientRetryInterval + TimeSpan.FromSeconds(1));
        sts.FailWith = FakeSts.Failure.None;
        (status, token) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(sts.LastIssued.AccessKeyId, token.GetProperty("credentials").GetProperty("access_key_id").GetString());
        Assert.NotEqual(first.AccessKeyId, sts.LastIssued.AccessKeyId);
        Assert.Equal(4, sts.CallCount);
    }

    [Fact]
    public async Task StsThrottlingIs503WithRetryAfterWhenNoValidCredentialsAreLeft()
    {
        sts.Allow(KeyId, Secret, Role);
        var id = await ConnectAsync(await RegisterAsync("aws-throttled"));
        server.Time.Advance(TimeSpan.FromMinutes(61));
        sts.FailWith = FakeSts.Failure.Throttling;

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/token/{id}");
        request.Headers.Add("X-API-Key", server.ApiKey);
        using var response = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(5), response.Headers.RetryAfter?.Delta);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("aws_sts_throttled", problem.GetProperty("code").GetString());
        Assert.Contains("Throttling", problem.GetProperty("detail").GetString());

        var (bridgeStatus, bridgeBody, _) = await BridgeAsync(id, HttpMethod.Get, "/prod/items");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, bridgeStatus);
        Assert.Equal("aws_sts_throttled", JsonDocument.Parse(bridgeBody).RootElement.GetProperty("code").GetString());
        Assert.Equal(2, sts.CallCount);
    }

    [Fact]
    public async Task ExpiredEntriesAreSweptAndForgetOnlyDropsItsOwnConnection()
    {
        sts.Allow(KeyId, Secret, Role);
        var roles = server.Services.GetRequiredService<AwsRoleCredentials>();
        var keys = new Nexus.Sdk.Aws.AwsCredentials(KeyId, Secret);
        var role = new AwsRole(Role, null, 900, sts.BaseUrl + "/", "eu-west-1");
        var longer = role with { DurationSeconds = 3600 };
        await roles.GetAsync("conn_a", role, keys, CancellationToken.None);
        await roles.GetAsync("conn_b", role, keys, CancellationToken.None);
        await roles.GetAsync("conn_b", longer, keys, CancellationToken.None);
        Assert.Equal(3, roles.Count);

        roles.Forget("conn_a");
        Assert.Equal(2, roles.Count);

        // The 900 s credentials have expired, the 3600 s ones have not: only the first go.
        server.Time.Advance(TimeSpan.FromMinutes(16));
        roles.Sweep();
        Assert.Equal(1, roles.Count);
        await roles.GetAsync("conn_b", longer, keys, CancellationToken.None);
        Assert.Equal(3, sts.CallCount);

        server.Time.Advance(TimeSpan.FromMinutes(50));
        roles.Sweep();
        Assert.Equal(0, roles.Count);
    }

    [Fact]
    public async Task RoleChainingAsksForAtMostOneHour()
    {
        const string token = "FwoGZXIvYXdzELONGLIVEDSESSIONTOKEN+/=";
        sts.Allow(KeyId, Secret, Role, sessionToken: token);
        var provider = await RegisterAsync("aws-chain-clamp", new() { ["role_arn"] = Role, ["session_duration_seconds"] = "7200" });
        var id = await ConnectAsync(provider, sessionToken: token);
        var call = sts.Calls.Single();
        Assert.Equal("3600", call.Form["DurationSeconds"]);
        Assert.Equal("issued", call.Outcome);
        Assert.Equal(HttpStatusCode.OK, (await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}")).Status);

        // Long-lived keys get the duration asked for.
        const string otherKey = "AKIAIOSFODNN7OTHERKY";
        sts.Allow(otherKey, Secret, Role);
        var id2 = await RequestAsync(provider);
        var (status, _) = await SubmitAsync(id2, keyId: otherKey);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("7200", sts.Calls.Last().Form["DurationSeconds"]);
    }

    [Fact]
    public async Task TheFakeStsRefusesMoreThanAnHourForChainedRoles()
    {
        const string token = "FwoGZXIvYXdzELONGLIVEDSESSIONTOKEN+/=";
        sts.Allow(KeyId, Secret, Role, sessionToken: token);
        var roles = server.Services.GetRequiredService<AwsRoleCredentials>();
        // Straight to the cache, which clamps; the role record says 7200 and the keys are temporary.
        var assumed = await roles.GetAsync("conn_chain", new AwsRole(Role, null, 7200, sts.BaseUrl + "/", "eu-west-1"), new Nexus.Sdk.Aws.AwsCredentials(KeyId, Secret, token), CancellationToken.None);
        Assert.Equal("3600", sts.Calls.Single().Form["DurationSeconds"]);
        Assert.True(assumed.Expiration - server.Time.GetUtcNow() <= TimeSpan.FromSeconds(3600));

        // And the fake models the cap: asked directly for more, it refuses.
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, sts.BaseUrl + "/")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["Action"] = "AssumeRole", ["Version"] = "2011-06-15", ["RoleArn"] = Role, ["RoleSessionName"] = "nexus-direct", ["DurationSeconds"] = "7200",
            }),
        };
        await Nexus.Sdk.Aws.SigV4Signer.SignAsync(request, new Nexus.Sdk.Aws.AwsCredentials(KeyId, Secret, token), "eu-west-1", "sts", DateTimeOffset.UtcNow);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("ValidationError", await response.Content.ReadAsStringAsync());
        Assert.Equal("chained duration", sts.Calls.Last().Outcome);
    }

    [Fact]
    public async Task AnStsEndpointWithAPathIsRefusedWhenUsedNotOnlyAtRegistration()
    {
        sts.Allow(KeyId, Secret, Role);
        var roles = server.Services.GetRequiredService<AwsRoleCredentials>();
        foreach (var endpoint in new[] { sts.BaseUrl + "/some/path", sts.BaseUrl + "/?Action=Other", "http://user:pw@127.0.0.1:1/", "http://sts.example.com/" })
        {
            var e = await Assert.ThrowsAsync<AwsRoleException>(async () =>
                await roles.GetAsync("conn_path", new AwsRole(Role, null, 3600, endpoint, "eu-west-1"), new Nexus.Sdk.Aws.AwsCredentials(KeyId, Secret), CancellationToken.None));
            Assert.Equal("aws_assume_role_failed", e.Code);
            Assert.Contains("is not usable", e.Detail);
        }

        Assert.Equal(0, sts.CallCount);
    }

    [Fact]
    public void AnAwsRoleNeverPrintsItsExternalId()
    {
        var role = new AwsRole(Role, "tenant-secret-42", 3600, "https://sts.eu-west-1.amazonaws.com/", "eu-west-1");
        Assert.DoesNotContain("tenant-secret-42", role.ToString(), StringComparison.Ordinal);
        Assert.Contains(Role, role.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheSharedAssumeRoleCallDoesNotRunInTheFirstCallersTraceContext()
    {
        sts.Allow(KeyId, Secret, Role);
        var roles = server.Services.GetRequiredService<AwsRoleCredentials>();
        var port = new Uri(sts.BaseUrl).Port;
        var outgoing = new System.Collections.Concurrent.ConcurrentQueue<System.Diagnostics.Activity>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == "System.Net.Http",
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStarted = outgoing.Enqueue,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);

        // The call is shared by every caller that needs the credentials; the first one's trace is not its parent.
        using (var caller = new System.Diagnostics.Activity("first caller").Start())
        {
            await roles.GetAsync("conn_trace", new AwsRole(Role, null, 3600, sts.BaseUrl + "/", "eu-west-1"), new Nexus.Sdk.Aws.AwsCredentials(KeyId, Secret), CancellationToken.None);
            var call = Assert.Single(outgoing, a => Equals(a.GetTagItem("server.port"), port));
            Assert.NotEqual(caller.TraceId, call.TraceId);
            Assert.Null(call.Parent);
        }
    }
}
