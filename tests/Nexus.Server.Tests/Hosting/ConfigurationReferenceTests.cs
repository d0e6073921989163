using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Microsoft.Extensions.Configuration;
using Nexus.Server.Hosting;
using Nexus.Server.Observability;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// Issue 18 item 6: docs/configuration.md is generated from the options classes (every setting, its environment
/// variable, type, default, allowed values and the XML doc comment as description), and fails here when stale.
/// <c>NEXUS_UPDATE_DOCS=1</c> (scripts/regenerate-docs.sh) rewrites it. The allowed values come from the
/// <c>[Range]</c>, <c>[AllowedValues]</c> and <c>[SettingRule]</c> attributes; a test probes the validator with
/// them, so the document cannot promise a range the validator does not enforce.
/// </summary>
public sealed partial class ConfigurationReferenceTests
{
    public const string DocumentPath = "docs/configuration.md";

    /// <summary>The options classes bound from configuration, with their section.</summary>
    private static readonly (string Section, Type Type, object Defaults)[] Roots =
    [
        (NexusOptions.Section, typeof(NexusOptions), new NexusOptions()),
        (TelemetryOptions.Section, typeof(TelemetryOptions), new TelemetryOptions()),
    ];

    /// <summary>Settings read by ASP.NET Core, .NET or OpenTelemetry themselves (no options class of Nexus holds them).</summary>
    private static readonly (string Variable, string Default, string Description)[] HostSettings =
    [
        ("`ASPNETCORE_ENVIRONMENT` (or `DOTNET_ENVIRONMENT`, `--environment`)", "Production",
            "`Development` allows a generated encryption key (in the data directory) and loopback upstreams; Production requires `ENCRYPTION_KEY`."),
        ($"`{NexusEnvironment.DefaultVariable}`", "unset",
            "The environment used when none of the above is set; `dotnet run`'s launch profile sets it to Development. A published build or a container has none: Production."),
        ("`ASPNETCORE_URLS` (or `--urls`)", $"`{HostingExtensions.DefaultUrl}`",
            "Where Kestrel listens (`;`-separated). The container image sets `ASPNETCORE_HTTP_PORTS=8080` instead."),
        ("`ASPNETCORE_HTTP_PORTS`", "unset (the container image: `8080`)", "Ports to listen on, on every address; used when `ASPNETCORE_URLS` is not set."),
        ("`OTEL_EXPORTER_OTLP_ENDPOINT` (and the other standard `OTEL_*` variables)", "unset",
            "Export metrics and traces over OTLP to this endpoint; see [observability.md](observability.md)."),
        ("`Logging__LogLevel__<category>`", "Default `Information`; `Microsoft.AspNetCore`, `System.Net.Http.HttpClient` `Warning`",
            "Log levels per category; every logged value is redacted whatever the level."),
        ("`Logging__Console__FormatterName`", "`simple`", "`json` for JSON console logs with trace and span ids."),
        ("`DOTNET_gcServer`", "`0` (workstation GC)", "`1` for server GC on large hosts; workstation GC measured faster on 2 cores. Memory and startup settings per deployment size (`DOTNET_GCgen0size`, `DOTNET_GCHeapAffinitizeMask`, `DOTNET_TieredPGO`, …): README, *Footprint and deployment size*, measured by `bench/footprint.sh`."),
    ];

    [Fact]
    public void TheCheckedInConfigurationReferenceIsTheGeneratedOne()
    {
        var generated = Generate();
        var path = Repository.PathOf(DocumentPath);
        if (Environment.GetEnvironmentVariable("NEXUS_UPDATE_DOCS") == "1")
        {
            File.WriteAllText(path, generated);
        }

        Assert.True(File.Exists(path), $"{DocumentPath} is missing: run scripts/regenerate-docs.sh");
        Assert.True(File.ReadAllText(path) == generated,
            $"{DocumentPath} differs from what the options classes say. Run scripts/regenerate-docs.sh and commit {DocumentPath}.");
    }

    [Fact]
    public void EverySettingHasADescriptionAndAnEnvironmentVariable()
    {
        var settings = Settings().ToList();
        Assert.Contains(settings, s => s.Variable == "Nexus__Refresh__MarginSeconds");
        Assert.Contains(settings, s => s.Plain == "DATABASE_URL");
        Assert.Contains(settings, s => s.Variable == "Nexus__Telemetry__Prometheus");
        var undocumented = settings.Where(s => string.IsNullOrWhiteSpace(s.Description)).Select(s => s.Variable).ToList();
        Assert.True(undocumented.Count == 0, $"Give these settings an XML doc comment (<summary>): {string.Join(", ", undocumented)}");
    }

    [Fact]
    public void EveryDocumentedRangeAndValueListIsWhatTheValidatorEnforces()
    {
        var checkedCount = 0;
        foreach (var setting in Settings().Where(s => s.Root == typeof(NexusOptions)))
        {
            var property = setting.Path[^1];
            if (property.GetCustomAttribute<RangeAttribute>() is { } range)
            {
                var (min, max) = Bounds(range);
                Assert.True(Valid(setting, min), $"{setting.Variable}={min} (its documented minimum) is refused");
                Assert.False(Valid(setting, min - 1), $"{setting.Variable}={min - 1} (below its documented minimum) is accepted");
                if (max is { } upper)
                {
                    Assert.True(Valid(setting, upper), $"{setting.Variable}={upper} (its documented maximum) is refused");
                    Assert.False(Valid(setting, upper + 1), $"{setting.Variable}={upper + 1} (above its documented maximum) is accepted");
                }

                checkedCount++;
            }

            if (property.GetCustomAttribute<AllowedValuesAttribute>() is { } allowed)
            {
                foreach (var value in allowed.Values)
                {
                    Assert.True(Valid(setting, value), $"{setting.Variable}={value} (documented as allowed) is refused");
                }

                Assert.False(Valid(setting, "not-an-allowed-value"), $"{setting.Variable} accepts a value its documentation does not list");
                checkedCount++;
            }
        }

        Assert.True(checkedCount > 20, $"only {checkedCount} ranges found");
    }

    [Fact]
    public void EveryPlainVariableSetsItsSettingAndNoOtherIsRead()
    {
        var plain = Settings().Where(s => s.Plain is not null).ToList();
        foreach (var setting in plain)
        {
            var value = setting.Plain switch
            {
                "BASE_URL" => "https://nexus.example.com",
                "ENCRYPTION_KEY" or "PREVIOUS_ENCRYPTION_KEYS" => NexusTestServer.NewEncryptionKey(),
                _ => "plain-variable-value-" + setting.Plain,
            };
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                [setting.Plain!] = value,
                [setting.Key] = "the Nexus__ name loses",
            }).Build();
            var options = new NexusOptions();
            new NexusOptionsSetup(configuration).Configure(options);
            Assert.Equal(value, setting.Path[0].GetValue(options));
        }

        // NexusOptionsSetup reads exactly the variables the attributes declare (so the document lists them all).
        var source = File.ReadAllText(Repository.PathOf("src", "Nexus.Server", "Hosting", "NexusOptionsSetup.cs"));
        var read = PlainRead().Matches(source).Select(m => m.Groups[1].Value).Order(StringComparer.Ordinal);
        Assert.Equal(plain.Select(s => s.Plain!).Order(StringComparer.Ordinal), read);
    }

    private static bool Valid(Setting setting, object? value)
    {
        // Valid in every other respect, and with room for the settings bounded by others.
        var options = new NexusOptions { SigningKeyOverlapSeconds = int.MaxValue };
        options.Refresh.RetryDelaySeconds = 1;
        options.Refresh.MaxRetryDelaySeconds = 86_400;
        options.Registration.InitialAccessToken = new string('t', 16);
        Assert.True(new NexusOptionsValidator().Validate(null, options).Succeeded, "the probe's base options are invalid");
        object target = options;
        foreach (var step in setting.Path[..^1])
        {
            target = step.GetValue(target)!;
        }

        var property = setting.Path[^1];
        var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
        if (value is long number && type == typeof(int) && number is < int.MinValue or > int.MaxValue)
        {
            return false;
        }

        property.SetValue(target, value is long n ? Convert.ChangeType(n, type, CultureInfo.InvariantCulture) : value);
        return new NexusOptionsValidator().Validate(null, options).Succeeded;
    }

    private static (long Min, long? Max) Bounds(RangeAttribute range)
    {
        var min = Convert.ToInt64(range.Minimum, CultureInfo.InvariantCulture);
        long? max = range.Maximum switch
        {
            int i when i == int.MaxValue => null,
            int i => i,
            double d when d >= long.MaxValue => null,
            var other => Convert.ToInt64(other, CultureInfo.InvariantCulture),
        };
        return (min, max);
    }

    private sealed record Setting(Type Root, string Section, PropertyInfo[] Path, object? Default)
    {
        public string Key => Section + ":" + string.Join(':', Path.Select(p => p.Name));

        public string Variable => Key.Replace(":", "__", StringComparison.Ordinal);

        public string? Plain => Path.Length == 1 ? Path[0].GetCustomAttribute<PlainVariableAttribute>()?.Name : null;

        public string Description { get; init; } = "";
    }

    private static IEnumerable<Setting> Settings()
    {
        var docs = XmlDocs.Load();
        foreach (var (section, type, defaults) in Roots)
        {
            foreach (var setting in Walk(type, section, [], defaults))
            {
                yield return setting with { Description = docs.Summary(setting.Path[^1]) };
            }
        }

        IEnumerable<Setting> Walk(Type root, string section, PropertyInfo[] prefix, object instance)
        {
            foreach (var property in OrderedProperties(instance.GetType()))
            {
                var path = prefix.Append(property).ToArray();
                var value = property.GetValue(instance);
                if (IsSection(property))
                {
                    foreach (var nested in Walk(root, section, path, value!))
                    {
                        yield return nested;
                    }
                }
                else
                {
                    yield return new Setting(root, section, path, value);
                }
            }
        }
    }

    private static bool IsSection(PropertyInfo property) => property.PropertyType.IsClass && property.PropertyType.Name.EndsWith("Options", StringComparison.Ordinal);

    /// <summary>Settable properties in declaration order.</summary>
    private static IEnumerable<PropertyInfo> OrderedProperties(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && p.SetMethod!.IsPublic).OrderBy(p => p.MetadataToken);

    private static string Generate()
    {
        var docs = XmlDocs.Load();
        var settings = Settings().ToList();
        var names = settings.ToDictionary(s => (s.Path[^1].DeclaringType!, s.Path[^1].Name), s => s.Plain ?? s.Variable);
        string Clean(string text) => XmlDocs.Markdown(text, names).Replace("|", "\\|", StringComparison.Ordinal);

        var md = new StringBuilder();
        md.Append("""
            # Configuration reference

            <!-- Generated from the options classes by tests/Nexus.Server.Tests/Hosting/ConfigurationReferenceTests.cs.
                 Do not edit: change the XML doc comments and attributes in src/, then run scripts/regenerate-docs.sh. -->

            Every setting below can be given as an environment variable (the names shown: `Nexus__Section__Name`, `__`
            separating the levels), in `appsettings.json` (`{"Nexus": {"Refresh": {"MarginSeconds": 120}}}`) or on the
            command line (`--Nexus:Refresh:MarginSeconds=120`). Where a plain name is shown (`BASE_URL`, `DATABASE_URL`,
            …, from the product documents), it wins over the `Nexus__` one. The server and every command
            (`Nexus.Server migrate`, …) read the same settings. Invalid values stop startup with one message per
            problem, saying what to change (Hosting/NexusOptionsSetup.cs validates; "Allowed" below is what it
            enforces, checked by a test).

            In a deployment of several instances every instance needs the same values for the settings marked
            **shared** in [deployment.md](deployment.md) (at least `DATABASE_URL`, `ENCRYPTION_KEY`,
            `PREVIOUS_ENCRYPTION_KEYS`, `BASE_URL`, `API_KEY`, `SETUP_TOKEN`).


            """);

        foreach (var group in settings.GroupBy(s => (s.Section, Sub: string.Join(':', s.Path[..^1].Select(p => p.Name)))))
        {
            var (section, sub) = group.Key;
            var heading = sub.Length == 0 ? section : $"{section}:{sub}";
            md.Append(CultureInfo.InvariantCulture, $"## {heading}\n\n");
            var first = group.First();
            var summary = sub.Length == 0
                ? docs.Summary(Roots.Single(r => r.Section == section).Type)
                : docs.Summary(first.Path[^2]) is { Length: > 0 } s ? s : docs.Summary(first.Path[^1].DeclaringType!);
            if (summary.Length > 0)
            {
                md.Append(Clean(summary)).Append("\n\n");
            }

            md.Append("| Environment variable | Type | Default | Allowed | Description |\n|---|---|---|---|---|\n");
            foreach (var setting in group)
            {
                var property = setting.Path[^1];
                var variable = setting.Plain is { } plain ? $"`{plain}` (or `{setting.Variable}`)" : $"`{setting.Variable}`";
                md.Append(CultureInfo.InvariantCulture,
                    $"| {variable} | {TypeName(property.PropertyType)} | {DefaultText(setting.Default)} | {Clean(Allowed(property))} | {Clean(setting.Description)} |\n");
            }

            md.Append('\n');
        }

        md.Append("""
            ## Read by the host

            Settings that ASP.NET Core, .NET or OpenTelemetry read themselves.

            | Environment variable | Default | Description |
            |---|---|---|

            """);
        foreach (var (variable, value, description) in HostSettings)
        {
            md.Append(CultureInfo.InvariantCulture, $"| {variable} | {value} | {description} |\n");
        }

        return md.ToString();
    }

    private static string TypeName(Type type) => (Nullable.GetUnderlyingType(type) ?? type) switch
    {
        var t when t == typeof(int) || t == typeof(long) => "integer",
        var t when t == typeof(bool) => "boolean",
        var t when t == typeof(string) => "string",
        var t => t.Name,
    };

    private static string DefaultText(object? value) => value switch
    {
        null => "unset",
        bool b => b ? "`true`" : "`false`",
        IFormattable f => $"`{f.ToString(null, CultureInfo.InvariantCulture)}`",
        var v => $"`{v}`",
    };

    private static string Allowed(PropertyInfo property)
    {
        if (property.GetCustomAttribute<SettingRuleAttribute>() is { } rule)
        {
            return rule.Rule;
        }

        if (property.GetCustomAttribute<RangeAttribute>() is { } range)
        {
            var (min, max) = Bounds(range);
            return max is { } upper ? $"{min} to {upper}" : $"≥ {min}";
        }

        return property.GetCustomAttribute<AllowedValuesAttribute>() is { } allowed
            ? string.Join(", ", allowed.Values.Select(v => $"`{v}`"))
            : "";
    }

    [GeneratedRegex(@"configuration\[""([A-Z_]+)""\]")]
    private static partial Regex PlainRead();

    /// <summary>The XML documentation file the build writes next to Nexus.Server.dll (GenerateDocumentationFile).</summary>
    private sealed partial class XmlDocs(Dictionary<string, XElement> members)
    {
        public static XmlDocs Load()
        {
            var file = Path.Combine(AppContext.BaseDirectory, "Nexus.Server.xml");
            var members = XDocument.Load(file).Descendants("member").ToDictionary(m => (string)m.Attribute("name")!, StringComparer.Ordinal);
            return new XmlDocs(members);
        }

        public string Summary(PropertyInfo property) => Summary($"P:{property.DeclaringType!.FullName}.{property.Name}");

        public string Summary(Type type) => Summary($"T:{type.FullName}");

        private string Summary(string id) =>
            members.TryGetValue(id, out var member) && member.Element("summary") is { } summary
                ? string.Concat(summary.Nodes().Select(n => n.ToString(SaveOptions.DisableFormatting)))
                : "";

        /// <summary>The summary's XML as one line of Markdown: code in backticks, references by their setting's variable.</summary>
        public static string Markdown(string xml, Dictionary<(Type, string), string> names)
        {
            var text = Code().Replace(xml, m => $"`{System.Net.WebUtility.HtmlDecode(m.Groups[1].Value)}`");
            text = Reference().Replace(text, m =>
            {
                var id = m.Groups[1].Value;
                var member = id[(id.LastIndexOf('.') + 1)..];
                var owner = id.Length > 2 && id[1] == ':' && id.LastIndexOf('.') > 2 ? id[2..id.LastIndexOf('.')] : "";
                var match = names.FirstOrDefault(n => n.Key.Item1.FullName == owner && n.Key.Item2 == member).Value;
                return $"`{match ?? member}`";
            });
            text = System.Net.WebUtility.HtmlDecode(Tags().Replace(text, ""));
            return Whitespace().Replace(text, " ").Trim();
        }

        [GeneratedRegex(@"<c>(.*?)</c>", RegexOptions.Singleline)]
        private static partial Regex Code();

        [GeneratedRegex(@"<see cref=""([^""]+)""\s*/>")]
        private static partial Regex Reference();

        [GeneratedRegex(@"<[^>]+>")]
        private static partial Regex Tags();

        [GeneratedRegex(@"\s+")]
        private static partial Regex Whitespace();
    }
}
