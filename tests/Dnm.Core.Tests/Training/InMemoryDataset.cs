using Dnm.Core.Data;

namespace Dnm.Core.Tests.Training;

/// <summary>A labelled in-memory dataset of Gaussian blobs whose position depends on the label.</summary>
internal sealed class InMemoryDataset(float[] pixels, int[] labels, ImageShape shape) : IImageDataset
{
    public static InMemoryDataset Blobs(int count, int seed)
    {
        var shape = StepEngineSpec.Shape;
        var rng = new Random(seed);
        var labels = new int[count];
        var centres = new (int X, int Y)[] { (3, 3), (8, 3), (3, 8), (8, 8) };
        var data = new float[count * shape.Pixels];
        for (int i = 0; i < count; i++)
        {
            labels[i] = i % 4;
            var (cx, cy) = centres[labels[i]];
            cx += rng.Next(-1, 2);
            cy += rng.Next(-1, 2);
            for (int y = 0; y < shape.Height; y++)
                for (int x = 0; x < shape.Width; x++)
                    data[i * shape.Pixels + y * shape.Width + x] = MathF.Exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / 4f);
        }
        return new InMemoryDataset(data, labels, shape);
    }

    public string Name => "blobs";
    public int Count => labels.Length;
    public ImageShape Shape => shape;
    public IReadOnlyList<string> ClassNames { get; } = ["a", "b", "c", "d"];
    public int Label(int index) => labels[index];
    public string Key(int index) => index.ToString(System.Globalization.CultureInfo.InvariantCulture);
    public void CopyImage(int index, Span<float> destination) => pixels.AsSpan(index * shape.Pixels, shape.Pixels).CopyTo(destination);
    public void Dispose() { }
}
