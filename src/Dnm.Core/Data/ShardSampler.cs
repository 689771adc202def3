namespace Dnm.Core.Data;

/// <summary>
/// Which samples a step trains on, as pure functions of (count, seed, epoch, step, batch). Nothing is stored, so a
/// coordinator that restarts from a checkpoint, or a worker that joins mid-epoch, recomputes exactly the same batches
/// from the data cursor alone.
/// </summary>
/// <remarks>
/// An epoch is a permutation of [0, count). Step s takes the global batch at positions
/// [s·B, min((s+1)·B, count)): the last batch may be partial, so every sample is seen exactly once per epoch.
/// Which part of it a rank computes is <see cref="Training.MicroBatches.SampleRange"/>: whole micro-batches, so the
/// split never changes what a sample contributes. When membership changes, the retried step is cut for the new world
/// size with the same guarantee.
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
}
