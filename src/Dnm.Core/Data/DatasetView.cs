using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Dnm.Core.Data;

/// <summary>Which samples of a dataset a run evaluates on.</summary>
public enum EvaluationSplit
{
    /// <summary>A held-out split: the dataset's own test split, a --test-dataset, or the key-hash part of --test-fraction.</summary>
    Test,
    /// <summary>No held-out split exists: the map is evaluated on its training samples, and says so.</summary>
    Train,
}

/// <summary>
/// Some samples of a dataset, by index, in the base's order. It is how a seeded <c>--limit</c> subset and a key-hash
/// <c>--test-fraction</c> split are made for every kind of dataset alike; nothing is copied.
/// </summary>
public sealed class DatasetView : IImageDataset
{
    private readonly IImageDataset inner;
    private readonly int[] indices;
    private readonly bool ownsInner;

    public DatasetView(IImageDataset inner, int[] indices, string name, bool ownsInner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(indices);
        foreach (var i in indices)
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)i, (uint)inner.Count, nameof(indices));
        this.inner = inner;
        this.indices = indices;
        this.ownsInner = ownsInner;
        Name = name;
    }

    public string Name { get; }

    public int Count => indices.Length;

    public ImageShape Shape => inner.Shape;

    public IReadOnlyList<string> ClassNames => inner.ClassNames;

    public bool DecodesOnRead => inner.DecodesOnRead;

    /// <summary>The dataset the view selects from.</summary>
    public IImageDataset Inner => inner;

    /// <summary>The inner dataset's index of each of this view's samples.</summary>
    public IReadOnlyList<int> Indices => indices;

    public int Label(int index) => inner.Label(indices[index]);

    public string Key(int index) => inner.Key(indices[index]);

    public void CopyImage(int index, Span<float> destination) => inner.CopyImage(indices[index], destination);

    public void Dispose()
    {
        if (ownsInner) inner.Dispose();
    }

    /// <summary>The first <paramref name="count"/> samples of <paramref name="data"/> (all of it when it has no more); the view owns it.</summary>
    public static IImageDataset First(IImageDataset data, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return count >= data.Count ? data : new DatasetView(data, Enumerable.Range(0, count).ToArray(), $"{data.Name} (first {count})", ownsInner: true);
    }

    /// <summary>
    /// A seeded random subset of <paramref name="count"/> samples, kept in the base's order: the first
    /// <paramref name="count"/> of a <see cref="SplitMix64"/> shuffle by <paramref name="seed"/>, so every class of a
    /// folder is drawn from, not the first ones in path order. The same (seed, count) gives the same subset on every machine.
    /// </summary>
    public static IImageDataset Subset(IImageDataset data, int count, ulong seed, bool ownsInner = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count >= data.Count) return data;
        // Only the first `count` positions of a Fisher–Yates shuffle are needed: draw them and stop.
        var order = new int[data.Count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        var rng = new SplitMix64(SplitMix64.Mix(seed) ^ 0x6C1A_5D3B_92E7_F041UL);
        for (int i = 0; i < count; i++)
        {
            int j = i + (int)rng.NextBelow((uint)(order.Length - i));
            (order[i], order[j]) = (order[j], order[i]);
        }
        var chosen = order.AsSpan(0, count).ToArray();
        Array.Sort(chosen);
        return new DatasetView(data, chosen, $"{data.Name} (random {count} of {data.Count}, seed {seed})", ownsInner);
    }

    /// <summary>
    /// The part of <paramref name="data"/> on one side of a key-hash split: a sample is held out when the first eight
    /// bytes of the SHA-256 of its UTF-8 key, read as a big-endian fraction of 2^64, are below <paramref name="fraction"/>.
    /// A sample's side depends on its key alone, so the split stays put when the dataset grows.
    /// </summary>
    public static IImageDataset KeySplit(IImageDataset data, double fraction, EvaluationSplit side)
    {
        if (!(fraction > 0 && fraction < 1))
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "The test fraction must lie strictly between 0 and 1.");
        var chosen = new List<int>();
        for (int i = 0; i < data.Count; i++)
            if (IsHeldOut(data.Key(i), fraction) == (side == EvaluationSplit.Test))
                chosen.Add(i);
        if (chosen.Count == 0)
            throw new DataException($"{data.Name}: a test fraction of {fraction} leaves its {(side == EvaluationSplit.Test ? "test" : "training")} part empty ({data.Count} samples). Use a {(side == EvaluationSplit.Test ? "larger" : "smaller")} --test-fraction.");
        string part = side == EvaluationSplit.Test ? "test" : "train";
        return new DatasetView(data, chosen.ToArray(), $"{data.Name} ({part} part of a {fraction} key-hash split)", ownsInner: true);
    }

    /// <summary>Whether the sample with <paramref name="key"/> is held out by a key-hash split of <paramref name="fraction"/>.</summary>
    public static bool IsHeldOut(string key, double fraction)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(key), hash);
        ulong h = BinaryPrimitives.ReadUInt64BigEndian(hash);
        // Compare in the 53 bits a double holds exactly.
        return (h >> 11) < (ulong)(fraction * (1UL << 53));
    }
}
