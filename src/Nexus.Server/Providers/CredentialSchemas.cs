using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Nexus.Server.Providers;

/// <summary>One field of a credential form, read from a provider's credential_schema.</summary>
internal sealed record CredentialField(string Name, string Title, string? Description, string? Pattern, bool Required, bool Secret, int? MaxLength);

/// <summary>
/// The credential schemas of api_key, basic_auth and aws_sigv4 providers: a small, strict subset of JSON Schema
/// (draft 2020-12) that a form can render and a server can enforce: an object of string properties with title,
/// description, pattern, minLength/maxLength, required, and the "x-secret" annotation for masked fields.
/// </summary>
internal static class CredentialSchemas
{
    public const int MaxFieldLength = 8192;

    /// <summary>
    /// Patterns are admin-set and run on user input, so they run on the linear-time engine: a pattern such as
    /// ^(a+)+$ cannot backtrack for seconds per request. Constructs it lacks (backreferences, lookarounds) are
    /// refused at registration; the timeout only guards rows stored before that check.
    /// </summary>
    private const RegexOptions PatternOptions = RegexOptions.NonBacktracking | RegexOptions.CultureInvariant;

    private static readonly TimeSpan PatternTimeout = TimeSpan.FromMilliseconds(250);

    public static JsonObject Default(string mode) => mode switch
    {
        AuthModes.ApiKey => Schema(["api_key"], ("api_key", "API key", true, null)),
        AuthModes.BasicAuth => Schema(["username", "password"], ("username", "Username", false, null), ("password", "Password", true, null)),
        AuthModes.AwsSigV4 => Schema(["access_key_id", "secret_access_key"],
            ("access_key_id", "Access key ID", false, "^[A-Z0-9]{16,128}$"), ("secret_access_key", "Secret access key", true, null), ("session_token", "Session token", true, null),
            // Optional and not secret: the role this connection assumes (STS AssumeRole), overriding the provider's aws.role_arn.
            ("role_arn", "Role ARN", false, AwsRoleConfig.RoleArnPattern)),
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "OAuth providers have no credential schema."),
    };

    private static JsonObject Schema(string[] required, params (string Name, string Title, bool Secret, string? Pattern)[] fields)
    {
        var properties = new JsonObject();
        foreach (var (name, title, secret, pattern) in fields)
        {
            var property = new JsonObject { ["type"] = "string", ["title"] = title, ["minLength"] = 1 };
            if (pattern is not null)
            {
                property["pattern"] = pattern;
            }

            if (secret)
            {
                property["x-secret"] = true;
            }

            properties[name] = property;
        }

        return new JsonObject
        {
            ["type"] = "object",
            ["required"] = new JsonArray(required.Select(r => (JsonNode)r).ToArray()),
            ["properties"] = properties,
            ["additionalProperties"] = false,
        };
    }

    /// <summary>
    /// The fields a mode's credential is made of, which a schema must define and require under exactly these names:
    /// the Bridge and GET /v1/token read them by name (docs/provider-catalog.md, "Property names are fixed per mode").
    /// A schema may add fields of its own (Datadog's application_key) and the optional ones of the mode.
    /// </summary>
    public static string[] RequiredFields(string mode) => mode switch
    {
        AuthModes.ApiKey => ["api_key"],
        AuthModes.BasicAuth => ["username", "password"],
        AuthModes.AwsSigV4 => ["access_key_id", "secret_access_key"],
        _ => [],
    };

    /// <summary>What is wrong with a schema a registration supplies for <paramref name="mode"/>, or null.</summary>
    public static string? Problem(JsonObject schema, string mode)
    {
        try
        {
            var fields = Fields(schema);
            if (fields.Count is 0 or > 20)
            {
                return "credential_schema needs 1 to 20 string properties.";
            }

            foreach (var field in fields.Where(f => f.Pattern is not null))
            {
                // Throws NotSupportedException for what the linear-time engine cannot run.
                _ = new Regex(field.Pattern!, PatternOptions, PatternTimeout);
            }

            return RequiredFields(mode).FirstOrDefault(name => !fields.Any(f => f.Name == name && f.Required)) is { } missing
                ? $"credential_schema must define and require '{missing}': {mode} credentials are made of {string.Join(", ", RequiredFields(mode))} (property names are fixed per mode)."
                : null;
        }
        catch (NotSupportedException)
        {
            return "credential_schema: a pattern uses a construct Nexus does not run (backreferences, lookarounds, atomic groups); use a plain regular expression.";
        }
        catch (SchemaException e)
        {
            return "credential_schema: " + e.Message;
        }
        catch (RegexParseException e)
        {
            return $"credential_schema: a pattern is not a valid regular expression ({e.Error} at offset {e.Offset}).";
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
        {
            // The JSON node accessors' messages name .NET types; say it in the schema's terms instead.
            return "credential_schema: type, title, description and pattern must be strings, required an array of strings, x-secret true or false, maxLength a whole number.";
        }
    }

    public static IReadOnlyList<CredentialField> Fields(JsonObject schema)
    {
        if (schema["type"]?.GetValue<string>() != "object" || schema["properties"] is not JsonObject properties)
        {
            throw new SchemaException("it must be {\"type\": \"object\", \"properties\": {…}}.");
        }

        var required = (schema["required"] as JsonArray)?.Select(r => r!.GetValue<string>()).ToHashSet() ?? [];
        var fields = new List<CredentialField>();
        foreach (var (name, node) in properties)
        {
            if (node is not JsonObject property || property["type"]?.GetValue<string>() != "string" || !Regex.IsMatch(name, "^[a-z][a-z0-9_]{0,63}$"))
            {
                throw new SchemaException($"property '{name}' must be a string property with a snake_case name.");
            }

            var pattern = property["pattern"]?.GetValue<string>();
            if (pattern is not null)
            {
                _ = new Regex(pattern, RegexOptions.None, PatternTimeout);
            }

            fields.Add(new CredentialField(name, property["title"]?.GetValue<string>() ?? name, property["description"]?.GetValue<string>(), pattern,
                required.Contains(name), property["x-secret"]?.GetValue<bool>() ?? false, property["maxLength"]?.GetValue<int>()));
        }

        if (required.FirstOrDefault(r => fields.All(f => f.Name != r)) is { } missing)
        {
            throw new SchemaException($"required names '{missing}', which is not a property.");
        }

        return fields;
    }

    /// <summary>Whether a value matches a field's pattern; a match that runs out of time is a mismatch, never an error.</summary>
    private static bool Matches(string value, string pattern)
    {
        try
        {
            return Regex.IsMatch(value, pattern, PatternOptions, PatternTimeout);
        }
        catch (NotSupportedException)
        {
            // A row stored before registration refused such patterns: run it on the backtracking engine, bounded.
            try
            {
                return Regex.IsMatch(value, pattern, RegexOptions.CultureInvariant, PatternTimeout);
            }
            catch (RegexMatchTimeoutException)
            {
                return false;
            }
        }
        catch (RegexMatchTimeoutException)
        {
            return false;
        }
    }

    /// <summary>Checks submitted values against the schema; returns the cleaned values or field errors (never echoing a value).</summary>
    public static (Dictionary<string, string>? Values, Dictionary<string, string[]> Errors) Validate(JsonObject schema, IReadOnlyDictionary<string, JsonElement> input)
    {
        var errors = new Dictionary<string, string[]>();
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var fields = Fields(schema);
        foreach (var (name, value) in input)
        {
            if (fields.All(f => f.Name != name))
            {
                errors[name] = [$"'{name}' is not a field of this provider's credentials."];
            }
            else if (value.ValueKind != JsonValueKind.String)
            {
                errors[name] = ["Must be a string."];
            }
        }

        foreach (var field in fields)
        {
            var value = input.TryGetValue(field.Name, out var element) && element.ValueKind == JsonValueKind.String ? element.GetString()!.Trim() : null;
            if (string.IsNullOrEmpty(value))
            {
                if (field.Required)
                {
                    errors[field.Name] = [$"{field.Title} is required."];
                }

                continue;
            }

            if (value.Length > (field.MaxLength ?? MaxFieldLength))
            {
                errors[field.Name] = [$"{field.Title} is too long."];
            }
            else if (field.Pattern is not null && !Matches(value, field.Pattern))
            {
                errors[field.Name] = [$"{field.Title} does not have the expected format ({field.Pattern})."];
            }
            else
            {
                values[field.Name] = value;
            }
        }

        return errors.Count == 0 ? (values, errors) : (null, errors);
    }
}

/// <summary>What is wrong with a credential_schema, in words fit for the admin who sent it.</summary>
internal sealed class SchemaException(string message) : InvalidOperationException(message);
