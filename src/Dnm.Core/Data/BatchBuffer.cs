namespace Dnm.Core.Data;

/// <summary>
/// Reusable host memory for one batch: images as batch×C×H×W floats and labels as ints. The trainer
/// allocates one per worker and wraps <see cref="Pixels"/> in a tensor, so no step allocates.
/// </summary>
public sealed class BatchBuffer
{
    public BatchBuffer(ImageShape shape, int capacity)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Shape = shape;
        Capacity = capacity;
        Pixels = new float[checked(capacity * shape.Pixels)];
        Labels = new int[capacity];
    }

    public ImageShape Shape { get; }

    public int Capacity { get; }

    /// <summary>Capacity×Pixels floats; only the first <see cref="Count"/>×Pixels are valid after <see cref="Fill"/>.</summary>
    public float[] Pixels { get; }

    /// <summary>Labels of the filled samples (-1 where unknown); only the first <see cref="Count"/> are valid.</summary>
    public int[] Labels { get; }

    /// <summary>Number of samples written by the last <see cref="Fill"/> (a last batch may be partial).</summary>
    public int Count { get; private set; }

    /// <summary>The valid part of <see cref="Pixels"/>.</summary>
    public Span<float> FilledPixels => Pixels.AsSpan(0, Count * Shape.Pixels);

    /// <summary>Copies the samples at <paramref name="indices"/> into this buffer, in order.</summary>
    public int Fill(IImageDataset dataset, ReadOnlySpan<int> indices)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        if (dataset.Shape != Shape)
            throw new ArgumentException($"Dataset {dataset.Name} has images of {dataset.Shape}, but this buffer holds {Shape}.", nameof(dataset));
        if (indices.Length > Capacity)
            throw new ArgumentException($"{indices.Length} indices do not fit in a buffer of {Capacity}.", nameof(indices));
        Pack(dataset, indices, Pixels, Labels);
        Count = indices.Length;
        return Count;
    }

    /// <summary>
    /// Copies the samples at <paramref name="indices"/> into caller-owned spans:
    /// image i goes to pixels[i·P, (i+1)·P) and its label to labels[i].
    /// </summary>
    public static void Pack(IImageDataset dataset, ReadOnlySpan<int> indices, Span<float> pixels, Span<int> labels)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        int p = dataset.Shape.Pixels;
        if (pixels.Length < indices.Length * p)
            throw new ArgumentException($"{indices.Length} images of {p} pixels need {indices.Length * p} floats, got {pixels.Length}.", nameof(pixels));
        if (labels.Length < indices.Length)
            throw new ArgumentException($"{indices.Length} labels do not fit in {labels.Length}.", nameof(labels));
        foreach (var index in indices)
            if ((uint)index >= (uint)dataset.Count)
                throw new ArgumentOutOfRangeException(nameof(indices), index, $"Index outside dataset {dataset.Name} of {dataset.Count} samples.");
        for (int i = 0; i < indices.Length; i++)
            labels[i] = dataset.Label(indices[i]);
        if (!dataset.DecodesOnRead || indices.Length == 1)
        {
            for (int i = 0; i < indices.Length; i++)
                dataset.CopyImage(indices[i], pixels.Slice(i * p, p));
            return;
        }
        // Reading and decoding (shards, large folders) dominates: spread the images over the cores. Each image lands in
        // its own slot, so the result is the same for any thread count.
        unsafe
        {
            fixed (float* target = pixels)
            {
                var at = (nint)target;
                var ids = indices.ToArray();
                ParallelReads.For(ids.Length, DecodeThreads, i =>
                    dataset.CopyImage(ids[i], new Span<float>((float*)at + (long)i * p, p)));
            }
        }
    }

    /// <summary>Threads that decode one batch: every core (the step's torch threads wait for the batch meanwhile, or it is prefetched).</summary>
    public static int DecodeThreads { get; } = Math.Max(1, Environment.ProcessorCount);
}
