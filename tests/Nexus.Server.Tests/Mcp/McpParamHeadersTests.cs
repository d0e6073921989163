using System.Text.Json;
using Nexus.Server.Mcp;

namespace Nexus.Server.Tests.Mcp;

/// <summary>MCP 2026-07-28, x-mcp-header: which arguments a tool mirrors into Mcp-Param-* headers, and how their values are written.</summary>
public sealed class McpParamHeadersTests
{
    private static JsonElement Json(string json) => JsonDocument.Parse(json).RootElement;

    [Fact]
    public void ArgumentsReachedThroughPropertiesAloneAreMirroredNestedOnesByTheirPath()
    {
        var (mirrored, invalid) = McpParamHeaders.Read(Json("""
            {"type":"object","properties":{
              "region":{"type":"string","x-mcp-header":"Region"},
              "target":{"type":"object","properties":{"id":{"type":"integer","x-mcp-header":"Target-Id"}}},
              "properties":{"type":"boolean","x-mcp-header":"Flag","default":{"x-mcp-header":"not a schema"}},
              "plain":{"type":"string"}}}
            """));

        Assert.Null(invalid);
        Assert.Equal(["region", "target.id", "properties"], mirrored.Select(m => string.Join('.', m.Path)));
        Assert.Equal(["Region", "Target-Id", "Flag"], mirrored.Select(m => m.Header));
    }

    [Theory]
    [InlineData("""{"type":"object","properties":{"v":{"type":"number","x-mcp-header":"V"}}}""", "not of type string, integer or boolean")]
    [InlineData("""{"type":"object","properties":{"v":{"x-mcp-header":"V"}}}""", "not of type string, integer or boolean")]
    [InlineData("""{"type":"object","properties":{"v":{"type":"array","items":{"type":"string","x-mcp-header":"V"}}}}""", "not a property reached through properties alone")]
    [InlineData("""{"type":"object","properties":{"v":{"anyOf":[{"type":"string","x-mcp-header":"V"}]}}}""", "not a property reached through properties alone")]
    [InlineData("""{"type":"object","$defs":{"d":{"type":"object","properties":{"v":{"type":"string","x-mcp-header":"V"}}}}}""", "not a property reached through properties alone")]
    [InlineData("""{"type":"object","x-mcp-header":"Root"}""", "not a property reached through properties alone")]
    [InlineData("""{"type":"object","properties":{"v":{"type":"string","x-mcp-header":"Two words"}}}""", "is not a header name")]
    [InlineData("""{"type":"object","properties":{"v":{"type":"string","x-mcp-header":""}}}""", "is not a header name")]
    [InlineData("""{"type":"object","properties":{"v":{"type":"string","x-mcp-header":"Région"}}}""", "is not a header name")]
    [InlineData("""{"type":"object","properties":{"v":{"type":"string","x-mcp-header":7}}}""", "is not a header name")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string","x-mcp-header":"Same"},"b":{"type":"string","x-mcp-header":"SAME"}}}""", "is used twice")]
    [InlineData("""{"type":"object","properties":{"v":{"type":["string","integer"],"x-mcp-header":"V"}}}""", "not of type string, integer or boolean")]
    public void AnnotationsThatBreakTheRulesMakeTheToolInvalid(string schema, string why)
    {
        var (_, invalid) = McpParamHeaders.Read(Json(schema));
        Assert.NotNull(invalid);
        Assert.Contains(why, invalid, StringComparison.Ordinal);
    }

    [Fact]
    public void ANullableStringIsMirroredLikeAString()
    {
        var (mirrored, invalid) = McpParamHeaders.Read(Json("""{"type":"object","properties":{"region":{"type":["string","null"],"x-mcp-header":"Region"}}}"""));
        Assert.Null(invalid);
        Assert.Equal("Region", Assert.Single(mirrored).Header);
    }

    [Fact]
    public void AToolCannotAskForMoreThanTheBounds()
    {
        string Schema(int headers, int nameLength = 1, int depth = 1)
        {
            var properties = string.Join(',', Enumerable.Range(0, headers).Select(i => $"\"p{i}\":{{\"type\":\"string\",\"x-mcp-header\":\"{new string('H', nameLength)}{i}\"}}"));
            var schema = $"{{\"type\":\"object\",\"properties\":{{{properties}}}}}";
            for (var level = 1; level < depth; level++)
            {
                schema = $"{{\"type\":\"object\",\"properties\":{{\"n\":{schema}}}}}";
            }

            return schema;
        }

        Assert.Null(McpParamHeaders.Read(Json(Schema(McpParamHeaders.MaxHeaders))).Invalid);
        Assert.Contains("more than", McpParamHeaders.Read(Json(Schema(McpParamHeaders.MaxHeaders + 1))).Invalid, StringComparison.Ordinal);
        Assert.Null(McpParamHeaders.Read(Json(Schema(1, nameLength: McpParamHeaders.MaxNameLength - 1))).Invalid);
        Assert.Contains("is not a header name", McpParamHeaders.Read(Json(Schema(1, nameLength: McpParamHeaders.MaxNameLength))).Invalid, StringComparison.Ordinal);
        Assert.Null(McpParamHeaders.Read(Json(Schema(1, depth: McpParamHeaders.MaxDepth))).Invalid);
        Assert.Contains("deeper than", McpParamHeaders.Read(Json(Schema(1, depth: McpParamHeaders.MaxDepth + 1))).Invalid, StringComparison.Ordinal);
    }

    [Fact]
    public void ValuesAreWrittenAsTheSpecSaysAndAbsentNullOrMistypedOnesAreLeftOut()
    {
        var (mirrored, _) = McpParamHeaders.Read(Json("""
            {"type":"object","properties":{
              "s":{"type":"string","x-mcp-header":"S"}, "u":{"type":"string","x-mcp-header":"U"}, "p":{"type":"string","x-mcp-header":"P"},
              "i":{"type":"integer","x-mcp-header":"I"}, "f":{"type":"integer","x-mcp-header":"F"}, "big":{"type":"integer","x-mcp-header":"Big"},
              "t":{"type":"boolean","x-mcp-header":"T"}, "n":{"type":"string","x-mcp-header":"N"}, "o":{"type":"string","x-mcp-header":"O"},
              "min":{"type":"integer","x-mcp-header":"Min"}, "neg":{"type":"integer","x-mcp-header":"Neg"},
              "missing":{"type":"string","x-mcp-header":"Missing"},
              "deep":{"type":"object","properties":{"x":{"type":"integer","x-mcp-header":"Deep"}}}}}
            """));

        var headers = McpParamHeaders.For(mirrored, Json("""
            {"s":"eu-west-1","u":"Hello, 世界","p":" padded","i":-42,"f":42.0,"big":9007199254740992,"t":false,"n":null,"o":{"a":1},"deep":{"x":7},
             "min":-9223372036854775808,"neg":-9007199254740991}
            """)).ToDictionary();

        Assert.Equal(new Dictionary<string, string>
        {
            ["Mcp-Param-S"] = "eu-west-1",
            ["Mcp-Param-U"] = "=?base64?SGVsbG8sIOS4lueVjA==?=", // the spec's own example
            ["Mcp-Param-P"] = "=?base64?IHBhZGRlZA==?=",
            ["Mcp-Param-I"] = "-42",
            ["Mcp-Param-F"] = "42",
            ["Mcp-Param-T"] = "false",
            ["Mcp-Param-Deep"] = "7",
            ["Mcp-Param-Neg"] = "-9007199254740991",
        }, headers);
    }
}
