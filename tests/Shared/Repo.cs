namespace Dnm.Tests.Shared;

/// <summary>Paths in this repository (the folder holding Dnm.sln, found from the test assembly upwards).</summary>
internal static class Repo
{
    public static string Root { get; } = Find();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Dnm.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Dnm.sln above {AppContext.BaseDirectory}");
    }
}
