using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Nexus.Server.ApiReference;

/// <summary>Title, security schemes, the shared error schemas, and the Bridge's any-method routes.</summary>
internal sealed class ApiDocumentTransformer : IOpenApiDocumentTransformer
{
    public const string ApiKeyScheme = "ApiKey";
    public const string BasicScheme = "ClientBasic";
    public const string BearerScheme = "Bearer";
    public const string ProblemSchema = "Problem";
    public const string OAuthErrorSchema = "OAuthError";

    private static readonly HttpMethod[] BridgeMethods = [HttpMethod.Get, HttpMethod.Post, HttpMethod.Put, HttpMethod.Patch, HttpMethod.Delete];

    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info = new OpenApiInfo
        {
            Title = "Nexus API",
            Version = "v1",
            Description = "The gateway (`/v1`, a gateway API key), the admin API (`/v1/admin`, `/v1/providers`, the deployment's admin API key), "
                + "the OAuth 2.0 / OpenID Connect authorization server, the Bridge and MCP discovery. Errors are RFC 9457 problem details with a "
                + "stable `code`, except on the OAuth endpoints, which answer with RFC 6749 §5.2 `error` objects.",
            License = new OpenApiLicense { Name = "Apache-2.0", Identifier = "Apache-2.0" },
        };
        // The document describes every deployment: no server URL of the instance that generated it.
        document.Servers = [];
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[ApiKeyScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.ApiKey,
            In = ParameterLocation.Header,
            Name = "X-API-Key",
            Description = "The admin API key (API_KEY) on the admin API, a gateway API key on the gateway and the Bridge.",
        };
        document.Components.SecuritySchemes[BasicScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "basic",
            Description = "OAuth client authentication (RFC 6749 §2.3.1): client_id and client_secret, form-urlencoded, as Basic credentials; "
                + "client_secret_post (both in the form) is accepted too.",
        };
        document.Components.SecuritySchemes[BearerScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "JWT",
            Description = "An access token Nexus issued (RFC 6750).",
        };
        document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>();
        document.Components.Schemas[ProblemSchema] = new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Description = "RFC 9457 problem details; `code` is stable and `type` is urn:nexus:problem:<code>.",
            Required = new HashSet<string> { "type", "title", "code" },
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["type"] = new OpenApiSchema { Type = JsonSchemaType.String },
                ["title"] = new OpenApiSchema { Type = JsonSchemaType.String },
                ["status"] = new OpenApiSchema { Type = JsonSchemaType.Integer },
                ["detail"] = new OpenApiSchema { Type = JsonSchemaType.String },
                ["code"] = new OpenApiSchema { Type = JsonSchemaType.String },
                ["errors"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.Object,
                    Description = "validation_failed: the fields to change, each with its messages.",
                    AdditionalProperties = new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String } },
                },
            },
        };
        document.Components.Schemas[OAuthErrorSchema] = new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Description = "RFC 6749 §5.2 error response.",
            Required = new HashSet<string> { "error" },
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["error"] = new OpenApiSchema { Type = JsonSchemaType.String },
                ["error_description"] = new OpenApiSchema { Type = JsonSchemaType.String },
            },
        };

        document.Tags ??= new HashSet<OpenApiTag>();
        foreach (var manual in ApiCatalog.ManualOperations)
        {
            var tag = manual.Pattern.StartsWith("/mcp", StringComparison.Ordinal) ? "MCP" : "Bridge";
            if (!document.Tags.Any(t => t.Name == tag))
            {
                document.Tags.Add(new OpenApiTag { Name = tag });
            }

            var item = new OpenApiPathItem { Operations = new Dictionary<HttpMethod, OpenApiOperation>() };
            foreach (var method in manual.Method == "*" ? BridgeMethods : [HttpMethod.Parse(manual.Method)])
            {
                var operation = new OpenApiOperation
                {
                    Tags = new HashSet<OpenApiTagReference> { new(tag, document) },
                    Parameters = [.. Parameters(manual.Pattern)],
                };
                ApiOperationTransformer.Apply(operation, manual, document, null);
                item.Operations[method] = operation;
            }

            document.Paths[manual.Pattern] = item;
        }

        RemoveUnreferencedSchemas(document);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Schemas of the types handlers declare in their signatures (typed results such as <c>Ok&lt;ProviderResponse&gt;</c>,
    /// anonymous types) that no operation references: the catalog replaced every response that used them, and a
    /// schema generated from a .NET type alone would misdescribe the API (timestamps are Unix seconds, not date-time).
    /// Runs until none is left, as a schema may only have been referenced by another unreferenced one. Once per document.
    /// </summary>
    private static void RemoveUnreferencedSchemas(OpenApiDocument document)
    {
        var schemas = document.Components!.Schemas!;
        while (true)
        {
            using var text = new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
            document.SerializeAsV31(new OpenApiJsonWriter(text, new OpenApiJsonWriterSettings()));
            var json = text.ToString();
            var unreferenced = schemas.Keys.Where(name => !json.Contains($"\"#/components/schemas/{name}\"", StringComparison.Ordinal)).ToList();
            if (unreferenced.Count == 0)
            {
                return;
            }

            foreach (var name in unreferenced)
            {
                schemas.Remove(name);
            }
        }
    }

    private static readonly string[] PathParameters = ["connectionId", "path"];

    private static IEnumerable<IOpenApiParameter> Parameters(string pattern)
    {
        foreach (var name in PathParameters.Where(n => pattern.Contains("{" + n + "}", StringComparison.Ordinal)))
        {
            yield return new OpenApiParameter { Name = name, In = ParameterLocation.Path, Required = true, Schema = new OpenApiSchema { Type = JsonSchemaType.String } };
        }
    }
}

/// <summary>Completes each generated operation from its <see cref="ApiCatalog"/> row.</summary>
internal sealed class ApiOperationTransformer : IOpenApiOperationTransformer
{
    public async Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var description = context.Description;
        if (ApiCatalog.Find(description.HttpMethod ?? "", description.RelativePath ?? "") is not { } row)
        {
            return;
        }

        var document = context.Document!;
        async Task<IOpenApiSchema?> SchemaAsync(object? shape) => shape switch
        {
            Type type => await context.GetOrCreateSchemaAsync(type, null, cancellationToken),
            ListOf list => new OpenApiSchema
            {
                Type = JsonSchemaType.Object,
                Required = new HashSet<string> { list.Property },
                Properties = new Dictionary<string, IOpenApiSchema>
                {
                    [list.Property] = new OpenApiSchema { Type = JsonSchemaType.Array, Items = await context.GetOrCreateSchemaAsync(list.Item, null, cancellationToken) },
                },
            },
            _ => null,
        };

        Apply(operation, row, document, (await SchemaAsync(row.Request), await SchemaAsync(row.Response)));
    }

    /// <summary>Summary, security, body and responses of <paramref name="row"/>; schemas from types when given, else from the examples.</summary>
    public static void Apply(OpenApiOperation operation, ApiOperation row, OpenApiDocument document, (IOpenApiSchema? Request, IOpenApiSchema? Response)? schemas)
    {
        operation.Summary = row.Summary;
        if (row.Description is not null)
        {
            operation.Description = row.Description;
        }

        var scheme = row.Auth switch
        {
            ApiAuth.AdminKey or ApiAuth.GatewayKey => ApiDocumentTransformer.ApiKeyScheme,
            ApiAuth.Client => ApiDocumentTransformer.BasicScheme,
            ApiAuth.Bearer => ApiDocumentTransformer.BearerScheme,
            _ => null,
        };
        operation.Security = scheme is null ? [] : [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(scheme, document)] = [] }];

        if (row.Request is not null)
        {
            var example = row.Request as string;
            var schema = schemas?.Request ?? (row.RequestContentType == "application/json" && example is not null ? FromExample(JsonNode.Parse(example)) : FormSchema(example));
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType>
                {
                    [row.RequestContentType] = new()
                    {
                        Schema = schema,
                        Example = example is null ? null : row.RequestContentType == "application/json" ? JsonNode.Parse(example) : JsonValue.Create(example),
                    },
                },
            };
        }

        operation.Responses ??= new OpenApiResponses();
        operation.Responses.Clear();
        var success = new OpenApiResponse { Description = SuccessDescription(row.Success) };
        if (row.Response is not null)
        {
            var example = row.Response as string;
            success.Content = new Dictionary<string, OpenApiMediaType>
            {
                ["application/json"] = new()
                {
                    Schema = schemas?.Response ?? FromExample(JsonNode.Parse(example!)),
                    Example = example is null ? null : JsonNode.Parse(example),
                },
            };
        }

        operation.Responses[row.Success.ToString(System.Globalization.CultureInfo.InvariantCulture)] = success;

        foreach (var group in row.Errors.GroupBy(e => e.Status).OrderBy(g => g.Key))
        {
            var codes = group.SelectMany(e => e.Codes).Distinct().ToList();
            var (mediaType, schemaId, member) = row.Format == ErrorFormat.OAuth
                ? ("application/json", ApiDocumentTransformer.OAuthErrorSchema, "error")
                : ("application/problem+json", ApiDocumentTransformer.ProblemSchema, "code");
            var response = new OpenApiResponse { Description = $"{member}: {string.Join(", ", codes)}" };
            if (row.Format == ErrorFormat.Browser)
            {
                response.Description = $"error: {string.Join(", ", codes)} (a redirect to the client with `error`, or an error page)";
            }
            else
            {
                response.Content = new Dictionary<string, OpenApiMediaType>
                {
                    [mediaType] = new()
                    {
                        Schema = new OpenApiSchema
                        {
                            AllOf = [new OpenApiSchemaReference(schemaId, document)],
                            Properties = new Dictionary<string, IOpenApiSchema>
                            {
                                [member] = new OpenApiSchema { Type = JsonSchemaType.String, Enum = [.. codes.Select(c => (JsonNode)JsonValue.Create(c))] },
                            },
                        },
                    },
                };
            }

            operation.Responses[group.Key.ToString(System.Globalization.CultureInfo.InvariantCulture)] = response;
        }
    }

    private static string SuccessDescription(int status) => status switch
    {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        302 => "Found: a redirect",
        _ => "Success",
    };

    private static OpenApiSchema FormSchema(string? example)
    {
        var schema = new OpenApiSchema { Type = JsonSchemaType.Object, Properties = new Dictionary<string, IOpenApiSchema>() };
        foreach (var pair in (example ?? "").Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            schema.Properties[pair.Split('=')[0]] = new OpenApiSchema { Type = JsonSchemaType.String };
        }

        return schema;
    }

    /// <summary>A schema read off an example: objects, arrays and the JSON value kinds.</summary>
    internal static OpenApiSchema FromExample(JsonNode? node) => node switch
    {
        JsonObject o => new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Properties = o.ToDictionary(p => p.Key, p => (IOpenApiSchema)FromExample(p.Value)),
        },
        JsonArray a => new OpenApiSchema { Type = JsonSchemaType.Array, Items = a.Count > 0 ? FromExample(a[0]) : new OpenApiSchema() },
        JsonValue v => v.GetValueKind() switch
        {
            System.Text.Json.JsonValueKind.String => new OpenApiSchema { Type = JsonSchemaType.String },
            System.Text.Json.JsonValueKind.Number => new OpenApiSchema { Type = v.ToString().Contains('.', StringComparison.Ordinal) ? JsonSchemaType.Number : JsonSchemaType.Integer },
            System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False => new OpenApiSchema { Type = JsonSchemaType.Boolean },
            _ => new OpenApiSchema(),
        },
        _ => new OpenApiSchema(),
    };
}
