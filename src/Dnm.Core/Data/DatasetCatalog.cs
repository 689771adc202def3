namespace Dnm.Core.Data;

/// <summary>
/// Opens a dataset from its spec string, the form used on the command line and in run configs:
/// <list type="bullet">
/// <item><c>mnist</c>: MNIST, split train (60000) or test (10000), fetched into &lt;dataDir&gt;/mnist on first use.</item>
/// <item><c>fashion-mnist</c>: Fashion-MNIST, split train (60000) or test (10000), fetched into &lt;dataDir&gt;/fashion-mnist on first use
/// (its mirrors, then Debian's dataset-fashion-mnist package), or read from plain or .gz files already there.</item>
/// <item><c>idx:&lt;images&gt;[,&lt;labels&gt;]</c>: any unsigned-byte IDX image file, with an optional labels file.</item>
/// <item><c>folder:&lt;dir&gt;</c>: a <see cref="FolderDataset"/>; with train/ and test/ sub-folders, those are its splits.</item>
/// <item><c>shards:&lt;dir | brace pattern | URL pattern&gt;</c>: WebDataset tar shards (<see cref="Shards.ShardDataset"/>).</item>
/// </list>
/// A spec or split it does not understand raises <see cref="DatasetSpecException"/> (a config error, exit code 2);
/// missing or corrupt data raises <see cref="DataException"/> (exit code 3).
/// </summary>
public static class DatasetCatalog
{
    /// <summary>Environment variable naming the data root; otherwise ~/.cache/dnm.</summary>
    public const string DataDirVariable = "DNM_DATA";

    private static readonly string[] FashionClasses =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>$DNM_DATA when set, otherwise ~/.cache/dnm.</summary>
    public static string DefaultDataDir()
    {
        string? fromEnv = Environment.GetEnvironmentVariable(DataDirVariable);
        return string.IsNullOrWhiteSpace(fromEnv)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "dnm")
            : fromEnv;
    }

    /// <summary>Synchronous <see cref="OpenAsync"/>, for callers without an async context (tools, tests).</summary>
    public static IImageDataset Open(string spec, string split, string dataDir, int? limit = null,
        FolderOptions? folder = null, IProgress<FetchProgress>? progress = null, MnistStore? store = null) =>
        OpenAsync(spec, split, dataDir, limit, folder, progress, store).GetAwaiter().GetResult();

    /// <summary>
    /// The split of <paramref name="spec"/>; "test" of a dataset that has none is a <see cref="DataException"/>
    /// (see <see cref="TryOpenAsync"/> for the form that answers null).
    /// </summary>
    /// <param name="spec">See the class summary.</param>
    /// <param name="split">"train" or "test".</param>
    /// <param name="dataDir">The data root (see <see cref="DefaultDataDir"/>).</param>
    /// <param name="limit">Keep only the first N samples (a run's seeded subset is <see cref="DatasetView.Subset"/>).</param>
    /// <param name="folder">Shape, bad-file policy and pixel budget for folder: and shards:.</param>
    public static async Task<IImageDataset> OpenAsync(string spec, string split, string dataDir, int? limit = null,
        FolderOptions? folder = null, IProgress<FetchProgress>? progress = null, MnistStore? store = null, CancellationToken ct = default) =>
        await TryOpenAsync(spec, split, dataDir, limit, folder, progress, store, ct)
        ?? throw new DataException($"{spec} has no {split} split. Name one with --test-dataset <spec>, or hold out a part with --test-fraction F.");

    /// <summary>Synchronous <see cref="TryOpenAsync"/>.</summary>
    public static IImageDataset? TryOpen(string spec, string split, string dataDir, int? limit = null,
        FolderOptions? folder = null, IProgress<FetchProgress>? progress = null) =>
        TryOpenAsync(spec, split, dataDir, limit, folder, progress).GetAwaiter().GetResult();

    /// <summary>As <see cref="OpenAsync"/>, but null where the dataset has no such split (idx:, a folder without train/ and test/, a shard pattern without a test split in its manifest).</summary>
    public static async Task<IImageDataset?> TryOpenAsync(string spec, string split, string dataDir, int? limit = null,
        FolderOptions? folder = null, IProgress<FetchProgress>? progress = null, MnistStore? store = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(split);
        ArgumentNullException.ThrowIfNull(dataDir);
        if (limit is < 0)
            throw new DatasetSpecException($"The sample limit must not be negative (got {limit}).");
        bool train = IsTrain(split);
        var options = folder ?? new FolderOptions();

        switch (spec.Trim())
        {
            case "mnist":
            {
                var files = await (store ?? new MnistStore()).EnsureAsync(dataDir, progress, ct);
                return IdxDataset.Open(train ? files.TrainImages : files.TestImages, train ? files.TrainLabels : files.TestLabels,
                    new IdxOptions { Limit = limit, Name = $"mnist/{split}", MinClasses = 10, FixHint = "Delete it and run `dnm data fetch mnist`." });
            }
            case "fashion-mnist":
                return await OpenFashionAsync(split, dataDir, limit, progress, store, ct);
            case var s when s.StartsWith("idx:", StringComparison.Ordinal):
                return train ? OpenIdx(s["idx:".Length..], limit) : null;
            case var s when s.StartsWith("folder:", StringComparison.Ordinal):
            {
                string dir = s["folder:".Length..];
                if (dir.Length == 0)
                    throw new DatasetSpecException("The spec folder: needs a folder, e.g. folder:/data/coil20.");
                var withLimit = limit is null ? options : options with { Limit = limit };
                if (Directory.Exists(dir) && FolderDataset.HasSplits(dir)) return FolderDataset.Open(dir, withLimit, split);
                return train ? FolderDataset.Open(dir, withLimit) : null;
            }
            case var s when s.StartsWith("shards:", StringComparison.Ordinal):
            {
                var source = Shards.ShardSpec.Resolve(s["shards:".Length..], split);
                if (source is null) return null;
                var shards = Shards.ShardDataset.Open(source, new Shards.ShardOptions
                {
                    FallbackShape = new ImageShape(options.Channels, options.Height, options.Width),
                    OnBadImage = options.OnBadFile,
                    MaxImagePixels = options.MaxImagePixels,
                });
                return limit is { } n ? DatasetView.First(shards, n) : shards;
            }
            default:
                throw new DatasetSpecException(
                    $"Unknown dataset '{spec}'. Use mnist, fashion-mnist, idx:<images>[,<labels>], folder:<dir> or shards:<dir | pattern | URL>.");
        }
    }

    private static bool IsTrain(string split) => split switch
    {
        "train" => true,
        "test" => false,
        _ => throw new DatasetSpecException($"Unknown split '{split}'. Use train or test."),
    };

    private static IdxDataset OpenIdx(string paths, int? limit)
    {
        var parts = paths.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length > 2 || parts[0].Length == 0 || (parts.Length == 2 && parts[1].Length == 0))
            throw new DatasetSpecException($"Cannot read 'idx:{paths}'. Use idx:<images file> or idx:<images file>,<labels file>.");
        return IdxDataset.Open(parts[0], parts.Length == 2 ? parts[1] : null, new IdxOptions { Limit = limit });
    }

    /// <summary>Files already in the folder (plain or .gz) are used as they are; otherwise the verified fetch fills it.</summary>
    private static async Task<IdxDataset> OpenFashionAsync(string split, string dataDir, int? limit, IProgress<FetchProgress>? progress, MnistStore? store, CancellationToken ct)
    {
        bool train = IsTrain(split);
        string dir = Path.GetFullPath(Path.Combine(dataDir, "fashion-mnist"));
        string prefix = train ? "train" : "t10k";
        string? images = Find(dir, $"{prefix}-images-idx3-ubyte");
        string? labels = Find(dir, $"{prefix}-labels-idx1-ubyte");
        if (images is null || labels is null)
        {
            var files = await (store ?? new MnistStore(MnistStore.FashionMnist)).EnsureAsync(dataDir, progress, ct);
            (images, labels) = train ? (files.TrainImages, files.TrainLabels) : (files.TestImages, files.TestLabels);
        }
        return IdxDataset.Open(images, labels, new IdxOptions
        {
            Limit = limit,
            Name = $"fashion-mnist/{split}",
            ClassNames = FashionClasses,
            FixHint = $"Delete it and run `dnm data fetch fashion-mnist`.",
        });
    }

    /// <summary>The plain file, or its .gz twin, or null.</summary>
    private static string? Find(string dir, string name)
    {
        string plain = Path.Combine(dir, name);
        if (File.Exists(plain))
            return plain;
        return File.Exists(plain + ".gz") ? plain + ".gz" : null;
    }
}
