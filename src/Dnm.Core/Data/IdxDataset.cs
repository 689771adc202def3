using System.Globalization;

namespace Dnm.Core.Data;

/// <summary>How to open an IDX image set.</summary>
public sealed record IdxOptions
{
    /// <summary>Keep only the first N samples (null: all). The whole file is still validated.</summary>
    public int? Limit { get; init; }

    /// <summary>Dataset name for logs; defaults to "idx:&lt;images path&gt;".</summary>
    public string? Name { get; init; }

    /// <summary>Class names, index = label. Null: "0".."K-1" with K = max(max label + 1, <see cref="MinClasses"/>).</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>Lower bound on the derived class count, so a small subset of MNIST still has 10 classes.</summary>
    public int MinClasses { get; init; }

    /// <summary>The advice appended to every error message about these files.</summary>
    public string FixHint { get; init; } = "Replace it with a valid IDX file.";
}

/// <summary>
/// An MNIST-style IDX image set (images file plus optional labels file), held in memory as bytes
/// (a quarter of the float size) and scaled to [0,1] floats on copy.
/// </summary>
public sealed class IdxDataset : IImageDataset
{
    private readonly byte[] _pixels;
    private readonly byte[]? _labels;

    private IdxDataset(string name, ImageShape shape, int count, byte[] pixels, byte[]? labels, IReadOnlyList<string> classNames)
    {
        Name = name;
        Shape = shape;
        Count = count;
        _pixels = pixels;
        _labels = labels;
        ClassNames = classNames;
    }

    public string Name { get; }

    public int Count { get; }

    public ImageShape Shape { get; }

    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Reads and validates the files; throws <see cref="DataException"/> naming the bad file.</summary>
    public static IdxDataset Open(string imagesPath, string? labelsPath = null, IdxOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(imagesPath);
        options ??= new IdxOptions();
        if (options.Limit is < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.Limit, "Limit must not be negative.");

        var images = IdxFile.Read(imagesPath, IdxFile.ImagesMagic, options.Limit, options.FixHint);
        var shape = new ImageShape(1, images.Dims[1], images.Dims[2]);
        string name = options.Name ?? $"idx:{imagesPath}";
        if (labelsPath is null)
            return new IdxDataset(name, shape, images.Count, images.Data, null, []);

        // Labels are small: read them all, so the class count does not depend on the limit.
        var labels = IdxFile.Read(labelsPath, IdxFile.LabelsMagic, null, options.FixHint);
        if (labels.Count != images.TotalCount)
            throw new DataException(
                $"{labelsPath} has {labels.Count} labels but {imagesPath} has {images.TotalCount} images: the two files do not belong together. {options.FixHint}");

        // Labels are unsigned bytes (the reader accepts no other type), so every value is already below 256.
        int maxLabel = labels.Data.Length == 0 ? -1 : labels.Data.Max();
        var classNames = options.ClassNames ?? Enumerable.Range(0, Math.Max(maxLabel + 1, options.MinClasses))
            .Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        if (maxLabel >= classNames.Count)
            throw new DataException(
                $"{labelsPath} contains label {maxLabel}, but only {classNames.Count} class names are known. {options.FixHint}");

        return new IdxDataset(name, shape, images.Count, images.Data, labels.Data.AsSpan(0, images.Count).ToArray(), classNames);
    }

    public int Label(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        return _labels is null ? -1 : _labels[index];
    }

    /// <summary>The index, zero-padded to the width of the largest one, so keys sort like indices.</summary>
    public string Key(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        return index.ToString(KeyFormat, CultureInfo.InvariantCulture);
    }

    private string KeyFormat => "D" + Math.Max(1, (Count - 1).ToString(CultureInfo.InvariantCulture).Length).ToString(CultureInfo.InvariantCulture);

    public void CopyImage(int index, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        int p = Shape.Pixels;
        PixelBytes.ToUnitFloats(_pixels.AsSpan(index * p, p), destination);
    }

    /// <summary>Holds only managed memory; disposing is a no-op kept for the <see cref="IImageDataset"/> contract.</summary>
    public void Dispose() { }
}
