namespace Nexus.Server.Tests.Infrastructure;

/// <summary>The checkout the tests run from (the directory holding Nexus.slnx), for tests that read its files.</summary>
public static class Repository
{
    public static string Root { get; } = Find();

    public static string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Nexus.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Nexus.slnx not found above " + AppContext.BaseDirectory);
    }
}
