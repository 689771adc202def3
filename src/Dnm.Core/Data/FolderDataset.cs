namespace Dnm.Core.Data;

/// <summary>What to do with a file that has an image extension but cannot be decoded.</summary>
public enum BadFilePolicy
{
    /// <summary>Throw a <see cref="DataException"/> naming the file.</summary>
    Fail,

    /// <summary>Leave it out and record it in <see cref="FolderDataset.SkippedFiles"/>.</summary>
    Skip,
}

/// <summary>How to turn a folder of images into same-shaped tensors.</summary>
public sealed record FolderOptions
{
    /// <summary>1: grayscale (Rec. 601 luma), 3: RGB.</summary>
    public int Channels { get; init; } = 1;

    public int Height { get; init; } = 28;

    public int Width { get; init; } = 28;

    public BadFilePolicy OnBadFile { get; init; } = BadFilePolicy.Fail;

    /// <summary>Keep only the first N readable images in file order (null: all). Training subsets use <see cref="DatasetView"/> instead.</summary>
    public int? Limit { get; init; }

    /// <summary>Images that declare more pixels are refused before they are decoded.</summary>
    public long MaxImagePixels { get; init; } = ImageDecoder.DefaultMaxPixels;

    /// <summary>
    /// Decoded pixels kept in memory up to this many bytes; a larger folder is decoded as it is read (like shards), so
    /// memory does not grow with the folder. Default 1 GiB.
    /// </summary>
    public long DecodedBudgetBytes { get; init; } = 1L << 30;
}

/// <summary>
/// Images in one sub-folder per class (labels follow the ordinal order of the folder names), or, when the
/// folder has no sub-folders, an unlabelled set. A folder whose sub-folders are exactly <c>train/</c> and <c>test/</c>
/// holds the two splits, each laid out the same way (the test split's classes are matched by name). PNG, JPEG and WebP
/// files are decoded with SkiaSharp, converted to the configured channels and resized with a high-quality filter.
/// Transparent pixels are composited over black. File order is the ordinal order of the relative paths, so every
/// machine sees the same indices; a sample's key is its relative path.
/// </summary>
/// <remarks>
/// A folder whose decoded pixels fit <see cref="FolderOptions.DecodedBudgetBytes"/> is decoded once, on every core, and
/// held as bytes. A larger one keeps only its file list and decodes an image when a step reads it; under
/// <see cref="BadFilePolicy.Skip"/> its images are checked once while opening, so that the sample order never changes
/// under a run.
/// </remarks>
public sealed class FolderDataset : IImageDataset
{
    private static readonly string[] Extensions = [".png", ".jpg", ".jpeg", ".webp"];

    private readonly string root;
    private readonly string[] paths;
    private readonly int[] labels;
    private readonly byte[]? pixels;
    private readonly long maxPixels;

    private FolderDataset(string name, string root, ImageShape shape, string[] paths, int[] labels, byte[]? pixels,
        IReadOnlyList<string> classNames, IReadOnlyList<string> skipped, long maxPixels)
    {
        Name = name;
        this.root = root;
        Shape = shape;
        this.paths = paths;
        this.labels = labels;
        this.pixels = pixels;
        ClassNames = classNames;
        SkippedFiles = skipped;
        this.maxPixels = maxPixels;
    }

    public string Name { get; }

    public int Count => labels.Length;

    public ImageShape Shape { get; }

    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Whether images are decoded when read (the folder is larger than the decoded budget).</summary>
    public bool DecodesOnRead => pixels is null;

    /// <summary>Files left out under <see cref="BadFilePolicy.Skip"/>, in file order.</summary>
    public IReadOnlyList<string> SkippedFiles { get; }

    public int SkippedCount => SkippedFiles.Count;

    /// <summary>Whether <paramref name="root"/> holds a train/ and a test/ split (and no other sub-folders or images).</summary>
    public static bool HasSplits(string root) =>
        Directory.Exists(Path.Combine(root, "train")) && Directory.Exists(Path.Combine(root, "test"))
        && Directory.GetDirectories(root).Length == 2 && !ImagesUnder(root, SearchOption.TopDirectoryOnly).Any();

    /// <summary>
    /// Lists and decodes the folder's images (the whole folder, or its <paramref name="split"/> sub-folder where it has
    /// train/ and test/); throws <see cref="DataException"/> for a missing or empty folder.
    /// </summary>
    /// <param name="split">"train" or "test" for a folder with splits; null otherwise.</param>
    public static FolderDataset Open(string root, FolderOptions? options = null, string? split = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        options ??= new FolderOptions();
        if (options.Channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(options), options.Channels, "Channels must be 1 (grayscale) or 3 (RGB).");
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Height, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Width, 1, nameof(options));
        if (options.Limit is < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.Limit, "Limit must not be negative.");
        if (!Directory.Exists(root))
            throw new DataException($"{root} does not exist or is not a folder. Point folder:<dir> at a folder with one sub-folder of images per class.");

        string dir = root;
        IReadOnlyList<string>? classOrder = null;
        if (split is not null)
        {
            dir = Path.Combine(root, split);
            // The classes are the training split's, so that a label means the same class in both splits.
            classOrder = Directory.GetDirectories(Path.Combine(root, "train")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        }
        var (files, classNames) = List(dir, classOrder);
        if (files.Count == 0)
            throw new DataException($"{dir} holds no .png, .jpg, .jpeg or .webp files. Put the images in one sub-folder per class (e.g. {Path.Combine(dir, "cats")}).");
        if (options.Limit is { } limit && files.Count > limit) files = files.Take(limit).ToList();

        var shape = new ImageShape(options.Channels, options.Height, options.Width);
        var skipped = new List<string>();
        bool eager = (long)files.Count * shape.Pixels <= options.DecodedBudgetBytes;
        byte[]? decoded = eager ? new byte[checked(files.Count * shape.Pixels)] : null;
        var bad = new string?[files.Count];
        if (eager || options.OnBadFile == BadFilePolicy.Skip)
        {
            var scratch = new ThreadLocal<byte[]>(() => new byte[shape.Pixels]);
            ParallelReads.For(files.Count, Environment.ProcessorCount, i =>
            {
                var failure = decoded is null
                    ? ImageDecoder.TryDecode(files[i].Path, shape, scratch.Value!, options.MaxImagePixels)
                    : DecodeInto(files[i].Path, shape, decoded, i, options.MaxImagePixels);
                if (failure != DecodeFailure.None) bad[i] = Describe(failure);
            });
        }
        var keep = new List<int>(files.Count);
        for (int i = 0; i < files.Count; i++)
        {
            if (bad[i] is null) { keep.Add(i); continue; }
            if (options.OnBadFile == BadFilePolicy.Fail)
                throw new DataException($"{files[i].Path} {bad[i]}. Delete or replace it, or open the folder with bad files skipped (--on-bad-image skip).");
            skipped.Add(files[i].Path);
        }
        if (keep.Count == 0)
            throw new DataException($"{dir} has no readable images: all {skipped.Count} image files failed to decode (first: {skipped[0]}). Replace them with valid PNG, JPEG or WebP files.");
        if (decoded is not null && keep.Count < files.Count)
        {
            var compact = new byte[keep.Count * shape.Pixels];
            for (int k = 0; k < keep.Count; k++)
                decoded.AsSpan(keep[k] * shape.Pixels, shape.Pixels).CopyTo(compact.AsSpan(k * shape.Pixels));
            decoded = compact;
        }
        var name = split is null ? $"folder:{root}" : $"folder:{root}/{split}";
        return new FolderDataset(name, dir, shape, keep.Select(k => files[k].Path).ToArray(), keep.Select(k => files[k].Label).ToArray(),
            decoded, classNames, skipped, options.MaxImagePixels);
    }

    private static DecodeFailure DecodeInto(string path, ImageShape shape, byte[] decoded, int i, long maxPixels) =>
        ImageDecoder.TryDecode(path, shape, decoded.AsSpan(i * shape.Pixels, shape.Pixels), maxPixels);

    private static string Describe(DecodeFailure failure) => failure == DecodeFailure.TooManyPixels
        ? "declares more pixels than max-image-pixels allows (a decompression bomb is refused before it is decoded)"
        : "is not a readable PNG, JPEG or WebP image";

    public int Label(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        return labels[index];
    }

    /// <summary>The image's path relative to the folder (or to its split), with '/' separators.</summary>
    public string Key(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        return Path.GetRelativePath(root, paths[index]).Replace('\\', '/');
    }

    /// <summary>The image's full path.</summary>
    public string PathOf(int index) => paths[index];

    public void CopyImage(int index, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        int p = Shape.Pixels;
        if (pixels is not null)
        {
            PixelBytes.ToUnitFloats(pixels.AsSpan(index * p, p), destination);
            return;
        }
        var bytes = new byte[p];
        var failure = ImageDecoder.TryDecode(paths[index], Shape, bytes, maxPixels);
        if (failure != DecodeFailure.None)
            throw new DataException($"{paths[index]} {Describe(failure)} (it changed since the folder was opened?). Replace it, or train with --on-bad-image skip.");
        PixelBytes.ToUnitFloats(bytes, destination);
    }

    /// <summary>Holds only managed memory; disposing is a no-op kept for the <see cref="IImageDataset"/> contract.</summary>
    public void Dispose() { }

    /// <summary>Image files with their labels in ordinal path order, and the class names (empty when unlabelled).</summary>
    private static (List<(string Path, int Label)> Files, string[] ClassNames) List(string root, IReadOnlyList<string>? classOrder)
    {
        var classDirs = Directory.GetDirectories(root).Order(StringComparer.Ordinal).ToArray();
        if (classDirs.Length == 0)
            return (ImagesUnder(root, SearchOption.TopDirectoryOnly).Select(f => (f, -1)).ToList(), []);

        var stray = ImagesUnder(root, SearchOption.TopDirectoryOnly).FirstOrDefault();
        if (stray is not null)
            throw new DataException($"{stray} lies directly in {root}, which has class sub-folders: move it into the sub-folder of its class.");
        var names = classOrder?.ToArray() ?? classDirs.Select(d => Path.GetFileName(d)).ToArray();
        var files = new List<(string, int)>();
        foreach (var dir in classDirs)
        {
            int label = Array.IndexOf(names, Path.GetFileName(dir));
            if (label < 0)
                throw new DataException($"{dir} is a class the training split does not have ({Path.GetDirectoryName(root)}/train has {string.Join(", ", names)}). Give both splits the same class folders.");
            files.AddRange(ImagesUnder(dir, SearchOption.AllDirectories).Select(f => (f, label)));
        }
        return (files, names);
    }

    private static IEnumerable<string> ImagesUnder(string dir, SearchOption depth) =>
        Directory.EnumerateFiles(dir, "*", depth)
            .Where(f => Extensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal);
}
