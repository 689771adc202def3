namespace Dnm.Core.Data;

/// <summary>
/// Opens a dataset from its spec string, the form used on the command line and in run configs:
/// <list type="bullet">
/// <item><c>mnist</c>: MNIST, split train (60000) or test (10000), fetched into &lt;dataDir&gt;/mnist on first use.</item>
/// <item><c>fashion-mnist</c>: Fashion-MNIST from &lt;dataDir&gt;/fashion-mnist (same file names as MNIST, plain or .gz); not downloaded.</item>
/// <item><c>idx:&lt;images&gt;[,&lt;labels&gt;]</c>: any unsigned-byte IDX image file, with an optional labels file.</item>
/// <item><c>folder:&lt;dir&gt;</c>: a <see cref="FolderDataset"/>.</item>
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

    /// <param name="spec">See the class summary.</param>
    /// <param name="split">"train" or "test" for mnist and fashion-mnist; ignored for idx: and folder:.</param>
    /// <param name="dataDir">The data root (see <see cref="DefaultDataDir"/>).</param>
    /// <param name="limit">Keep only the first N samples.</param>
    /// <param name="folder">Shape and bad-file policy for folder: (its Limit is replaced by <paramref name="limit"/> when given).</param>
    public static async Task<IImageDataset> OpenAsync(string spec, string split, string dataDir, int? limit = null,
        FolderOptions? folder = null, IProgress<FetchProgress>? progress = null, MnistStore? store = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(split);
        ArgumentNullException.ThrowIfNull(dataDir);
        if (limit is < 0)
            throw new DatasetSpecException($"The sample limit must not be negative (got {limit}).");

        switch (spec.Trim())
        {
            case "mnist":
            {
                bool train = IsTrain(split);
                var files = await (store ?? new MnistStore()).EnsureAsync(dataDir, progress, ct);
                return IdxDataset.Open(train ? files.TrainImages : files.TestImages, train ? files.TrainLabels : files.TestLabels,
                    new IdxOptions { Limit = limit, Name = $"mnist/{split}", MinClasses = 10, FixHint = "Delete it and run `dnm data fetch mnist`." });
            }
            case "fashion-mnist":
                return OpenFashion(split, dataDir, limit);
            case var s when s.StartsWith("idx:", StringComparison.Ordinal):
                return OpenIdx(s["idx:".Length..], limit);
            case var s when s.StartsWith("folder:", StringComparison.Ordinal):
            {
                string dir = s["folder:".Length..];
                if (dir.Length == 0)
                    throw new DatasetSpecException("The spec folder: needs a folder, e.g. folder:/data/coil20.");
                var options = folder ?? new FolderOptions();
                return FolderDataset.Open(dir, limit is null ? options : options with { Limit = limit });
            }
            default:
                throw new DatasetSpecException(
                    $"Unknown dataset '{spec}'. Use mnist, fashion-mnist, idx:<images>[,<labels>] or folder:<dir>.");
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

    private static IdxDataset OpenFashion(string split, string dataDir, int? limit)
    {
        bool train = IsTrain(split);
        string dir = Path.GetFullPath(Path.Combine(dataDir, "fashion-mnist"));
        string prefix = train ? "train" : "t10k";
        string images = Find(dir, $"{prefix}-images-idx3-ubyte");
        string labels = Find(dir, $"{prefix}-labels-idx1-ubyte");
        return IdxDataset.Open(images, labels, new IdxOptions
        {
            Limit = limit,
            Name = $"fashion-mnist/{split}",
            ClassNames = FashionClasses,
            FixHint = $"Replace it with the file from https://github.com/zalandoresearch/fashion-mnist in {dir}.",
        });
    }

    /// <summary>The plain file, or its .gz twin; neither is a <see cref="DataException"/> that says where to put it.</summary>
    private static string Find(string dir, string name)
    {
        string plain = Path.Combine(dir, name);
        if (File.Exists(plain))
            return plain;
        if (File.Exists(plain + ".gz"))
            return plain + ".gz";
        throw new DataException(
            $"{plain} is missing. Fashion-MNIST is not downloaded automatically: put {name} (or {name}.gz) from " +
            $"https://github.com/zalandoresearch/fashion-mnist into {dir}.");
    }
}
