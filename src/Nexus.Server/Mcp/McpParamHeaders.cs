using System.Globalization;
using System.Text.Json;

namespace Nexus.Server.Mcp;

/// <summary>
/// MCP 2026-07-28, server/tools "x-mcp-header" and Streamable HTTP "Custom Headers from Tool Parameters": a tool's input
/// schema may mark arguments (string, integer or boolean properties reached from the root through <c>properties</c>
/// only) whose values the client mirrors into <c>Mcp-Param-{name}</c> headers of its <c>tools/call</c>, so that
/// gateways can route on them; the server refuses a call whose headers disagree with its body (-32020). A tool whose
/// annotations break the rules is dropped from the listing (a Streamable HTTP client MUST).
/// </summary>
internal static class McpParamHeaders
{
    /// <summary>The prefix of every mirrored argument's header.</summary>
    public const string Prefix = "Mcp-Param-";

    /// <summary>The largest integer a header may carry (the JavaScript safe range, ±(2^53 − 1)).</summary>
    private const long MaxSafeInteger = 9_007_199_254_740_991;

    /// <summary>
    /// Bounds on what one tool may ask for, so that a server's listing cannot make Nexus keep (and send) without end:
    /// headers per tool, characters in a header's name, properties in a path and characters in each. A tool past them
    /// is invalid, as one breaking the revision's rules is.
    /// </summary>
    internal const int MaxHeaders = 32, MaxNameLength = 128, MaxDepth = 16, MaxPropertyLength = 256;

    /// <summary>One mirrored argument: its path from the arguments' root (property names) and its header's name.</summary>
    public sealed record Mirrored(string[] Path, string Header);

    /// <summary>A tool's mirrored arguments, or why its annotations are invalid (then the tool is not offered).</summary>
    public static (IReadOnlyList<Mirrored> Mirrored, string? Invalid) Read(JsonElement inputSchema)
    {
        var found = new List<Mirrored>();
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        string? invalid = null;
        Walk(inputSchema, []);
        return (found, invalid);

        // path: the property names from the root, null once off the properties chain (items, oneOf, $defs…).
        void Walk(JsonElement node, string[]? path)
        {
            if (invalid is not null)
            {
                return;
            }

            if (node.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in node.EnumerateArray())
                {
                    Walk(item, null);
                }

                return;
            }

            if (node.ValueKind != JsonValueKind.Object)
            {
                return;
            }

            foreach (var member in node.EnumerateObject())
            {
                switch (member.Name)
                {
                    case "x-mcp-header":
                        invalid ??= Check(node, member.Value, path);
                        break;
                    case "properties" when member.Value.ValueKind == JsonValueKind.Object:
                        foreach (var property in member.Value.EnumerateObject())
                        {
                            Walk(property.Value, path is null || path.Length >= MaxDepth || property.Name.Length > MaxPropertyLength ? null : [.. path, property.Name]);
                        }

                        break;
                    case "default" or "examples" or "const" or "enum":
                        break; // values, not schemas
                    default:
                        Walk(member.Value, null);
                        break;
                }
            }
        }

        string? Check(JsonElement property, JsonElement header, string[]? path)
        {
            if (path is not { Length: > 0 })
            {
                return $"x-mcp-header is on a schema that is not a property reached through properties alone (or one deeper than {MaxDepth}, or named longer than {MaxPropertyLength})";
            }

            if (header.ValueKind != JsonValueKind.String || header.GetString() is not { Length: > 0 and <= MaxNameLength } name || !name.All(IsTokenChar))
            {
                return $"x-mcp-header of '{string.Join('.', path)}' is not a header name (an RFC 9110 token of at most {MaxNameLength} characters)";
            }

            // "number" is not allowed: a float's text is not one value (1.0, 1, 1e0). A nullable one (["string", "null"])
            // is its type: a null argument is not mirrored.
            if (!property.TryGetProperty("type", out var type) || TypeOf(type) is not ("string" or "integer" or "boolean"))
            {
                return $"x-mcp-header '{name}' is on '{string.Join('.', path)}', which is not of type string, integer or boolean";
            }

            if (!names.Add(name))
            {
                return $"x-mcp-header '{name}' is used twice";
            }

            if (names.Count > MaxHeaders)
            {
                return $"more than {MaxHeaders} arguments are mirrored into headers";
            }

            found.Add(new Mirrored(path, name));
            return null;
        }
    }

    /// <summary>A schema's type: its "type" string, or the one type beside "null" in a type array; else null.</summary>
    private static string? TypeOf(JsonElement type)
    {
        if (type.ValueKind == JsonValueKind.String)
        {
            return type.GetString();
        }

        if (type.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var types = type.EnumerateArray().Where(t => !(t.ValueKind == JsonValueKind.String && t.GetString() == "null")).ToList();
        return types is [{ ValueKind: JsonValueKind.String } only] ? only.GetString() : null;
    }

    /// <summary>
    /// The headers for a call's arguments: each mirrored argument present and not null, a string as it is (or in its
    /// base64 form, as Mcp-Name), an integer in decimal, a boolean as true or false. An argument of another type is not
    /// mirrored: the server refuses it for its type anyway.
    /// </summary>
    public static IEnumerable<KeyValuePair<string, string>> For(IReadOnlyList<Mirrored> mirrored, JsonElement arguments)
    {
        foreach (var argument in mirrored)
        {
            var value = arguments;
            foreach (var name in argument.Path)
            {
                if (value.ValueKind != JsonValueKind.Object || !value.TryGetProperty(name, out value))
                {
                    value = default;
                    break;
                }
            }

            string? text = value.ValueKind switch
            {
                JsonValueKind.String => McpRemoteCalls.HeaderValue(value.GetString()!),
                JsonValueKind.True => "true",
                JsonValueKind.False => "false",
                // 42.0 is the integer 42 (servers compare integers as numbers).
                JsonValueKind.Number when value.TryGetInt64(out var whole) && whole is >= -MaxSafeInteger and <= MaxSafeInteger => whole.ToString(CultureInfo.InvariantCulture),
                JsonValueKind.Number when value.TryGetDouble(out var number) && number is >= -MaxSafeInteger and <= MaxSafeInteger && number == Math.Floor(number)
                    => ((long)number).ToString(CultureInfo.InvariantCulture),
                _ => null,
            };
            if (text is not null)
            {
                yield return new(Prefix + argument.Header, text);
            }
        }
    }

    /// <summary>Whether two readings mirror the same arguments into the same headers.</summary>
    public static bool Same(IReadOnlyList<Mirrored> a, IReadOnlyList<Mirrored> b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.Header == p.Second.Header && p.First.Path.SequenceEqual(p.Second.Path));

    /// <summary>RFC 9110 §5.6.2 tchar.</summary>
    private static bool IsTokenChar(char c) =>
        c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9')
            or '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~';
}
