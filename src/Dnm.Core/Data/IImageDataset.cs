namespace Dnm.Core.Data;

/// <summary>Shape of one image: channels × height × width.</summary>
public sealed record ImageShape(int Channels, int Height, int Width)
{
    public int Pixels => Channels * Height * Width;
    public override string ToString() => $"{Channels}x{Height}x{Width}";
}

/// <summary>
/// An image collection with random access by index. Images are float pixels in [0,1], laid out C×H×W.
/// Labels are optional and are used only for evaluation, never for training.
/// </summary>
public interface IImageDataset : IDisposable
{
    /// <summary>Human-readable name, e.g. "mnist/train" or "folder:/data/coil20".</summary>
    string Name { get; }

    int Count { get; }

    ImageShape Shape { get; }

    /// <summary>Names of the classes, index = label. Empty when the dataset has no labels.</summary>
    IReadOnlyList<string> ClassNames { get; }

    bool HasLabels => ClassNames.Count > 0;

    /// <summary>The label of sample <paramref name="index"/>, or -1 when unknown.</summary>
    int Label(int index);

    /// <summary>
    /// The sample's stable name: the WebDataset key of a shard sample, the relative path of a folder image, the
    /// zero-padded index of an IDX image. Key-hash splits (<c>test-fraction</c>) and placements use it.
    /// </summary>
    string Key(int index);

    /// <summary>Whether <see cref="CopyImage"/> reads and decodes (shards): batches are then filled on several threads.</summary>
    bool DecodesOnRead => false;

    /// <summary>Copies image <paramref name="index"/> into <paramref name="destination"/> (length Shape.Pixels).</summary>
    void CopyImage(int index, Span<float> destination);
}
