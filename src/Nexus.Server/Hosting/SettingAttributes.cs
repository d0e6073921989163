namespace Nexus.Server.Hosting;

/// <summary>
/// A plain environment variable (from the product documents: BASE_URL, DATABASE_URL, …) that sets this option and
/// wins over <c>Nexus__Name</c>. Read by <see cref="NexusOptionsSetup"/>; docs/configuration.md lists it, and a test
/// checks the two agree.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
internal sealed class PlainVariableAttribute(string name) : Attribute
{
    public string Name { get; } = name;
}

/// <summary>
/// What <see cref="NexusOptionsValidator"/> requires of a setting, in words, where a <c>[Range]</c> or
/// <c>[AllowedValues]</c> cannot say it (a format, a rule relative to another setting). Shown in docs/configuration.md.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
internal sealed class SettingRuleAttribute(string rule) : Attribute
{
    public string Rule { get; } = rule;
}
