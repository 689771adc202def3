using Dnm.Core.Runtime;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Model;
using Dnm.Core.Som;
using Dnm.Core.Telemetry;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// One replica of the model and the three phases of a data-parallel DNM step. Nothing here knows
/// about workers or networks: the caller sums the vectors of phase 1 and 2 over all replicas (or,
/// for one process, passes them straight through) and hands the sums back.
/// <list type="number">
/// <item><see cref="Forward(ReadOnlySpan{float}, ReadOnlySpan{float}, RankSlice, StepMode, Span{float})"/>: encode and decode this rank's micro-batches; write their soft counts f as blocks of the fixed sum tree.</item>
/// <item><see cref="Backward"/>: with the global f, compute P, the loss, its gradient and the SOM statistics, as blocks.</item>
/// <item><see cref="Apply(ReadOnlySpan{float}, int, StepMode, ScheduleValues, StepTrace?)"/>: apply the reduced statistics: L2, Adam, Kohonen rule. Identical on every replica.</item>
/// </list>
/// The global batch is cut into <see cref="MicroBatches"/>, a function of the config and the model only. Each
/// micro-batch is one <see cref="StepShard"/>, run on a thread of its own with torch single-threaded there (see
/// <see cref="ShardThreads"/>), and its vectors are summed in <see cref="FixedOrderSum"/>'s tree: a step's result
/// is the same bits for every thread count and every world size. Phases 1 and 2 keep no tensors on the caller's
/// thread, and phase 3 opens its own dispose scope, so the phases of a step may be called from different
/// threads, one at a time.
/// </summary>
public sealed class StepEngine : IEmbedder, IDisposable
{
    private readonly Tensor softCountsHost;   // (K) on CPU: the global f that the shards read in phase 2
    private readonly Tensor? classProbabilitiesHost; // (K, C) on CPU: the nodes' P(c | j) that the shards read in phase 2 (semi-supervised)
    private readonly StepShard[] shards;
    private readonly ShardThreads threads;

    private bool inFlight;
    private StepMode pendingMode;
    private RankSlice pending;

    /// <param name="maxBatch">The largest global batch a step or an embedding call will hold (the batch size).</param>
    /// <param name="classes">Semi-supervised training: the dataset's classes, whose per-node counts the map learns (<see cref="NodeClasses"/>); 0: unsupervised.</param>
    public StepEngine(DnmConfig config, ImageShape shape, Device device, int maxBatch, int classes = 0)
    {
        Model = DnmModel.Create(config, shape, device);
        Layout = new StepLayout(Model.Parameters.Sum(p => (int)p.numel()), Model.Som.Nodes, config.Latent, classes);
        Updater = new StepUpdater(config, Model, Layout);
        softCountsHost = zeros(new long[] { Layout.Nodes }).DetachFromDisposeScope();
        if (classes > 0) classProbabilitiesHost = zeros(new long[] { Layout.Nodes, classes }).DetachFromDisposeScope();
        MaxLocalBatch = Math.Max(maxBatch, 1);
        var shardCount = MicroBatches.Count(MaxLocalBatch);
        // A GPU runs one micro-batch after the other on one thread; threads only help where the CPU computes.
        var threadCount = device.type == DeviceType.CPU ? Math.Clamp(Runtime.TorchRuntime.StepThreads(config.Threads), 1, shardCount) : 1;
        shards = Enumerable.Range(0, shardCount).Select(_ => new StepShard(config, Model, Layout, MicroBatches.MaxSize)).ToArray();
        // On the CPU torch's intra-op threads stay at one on every shard thread (TorchRuntime: the shards are the parallelism).
        threads = new ShardThreads(threadCount, "dnm-step", device.type == DeviceType.CPU ? () => torch.set_num_threads(1) : null);
    }

    /// <summary>The autoencoder and the lattice (what inference needs, and what checkpoints hold besides Adam's moments).</summary>
    public DnmModel Model { get; }

    /// <summary>Phase 3: Adam, the L2 rule and the Kohonen rule on the reduced statistics.</summary>
    public StepUpdater Updater { get; }

    /// <summary>The class distribution per node of semi-supervised training (null when unsupervised).</summary>
    public NodeClasses? Classes => Updater.Classes;

    public SomLattice Som => Model.Som;
    public AdamOptimizer Optimizer => Updater.Optimizer;
    public StepLayout Layout { get; }
    public Device Device => Model.Device;
    public IReadOnlyList<Parameter> Parameters => Model.Parameters;

    /// <summary>How every batch is cut into micro-batches, whatever the thread count and world size.</summary>
    public MicroBatches MicroBatches => Model.MicroBatches;

    /// <summary>The largest global batch (and embedding call) this engine holds.</summary>
    public int MaxLocalBatch { get; }

    int IEmbedder.MaxBatch => MaxLocalBatch;

    /// <summary>Threads that run phases 1 and 2.</summary>
    public int Threads => threads.Count;

    /// <summary>Shards: one per micro-batch of the largest batch.</summary>
    public int Shards => shards.Length;

    /// <summary>Phase 1 of a whole batch in one process (a world of one): <paramref name="softCounts"/> receives f.</summary>
    public void Forward(ReadOnlySpan<float> images, int count, StepMode mode, Span<float> softCounts) =>
        Forward(images, ReadOnlySpan<float>.Empty, new RankSlice(count, 0, 1), mode, softCounts);

    /// <summary>Vectors of <paramref name="length"/> floats this rank contributes to a reduction (one per block of its micro-batches).</summary>
    public int ContributionLength(RankSlice slice, int length) =>
        MicroBatches.Blocks(slice.BatchLength, slice.Rank, slice.WorldSize).Count * length;

    /// <summary>
    /// Phase 1 on this rank's part of the global batch: <paramref name="images"/> holds the samples of
    /// <see cref="MicroBatches.SampleRange"/> (none on an idle rank), <paramref name="targets"/> their smoothed targets ẑ
    /// (count × D, for the smoothing term of a joint step; empty when the term is off), <paramref name="corrupted"/> the
    /// denoising autoencoder's inputs x̃ (count images; empty when denoise is off), <paramref name="labels"/> the samples'
    /// labels in semi-supervised training (-1: unlabelled; empty otherwise). In joint mode
    /// <paramref name="softCountBlocks"/> receives this rank's f as the sums of its blocks of the fixed tree
    /// (<see cref="ContributionLength"/> of <see cref="StepLayout.Nodes"/>); in one process that is f itself.
    /// </summary>
    public void Forward(ReadOnlySpan<float> images, ReadOnlySpan<float> targets, RankSlice slice, StepMode mode, Span<float> softCountBlocks,
        ReadOnlySpan<float> corrupted = default, ReadOnlySpan<int> labels = default)
    {
        if (inFlight) throw new InvalidOperationException("a step is already in flight; call Apply or Abort first");
        if (slice.BatchLength > MaxLocalBatch) throw new ArgumentException($"batch {slice.BatchLength} exceeds the engine's maximum {MaxLocalBatch}");
        var (start, count) = MicroBatches.SampleRange(slice.BatchLength, slice.Rank, slice.WorldSize);
        if (images.Length != count * Model.Shape.Pixels)
            throw new ArgumentException($"rank {slice.Rank} of {slice.WorldSize} trains on {count} samples of the batch of {slice.BatchLength}, but {images.Length / Math.Max(Model.Shape.Pixels, 1)} images were given");
        inFlight = true;
        pendingMode = mode;
        pending = slice;
        if (!corrupted.IsEmpty && corrupted.Length != images.Length)
            throw new ArgumentException($"{images.Length} image floats but {corrupted.Length} corrupted ones");
        if (!labels.IsEmpty && labels.Length != count)
            throw new ArgumentException($"{count} samples but {labels.Length} labels");
        var active = Load(images, targets, slice.BatchLength, slice.Rank, slice.WorldSize, start, corrupted, labels);
        try
        {
            threads.Run(active, i => shards[i].Forward(mode));
        }
        catch
        {
            Abort();
            throw;
        }
        if (mode != StepMode.Joint)
        {
            softCountBlocks.Clear();
            return;
        }
        SumBlocks(slice, i => shards[i].SoftCounts, Layout.Nodes, softCountBlocks);
    }

    /// <summary>
    /// Phase 2: with the global soft counts, writes this rank's statistics (see <see cref="StepLayout"/>) as the sums of
    /// its blocks of the fixed tree into <paramref name="statBlocks"/> (<see cref="ContributionLength"/> of
    /// <see cref="StepLayout.Length"/>); in one process that is the step's statistics.
    /// </summary>
    public void Backward(ReadOnlySpan<float> globalSoftCounts, Span<float> statBlocks)
    {
        if (!inFlight) throw new InvalidOperationException("Backward before Forward");
        globalSoftCounts[..Layout.Nodes].CopyTo(Runtime.HostTensor.Floats(softCountsHost));
        // Every replica holds the same counts (they change only in Apply, by the reduced sums), so the same P(c | j).
        if (classProbabilitiesHost is not null) Classes!.Probabilities(Runtime.HostTensor.Floats(classProbabilitiesHost));
        var active = MicroBatches.RankRange(pending.BatchLength, pending.Rank, pending.WorldSize).Count;
        var batch = pending.BatchLength;
        try
        {
            threads.Run(active, i => shards[i].Backward(softCountsHost, classProbabilitiesHost, batch));
        }
        catch
        {
            Abort();
            throw;
        }
        SumBlocks(pending, i => shards[i].StatsBuffer, Layout.Length, statBlocks);
    }

    /// <summary>Sums this rank's micro-batch vectors (slot i: the rank's i-th) block by block, into consecutive vectors of <paramref name="output"/>.</summary>
    private void SumBlocks(RankSlice slice, FixedOrderSum.Slot local, int length, Span<float> output)
    {
        var (first, count) = MicroBatches.RankRange(slice.BatchLength, slice.Rank, slice.WorldSize);
        var blocks = FixedOrderSum.Blocks(first, count);
        if (output.Length < blocks.Count * length)
            throw new ArgumentException($"rank {slice.Rank} of {slice.WorldSize} contributes {blocks.Count} vectors of {length} floats; the buffer holds {output.Length}");
        output[(blocks.Count * length)..].Clear(); // an idle rank contributes nothing
        var sizes = new int[count];
        Array.Fill(sizes, 1);
        for (var b = 0; b < blocks.Count; b++)
        {
            var (start, size) = blocks[b];
            FixedOrderSum.Reduce(local, sizes, start - first, size);
            local(start - first).CopyTo(output.Slice(b * length, length));
        }
    }

    /// <summary>Phase 3 of the step in flight (see <see cref="StepUpdater"/>).</summary>
    public StepLoss Apply(ReadOnlySpan<float> reducedStats, int globalBatch, ScheduleValues schedule, StepTrace? trace = null)
    {
        if (!inFlight) throw new InvalidOperationException("Apply before Forward");
        return Apply(reducedStats, globalBatch, pendingMode, schedule, trace);
    }

    /// <summary>
    /// Phase 3 on its own, for a replica that computed no part of the step (the coordinator's): applies the reduced
    /// statistics of a <paramref name="mode"/> step (<see cref="StepUpdater"/>). Ends the step in flight, if any.
    /// </summary>
    public StepLoss Apply(ReadOnlySpan<float> reducedStats, int globalBatch, StepMode mode, ScheduleValues schedule, StepTrace? trace = null)
    {
        try
        {
            return Updater.Apply(reducedStats, globalBatch, mode, schedule, threads.Run, trace);
        }
        finally
        {
            EndStep();
        }
    }

    /// <summary>Drops the step in flight (a worker left; the step is retried with new shards).</summary>
    public void Abort() => EndStep();

    private void EndStep()
    {
        if (inFlight) threads.Run(shards.Length, i => shards[i].End());
        inFlight = false;
    }

    /// <summary>
    /// Embeddings of a batch without gradient, for evaluation and SOM pre-training, computed micro-batch by micro-batch
    /// as a step would (so each row is the same bits whatever the thread count). Caller owns the result.
    /// </summary>
    public Tensor Embed(ReadOnlySpan<float> images, int count) => Embed(images, count, reconstruct: false, out _);

    /// <summary>
    /// <see cref="Embed(ReadOnlySpan{float}, int)"/>, and the squared reconstruction error of the batch, summed in
    /// micro-batch order in double precision.
    /// </summary>
    public Tensor Embed(ReadOnlySpan<float> images, int count, out double squaredError) => Embed(images, count, reconstruct: true, out squaredError);

    private Tensor Embed(ReadOnlySpan<float> images, int count, bool reconstruct, out double squaredError)
    {
        if (count > MaxLocalBatch) throw new ArgumentException($"batch {count} exceeds the engine's maximum {MaxLocalBatch}");
        var result = empty(new long[] { count, Som.Dim }, device: Device);
        var active = Load(images, ReadOnlySpan<float>.Empty, count, 0, 1, 0);
        var offsets = new long[active + 1];
        for (int i = 0; i < active; i++) offsets[i + 1] = offsets[i] + shards[i].Count;
        var errors = new double[active];
        threads.Run(active, i =>
        {
            using var slice = result.narrow(0, offsets[i], shards[i].Count);
            errors[i] = shards[i].EmbedInto(slice, reconstruct);
        });
        squaredError = 0;
        foreach (var e in errors) squaredError += e;
        return result;
    }

    /// <summary>
    /// Loads rank <paramref name="rank"/>'s micro-batches of a batch of <paramref name="batchLength"/> into the shards, one each
    /// (<paramref name="images"/> starts at batch position <paramref name="sampleStart"/>); returns how many shards it used.
    /// </summary>
    private int Load(ReadOnlySpan<float> images, ReadOnlySpan<float> targets, int batchLength, int rank, int worldSize, int sampleStart,
        ReadOnlySpan<float> corrupted = default, ReadOnlySpan<int> labels = default)
    {
        var pixels = Model.Shape.Pixels;
        var (first, count) = MicroBatches.RankRange(batchLength, rank, worldSize);
        for (int i = 0; i < count; i++)
        {
            var (start, n) = MicroBatches.Range(batchLength, first + i);
            var at = start - sampleStart;
            shards[i].Load(images.Slice(at * pixels, n * pixels), corrupted.IsEmpty ? corrupted : corrupted.Slice(at * pixels, n * pixels),
                targets.IsEmpty ? targets : targets.Slice(at * Layout.Latent, n * Layout.Latent), labels.IsEmpty ? labels : labels.Slice(at, n), n);
        }
        return count;
    }

    public void Dispose()
    {
        EndStep();
        threads.Dispose();
        foreach (var s in shards) s.Dispose();
        Updater.Dispose();
        Model.Dispose();
        softCountsHost.Dispose();
        classProbabilitiesHost?.Dispose();
    }
}
