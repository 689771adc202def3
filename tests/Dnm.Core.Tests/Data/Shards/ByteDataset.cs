using System.Globalization;
using Dnm.Core.Data;

namespace Dnm.Core.Tests.Data.Shards;

/// <summary>Byte-valued images (so PNG packing is lossless), labelled i % classes, keyed "k/NNNN".</summary>
internal sealed class ByteDataset(int count, ImageShape shape, int classes = 3, int seed = 1) : IImageDataset
{
    private readonly byte[] pixels = Make(count * shape.Pixels, seed);

    private static byte[] Make(int n, int seed)
    {
        var bytes = new byte[n];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public string Name => "bytes";
    public int Count => count;
    public ImageShape Shape => shape;
    public IReadOnlyList<string> ClassNames { get; } = Enumerable.Range(0, classes).Select(c => $"class{c}").ToArray();
    public int Label(int index) => index % classes;
    public string Key(int index) => $"k/{index.ToString("D4", CultureInfo.InvariantCulture)}.png";
    public void CopyImage(int index, Span<float> destination) =>
        PixelBytes.ToUnitFloats(pixels.AsSpan(index * shape.Pixels, shape.Pixels), destination);
    public void Dispose() { }

    public float[] Image(int index)
    {
        var f = new float[shape.Pixels];
        CopyImage(index, f);
        return f;
    }
}
