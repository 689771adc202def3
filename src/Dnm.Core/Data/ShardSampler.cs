namespace Dnm.Core.Data;

/// <summary>
/// Which samples each worker trains on, as pure functions of (count, seed, epoch, step, batch, rank, world).
/// Nothing is stored, so a coordinator that restarts from a checkpoint, or a worker that joins mid-epoch,
/// recomputes exactly the same shards from the data cursor alone.
/// </summary>
/// <remarks>
/// An epoch is a permutation of [0, count). Step s takes the global batch at positions
/// [s·B, min((s+1)·B, count)): the last batch may be partial, so every sample is seen exactly once per epoch.
/// Rank r of W takes a contiguous slice of that batch; slice sizes differ by at most one and the slices,
/// concatenated in rank order, are the global batch. When membership changes, recomputing the shards with
/// the new world size keeps that guarantee for the retried step.
/// </remarks>
public static class ShardSampler
{
    /// <summary>Number of steps in one epoch: ceil(count / globalBatch).</summary>
    public static int StepsPerEpoch(int count, int globalBatch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(globalBatch, 1);
        return (int)(((long)count + globalBatch - 1) / globalBatch);
    }

    /// <summary>The epoch's sample order: a Fisher–Yates shuffle of [0, count) driven by <see cref="SplitMix64"/>.</summary>
    public static int[] EpochOrder(int count, ulong seed, int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        var order = new int[count];
        for (int i = 0; i < count; i++)
            order[i] = i;

        // Hash (seed, epoch) together so that neighbouring seeds or epochs give unrelated streams.
        var rng = new SplitMix64(SplitMix64.Mix(seed) ^ SplitMix64.Mix(0xD1B54A32D192ED03UL + (ulong)epoch));
        for (int i = count - 1; i > 0; i--)
        {
            int j = (int)rng.NextBelow((uint)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>Positions [start, start+length) of step <paramref name="step"/>'s global batch within the epoch order.</summary>
    public static (int Start, int Length) GlobalBatchRange(int count, int step, int globalBatch)
    {
        int steps = StepsPerEpoch(count, globalBatch);
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(step, steps);
        int start = checked(step * globalBatch);
        return (start, Math.Min(globalBatch, count - start));
    }

    /// <summary>The sample indices of step <paramref name="step"/>'s global batch, sliced from a precomputed epoch order.</summary>
    public static ReadOnlySpan<int> GlobalBatch(ReadOnlySpan<int> epochOrder, int step, int globalBatch)
    {
        var (start, length) = GlobalBatchRange(epochOrder.Length, step, globalBatch);
        return epochOrder.Slice(start, length);
    }

    /// <summary>The sample indices of step <paramref name="step"/>'s global batch (recomputes the epoch order).</summary>
    public static int[] GlobalBatch(int count, ulong seed, int epoch, int step, int globalBatch) =>
        GlobalBatch(EpochOrder(count, seed, epoch), step, globalBatch).ToArray();

    /// <summary>
    /// The slice [start, start+length) of a batch of <paramref name="batchLength"/> samples that rank
    /// <paramref name="rank"/> of <paramref name="worldSize"/> takes. The first (batchLength mod worldSize)
    /// ranks take one sample more; a batch shorter than the world leaves the last ranks empty.
    /// </summary>
    public static (int Start, int Length) ShardRange(int batchLength, int rank, int worldSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batchLength);
        ValidateRank(rank, worldSize);
        int baseSize = batchLength / worldSize;
        int remainder = batchLength % worldSize;
        int start = rank * baseSize + Math.Min(rank, remainder);
        return (start, baseSize + (rank < remainder ? 1 : 0));
    }

    /// <summary>Rank <paramref name="rank"/>'s shard of step <paramref name="step"/>, sliced from a precomputed epoch order.</summary>
    public static ReadOnlySpan<int> Shard(ReadOnlySpan<int> epochOrder, int step, int globalBatch, int rank, int worldSize)
    {
        ValidateWorld(globalBatch, rank, worldSize);
        var batch = GlobalBatch(epochOrder, step, globalBatch);
        var (start, length) = ShardRange(batch.Length, rank, worldSize);
        return batch.Slice(start, length);
    }

    /// <summary>Rank <paramref name="rank"/>'s shard of step <paramref name="step"/> (recomputes the epoch order).</summary>
    public static int[] Shard(int count, ulong seed, int epoch, int step, int globalBatch, int rank, int worldSize)
    {
        ValidateWorld(globalBatch, rank, worldSize);
        return Shard(EpochOrder(count, seed, epoch), step, globalBatch, rank, worldSize).ToArray();
    }

    private static void ValidateWorld(int globalBatch, int rank, int worldSize)
    {
        ValidateRank(rank, worldSize);
        // A full batch smaller than the world would leave workers idle on every step: a configuration mistake.
        if (globalBatch < worldSize)
            throw new ArgumentOutOfRangeException(nameof(globalBatch), globalBatch,
                $"The global batch ({globalBatch}) must be at least the world size ({worldSize}) so that every worker gets samples.");
    }

    private static void ValidateRank(int rank, int worldSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, worldSize);
    }
}
