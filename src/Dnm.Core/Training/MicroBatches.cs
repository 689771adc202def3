namespace Dnm.Core.Training;

/// <summary>
/// The fixed unit of work of a step, whatever the world size. A global batch of B samples is cut into
/// M = the next power of two ≥ ⌈B / <see cref="MaxSize"/>⌉ micro-batches whose sizes differ by at most one.
/// Each micro-batch is computed alone (on one shard thread, torch single-threaded), so its contribution
/// (soft counts f, statistics) does not depend on which rank or thread computes it; the contributions are
/// then summed by <see cref="FixedOrderSum"/> in one fixed binary tree over the micro-batch index. Ranks take
/// contiguous runs of micro-batches, so N workers end bitwise equal to one process (docs/cluster.md,
/// "World-size invariance").
/// </summary>
/// <param name="MaxSize">The most samples one micro-batch holds (config key micro-batch; see <see cref="For"/>).</param>
public sealed record MicroBatches(int MaxSize)
{
    /// <summary>
    /// The automatic micro-batch's upper bound: 64 keeps the fully connected model's per-micro-batch gradient
    /// (a whole P-vector each) cheap beside its GEMMs, and still gives 4 ranks work at batch 256.
    /// </summary>
    public const int AutoMaxSize = 64;

    /// <summary>
    /// The micro-batches of a run: <c>micro-batch</c> when set, else the largest size up to <see cref="AutoMaxSize"/>
    /// whose largest libtorch step buffer stays below <paramref name="maxBufferBytes"/> (im2col of the conv encoder).
    /// It depends on the model and the config only, never on the thread count, the device or the world size.
    /// </summary>
    public static MicroBatches For(int configured, long bufferBytesPerSample, long maxBufferBytes)
    {
        if (configured > 0) return new MicroBatches(configured);
        var fits = Math.Clamp(maxBufferBytes / Math.Max(bufferBytesPerSample, 1), 1, AutoMaxSize);
        return new MicroBatches((int)fits);
    }

    /// <summary>Micro-batches of a batch of <paramref name="batchLength"/> samples: a power of two (0 for an empty batch).</summary>
    public int Count(int batchLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batchLength);
        if (batchLength == 0) return 0;
        var needed = (int)(((long)batchLength + MaxSize - 1) / MaxSize);
        return (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)needed);
    }

    /// <summary>Positions [start, start+length) of micro-batch <paramref name="index"/> in the batch; the first (B mod M) hold one more.</summary>
    public (int Start, int Length) Range(int batchLength, int index)
    {
        var m = Count(batchLength);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Math.Max(m, 1));
        return Split(batchLength, index, m);
    }

    /// <summary>The micro-batches [first, first+count) that rank <paramref name="rank"/> of <paramref name="worldSize"/> computes.</summary>
    public (int First, int Count) RankRange(int batchLength, int rank, int worldSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, worldSize);
        return Split(Count(batchLength), rank, worldSize);
    }

    /// <summary>The positions [start, start+length) of the batch that rank <paramref name="rank"/> trains on: its micro-batches' samples.</summary>
    public (int Start, int Length) SampleRange(int batchLength, int rank, int worldSize)
    {
        var (first, count) = RankRange(batchLength, rank, worldSize);
        var m = Count(batchLength);
        if (count == 0) return (first == m ? batchLength : Split(batchLength, first, m).Start, 0);
        var start = Split(batchLength, first, m).Start;
        var last = Split(batchLength, first + count - 1, m);
        return (start, last.Start + last.Length - start);
    }

    /// <summary>The blocks of the fixed tree that rank <paramref name="rank"/> sends: one vector each (see <see cref="FixedOrderSum.Blocks"/>).</summary>
    public IReadOnlyList<(int Start, int Size)> Blocks(int batchLength, int rank, int worldSize)
    {
        var (first, count) = RankRange(batchLength, rank, worldSize);
        return FixedOrderSum.Blocks(first, count);
    }

    /// <summary>
    /// Sums every rank's contribution to a batch of <paramref name="batchLength"/> in the fixed tree into <paramref name="sum"/>:
    /// <paramref name="contributions"/>[r] holds rank r's <see cref="Blocks"/>, one vector of sum's length each (they are
    /// summed in place). The result is the same bits as one process's sum of every micro-batch.
    /// </summary>
    public void SumContributions(int batchLength, IReadOnlyList<Memory<float>> contributions, Span<float> sum)
    {
        var leaves = Count(batchLength);
        if (leaves == 0)
        {
            sum.Clear();
            return;
        }
        var length = sum.Length;
        var sizes = new int[leaves];
        var slots = new Memory<float>[leaves];
        for (var rank = 0; rank < contributions.Count; rank++)
        {
            var blocks = Blocks(batchLength, rank, contributions.Count);
            if (contributions[rank].Length != blocks.Count * length)
                throw new ArgumentException($"rank {rank} of {contributions.Count} sends {blocks.Count} vectors of {length} floats, not {contributions[rank].Length} floats");
            for (var b = 0; b < blocks.Count; b++)
            {
                sizes[blocks[b].Start] = blocks[b].Size;
                slots[blocks[b].Start] = contributions[rank].Slice(b * length, length);
            }
        }
        FixedOrderSum.Reduce(i => slots[i].Span, sizes, 0, leaves);
        slots[0].Span.CopyTo(sum);
    }

    private static (int Start, int Length) Split(int total, int index, int parts)
    {
        var size = total / parts;
        var remainder = total % parts;
        return (index * size + Math.Min(index, remainder), size + (index < remainder ? 1 : 0));
    }
}

/// <summary>
/// Sums of per-micro-batch vectors in one fixed perfect binary tree over the micro-batch index: node (s, 2h) is
/// node (s, h) + node (s + h, h), element-wise in float32. Whoever holds a whole aligned subtree may sum it
/// locally and send the result, so the root is the same bits whether one process summed every leaf or N ranks
/// each sent the blocks of their contiguous range. This is the reduction of <see cref="MicroBatches"/>.
/// </summary>
public static class FixedOrderSum
{
    /// <summary>Gives the span of the partial sum in slot <paramref name="index"/> (a leaf, or a block starting there).</summary>
    public delegate Span<float> Slot(int index);

    /// <summary>
    /// The aligned power-of-two blocks that exactly cover [first, first+count), in order: each starts at a multiple
    /// of its size and is as large as alignment and the range allow. A range of a power-of-two world over a
    /// power-of-two tree is one block; any other range is at most 2·log2(M) blocks.
    /// </summary>
    public static IReadOnlyList<(int Start, int Size)> Blocks(int first, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(first);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var blocks = new List<(int, int)>();
        var end = first + count;
        for (var i = first; i < end;)
        {
            var size = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(end - i) + 1) >> 1; // largest power of two ≤ end − i
            if (i != 0) size = Math.Min(size, i & -i);                                                  // aligned at i
            blocks.Add((i, size));
            i += size;
        }
        return blocks;
    }

    /// <summary>
    /// Sums the block [start, start+size) (aligned, size a power of two) in place into slot <paramref name="start"/>.
    /// <paramref name="sizes"/>[i] is the width of the partial sum slot i holds on entry (1 for a leaf; a received
    /// block's size; 0 where no partial sum starts); slots of one block's interior are consumed.
    /// </summary>
    public static void Reduce(Slot slot, int[] sizes, int start, int size)
    {
        for (var half = 1; half < size; half <<= 1)
        {
            for (var i = start; i < start + size; i += 2 * half)
            {
                if (sizes[i] != half) continue; // already a wider (received) block
                if (sizes[i + half] != half)
                    throw new InvalidOperationException($"the tree's node ({i + half}, {half}) is missing: the blocks do not cover [{start}, {start + size})");
                Add(slot(i), slot(i + half));
                sizes[i] = 2 * half;
                sizes[i + half] = 0;
            }
        }
        if (sizes[start] != size)
            throw new InvalidOperationException($"the blocks do not cover [{start}, {start + size}) exactly");
    }

    /// <summary>accumulator[i] += addend[i]. Lane-parallel adds keep each element's single addition, so vectorising changes no bit.</summary>
    public static void Add(Span<float> accumulator, ReadOnlySpan<float> addend) => Add(accumulator, accumulator, addend);

    /// <summary>
    /// destination[i] = left[i] + right[i]: one node of the tree from its left and right child, in that operand order.
    /// <paramref name="destination"/> may be either child (a reduction among ranks keeps the node where the upper child was).
    /// </summary>
    public static void Add(Span<float> destination, ReadOnlySpan<float> left, ReadOnlySpan<float> right)
    {
        if (left.Length != right.Length || destination.Length != left.Length) throw new ArgumentException("vectors of different lengths", nameof(right));
        var lanes = System.Numerics.Vector<float>.Count;
        var i = 0;
        for (; i <= destination.Length - lanes; i += lanes)
            (new System.Numerics.Vector<float>(left[i..]) + new System.Numerics.Vector<float>(right[i..])).CopyTo(destination[i..]);
        for (; i < destination.Length; i++) destination[i] = left[i] + right[i];
    }
}

/// <summary>
/// Which part of a step's global batch of <paramref name="BatchLength"/> samples a replica computes: the micro-batches
/// of rank <paramref name="Rank"/> of <paramref name="WorldSize"/> (<see cref="MicroBatches.RankRange"/>). One process is rank 0 of 1.
/// </summary>
public readonly record struct RankSlice(int BatchLength, int Rank, int WorldSize);
