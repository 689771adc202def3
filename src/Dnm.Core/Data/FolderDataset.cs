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

    /// <summary>Keep only the first N readable images in file order (null: all).</summary>
    public int? Limit { get; init; }
}

/// <summary>
/// Images in one sub-folder per class (labels follow the ordinal order of the folder names), or, when the
/// folder has no sub-folders, an unlabelled set. PNG and JPEG files are decoded with SkiaSharp, converted to the
/// configured channels, resized with a high-quality filter and held as bytes. Transparent pixels are composited
/// over black. File order is the ordinal order of the relative paths, so every machine sees the same indices.
/// </summary>
public sealed class FolderDataset : IImageDataset
{
    private static readonly string[] Extensions = [".png", ".jpg", ".jpeg"];

    private readonly byte[] _pixels;
    private readonly int[] _labels;

    private FolderDataset(string name, ImageShape shape, byte[] pixels, int[] labels, IReadOnlyList<string> classNames, IReadOnlyList<string> skipped)
    {
        Name = name;
        Shape = shape;
        _pixels = pixels;
        _labels = labels;
        ClassNames = classNames;
        SkippedFiles = skipped;
    }

    public string Name { get; }

    public int Count => _labels.Length;

    public ImageShape Shape { get; }

    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Files left out under <see cref="BadFilePolicy.Skip"/>, in file order.</summary>
    public IReadOnlyList<string> SkippedFiles { get; }

    public int SkippedCount => SkippedFiles.Count;

    /// <summary>Lists, decodes and converts every image; throws <see cref="DataException"/> for a missing or empty folder.</summary>
    public static FolderDataset Open(string root, FolderOptions? options = null)
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

        var (files, classNames) = List(root);
        if (files.Count == 0)
            throw new DataException($"{root} holds no .png, .jpg or .jpeg files. Put the images in one sub-folder per class (e.g. {Path.Combine(root, "cats")}).");

        var shape = new ImageShape(options.Channels, options.Height, options.Width);
        int capacity = Math.Min(files.Count, options.Limit ?? int.MaxValue);
        var pixels = new byte[checked(capacity * shape.Pixels)];
        var labels = new List<int>(capacity);
        var skipped = new List<string>();
        foreach (var (path, label) in files)
        {
            if (labels.Count == capacity)
                break;
            if (ImageDecoder.TryDecode(path, shape, pixels.AsSpan(labels.Count * shape.Pixels, shape.Pixels)) != DecodeFailure.None)
            {
                if (options.OnBadFile == BadFilePolicy.Fail)
                    throw new DataException($"{path} is not a readable PNG or JPEG image. Delete or replace it, or open the folder with bad files skipped.");
                skipped.Add(path);
                continue;
            }
            labels.Add(label);
        }
        if (labels.Count == 0)
            throw new DataException($"{root} has no readable images: all {skipped.Count} image files failed to decode (first: {skipped[0]}). Replace them with valid PNG or JPEG files.");
        if (labels.Count < capacity)
            Array.Resize(ref pixels, labels.Count * shape.Pixels);
        return new FolderDataset($"folder:{root}", shape, pixels, labels.ToArray(), classNames, skipped);
    }

    public int Label(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        return _labels[index];
    }

    public void CopyImage(int index, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        int p = Shape.Pixels;
        PixelBytes.ToUnitFloats(_pixels.AsSpan(index * p, p), destination);
    }

    /// <summary>Holds only managed memory; disposing is a no-op kept for the <see cref="IImageDataset"/> contract.</summary>
    public void Dispose() { }

    /// <summary>Image files with their labels in ordinal path order, and the class names (empty when unlabelled).</summary>
    private static (List<(string Path, int Label)> Files, string[] ClassNames) List(string root)
    {
        var classDirs = Directory.GetDirectories(root).Order(StringComparer.Ordinal).ToArray();
        if (classDirs.Length == 0)
            return (ImagesUnder(root, SearchOption.TopDirectoryOnly).Select(f => (f, -1)).ToList(), []);

        var stray = ImagesUnder(root, SearchOption.TopDirectoryOnly).FirstOrDefault();
        if (stray is not null)
            throw new DataException($"{stray} lies directly in {root}, which has class sub-folders: move it into the sub-folder of its class.");
        var files = classDirs
            .SelectMany((dir, label) => ImagesUnder(dir, SearchOption.AllDirectories).Select(f => (f, label)))
            .ToList();
        return (files, classDirs.Select(d => Path.GetFileName(d)).ToArray());
    }

    private static IEnumerable<string> ImagesUnder(string dir, SearchOption depth) =>
        Directory.EnumerateFiles(dir, "*", depth)
            .Where(f => Extensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal);
}
