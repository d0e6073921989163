using System.Collections;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Nexus.Server.Hosting;

/// <summary>
/// Reads a JSON request body and turns every way it can be wrong into a 4xx problem, never a 500. Every string and
/// property name is checked first (<see cref="InputText"/>: no NUL, no lone surrogate, no invalid UTF-8), so no handler
/// and no database ever sees one. Errors name the field by its JSON path and the JSON type it needs, in the API's
/// words: the serializer's own messages name .NET types and are never passed on.
/// </summary>
internal static class JsonBody
{
    public static async Task<(T? Value, ProblemHttpResult? Error)> ReadAsync<T>(HttpRequest request, CancellationToken ct)
        where T : class
    {
        if (!request.HasJsonContentType())
        {
            return (null, Problems.Typed(ProblemCatalog.UnsupportedMediaType, "Send Content-Type: application/json."));
        }

        byte[] body;
        try
        {
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer, ct);
            body = buffer.ToArray();
        }
        catch (BadHttpRequestException e)
        {
            return (null, Problems.Typed(ProblemCatalog.BadRequest,
                e.StatusCode == StatusCodes.Status413PayloadTooLarge ? "The request body is too large." : "The request body ended early or was malformed.",
                title: "The request body could not be read.", status: e.StatusCode));
        }

        var options = request.HttpContext.RequestServices.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        var (value, refusal) = Parse<T>(body, options);
        return refusal is null ? (value, null) : (null, Invalid(refusal));
    }

    /// <summary>
    /// The checks and the deserialization of <see cref="ReadAsync"/> for JSON from elsewhere (a file given to a command):
    /// the value, or what is wrong in the API's words.
    /// </summary>
    public static (T? Value, string? Error) Parse<T>(byte[] body, JsonSerializerOptions options)
        where T : class
    {
        if (Check(body) is { } refusal)
        {
            return (null, refusal);
        }

        try
        {
            var value = JsonSerializer.Deserialize<T>(body, options);
            return value is null ? (null, "The request body is empty or null.") : (value, null);
        }
        catch (JsonException e)
        {
            return (null, Describe<T>(e, options));
        }
    }

    private static ProblemHttpResult Invalid(string detail) => Problems.Typed(ProblemCatalog.InvalidJson, detail);

    /// <summary>Null when the body is well-formed JSON whose strings are all clean text; otherwise what is wrong.</summary>
    internal static string? Check(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
        {
            return "The request body is empty.";
        }

        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 64 });
        // The JSON path of the current position, for messages; at most MaxDepth levels.
        var path = new List<string>();
        var arrayIndexes = new List<int>();
        string? pendingProperty = null;
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        string name;
                        try
                        {
                            name = reader.GetString()!;
                        }
                        catch (InvalidOperationException)
                        {
                            return $"A property name in {PathText(path)} is not valid UTF-8 text.";
                        }

                        if (!InputText.IsClean(name))
                        {
                            return $"A property name in {PathText(path)} contains a NUL character or an unpaired UTF-16 surrogate.";
                        }

                        pendingProperty = name;
                        continue;
                    case JsonTokenType.String:
                        var at = Here(path, arrayIndexes, pendingProperty);
                        try
                        {
                            if (!InputText.IsClean(reader.GetString()))
                            {
                                return $"{Named(at)} contains a NUL character or an unpaired UTF-16 surrogate.";
                            }
                        }
                        catch (InvalidOperationException)
                        {
                            return $"{Named(at)} is not valid UTF-8 text (or holds an unpaired UTF-16 surrogate).";
                        }

                        break;
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        path.Add(Here(path, arrayIndexes, pendingProperty));
                        arrayIndexes.Add(reader.TokenType == JsonTokenType.StartArray ? 0 : -1);
                        pendingProperty = null;
                        continue;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        path.RemoveAt(path.Count - 1);
                        arrayIndexes.RemoveAt(arrayIndexes.Count - 1);
                        break;
                }

                // A value (or a container that just ended) took a slot in the enclosing array.
                pendingProperty = null;
                if (arrayIndexes.Count > 0 && arrayIndexes[^1] >= 0)
                {
                    arrayIndexes[^1]++;
                }
            }
        }
        catch (JsonException e)
        {
            return $"The request body is not valid JSON: a syntax error or an early end at line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}.";
        }

        return null;
    }

    private static string Here(List<string> path, List<int> arrayIndexes, string? property)
    {
        var parent = path.Count == 0 ? "" : path[^1];
        if (property is not null)
        {
            return parent.Length == 0 ? Printable(property) : $"{parent}.{Printable(property)}";
        }

        return arrayIndexes.Count > 0 && arrayIndexes[^1] >= 0 ? $"{parent}[{arrayIndexes[^1]}]" : parent;
    }

    private static string Named(string at) => at.Length == 0 ? "The request body" : $"'{at}'";

    private static string PathText(List<string> path) => path.Count == 0 || path[^1].Length == 0 ? "the top-level object" : $"'{path[^1]}'";

    private static string Printable(string name) =>
        name.Length <= 64 && name.All(c => c is >= ' ' and < '\u007f' and not '\'') ? name : "(unprintable)";

    /// <summary>The serializer's complaint, said in the API's words: which field, and what JSON it takes.</summary>
    private static string Describe<T>(JsonException e, JsonSerializerOptions options)
    {
        var message = e.Message;
        var path = e.Path is null or "$" ? "" : e.Path.StartsWith("$.", StringComparison.Ordinal) ? e.Path[2..] : e.Path.TrimStart('$');

        if (message.Contains("could not be mapped to any .NET member", StringComparison.Ordinal) && Quoted(message, "The JSON property '") is { } unknown)
        {
            var field = path.Length > 0 && !path.EndsWith(unknown, StringComparison.Ordinal) ? $"{path}.{unknown}" : path.Length > 0 ? path : unknown;
            return $"'{Printable(field)}' is not a field of this request.";
        }

        if (message.Contains("missing required properties", StringComparison.Ordinal))
        {
            return "Required fields are missing; see the API documentation for this endpoint.";
        }

        var expected = Expected(typeof(T), path, options);
        if (path.Length == 0)
        {
            return $"The request body must be {expected ?? "a JSON object"}.";
        }

        return expected is null ? $"'{Printable(path)}' does not have a value this field accepts." : $"'{Printable(path)}' must be {expected}.";
    }

    private static string? Quoted(string message, string prefix)
    {
        var start = message.IndexOf(prefix, StringComparison.Ordinal);
        if (start < 0)
        {
            return null;
        }

        start += prefix.Length;
        var end = message.IndexOf('\'', start);
        return end > start ? message[start..end] : null;
    }

    /// <summary>What JSON the property at <paramref name="path"/> of <paramref name="root"/> takes, or null when unknown.</summary>
    internal static string? Expected(Type root, string path, JsonSerializerOptions options)
    {
        var type = root;
        foreach (var segment in Segments(path))
        {
            type = Nullable.GetUnderlyingType(type) ?? type;
            if (segment.Index)
            {
                type = ElementType(type);
            }
            else if (DictionaryValueType(type) is { } valueType)
            {
                type = valueType;
            }
            else
            {
                type = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                    .FirstOrDefault(p => (p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? options.PropertyNamingPolicy?.ConvertName(p.Name) ?? p.Name) == segment.Name)
                    ?.PropertyType;
            }

            if (type is null)
            {
                return null;
            }
        }

        type = Nullable.GetUnderlyingType(type) ?? type;
        return type switch
        {
            _ when type == typeof(string) || type == typeof(char) || type == typeof(Guid) || type == typeof(DateTime) || type == typeof(DateTimeOffset) || type == typeof(Uri) => "a string",
            _ when type == typeof(bool) => "true or false",
            _ when type == typeof(int) || type == typeof(long) || type == typeof(short) || type == typeof(byte) || type == typeof(uint) || type == typeof(ulong) => "a whole number",
            _ when type == typeof(double) || type == typeof(float) || type == typeof(decimal) => "a number",
            _ when type == typeof(JsonElement) || type == typeof(JsonNode) || type == typeof(JsonValue) || type == typeof(object) => null,
            _ when type == typeof(JsonArray) || (type != typeof(string) && ElementType(type) is not null && DictionaryValueType(type) is null) => "an array",
            _ when type == typeof(JsonObject) || DictionaryValueType(type) is not null || (type.IsClass && !type.IsEnum) => "an object",
            _ => null,
        };
    }

    private static IEnumerable<(string Name, bool Index)> Segments(string path)
    {
        var i = 0;
        while (i < path.Length)
        {
            if (path[i] == '.')
            {
                i++;
            }
            else if (path[i] == '[')
            {
                var end = path.IndexOf(']', i);
                if (end < 0)
                {
                    yield break;
                }

                var inner = path[(i + 1)..end];
                // ['odd name'] is a property; [3] is an index.
                yield return inner.StartsWith('\'') ? (inner.Trim('\''), false) : ("", true);
                i = end + 1;
            }
            else
            {
                var end = path.IndexOfAny(['.', '['], i);
                end = end < 0 ? path.Length : end;
                yield return (path[i..end], false);
                i = end;
            }
        }
    }

    private static Type? ElementType(Type type)
    {
        if (type.IsArray)
        {
            return type.GetElementType();
        }

        if (type == typeof(string) || !typeof(IEnumerable).IsAssignableFrom(type))
        {
            return null;
        }

        return type.IsGenericType ? type.GetGenericArguments()[^1] : typeof(object);
    }

    private static Type? DictionaryValueType(Type type) =>
        type.IsGenericType && type.GetInterfaces().Append(type).Any(i => i.IsGenericType && i.GetGenericTypeDefinition() is var d && (d == typeof(IDictionary<,>) || d == typeof(IReadOnlyDictionary<,>)))
            ? type.GetGenericArguments()[^1]
            : null;
}
