using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Som;
using Dnm.Core.Telemetry;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>The two vectors a step reduces over the ranks.</summary>
public enum ReducedVector
{
    /// <summary>The soft counts f (joint steps only): every rank needs the global f before its loss.</summary>
    SoftCounts,
    /// <summary>The step statistics (<see cref="StepLayout"/>): gradients, BMU sums and counts, loss parts.</summary>
    Statistics,
}

/// <summary>
/// Sums the ranks' contributions to a step. Injected into the one <see cref="StepRunner"/>: the identity in one process
/// (<see cref="LocalReducer"/>), the data plane in a cluster.
/// </summary>
public interface IStepReducer
{
    /// <summary>Whether the reduction leaves the process (its time is then a phase of the step: soft_count_reduce, gradient_reduce).</summary>
    bool Communicates { get; }

    /// <summary>
    /// <paramref name="contribution"/> holds this rank's blocks of the fixed sum tree (<see cref="FixedOrderSum"/>);
    /// <paramref name="sum"/> receives the root: the step's global vector. Returns where the root is: <paramref name="sum"/>, or
    /// <paramref name="contribution"/> itself where this rank's one block is the whole tree (nothing to copy).
    /// </summary>
    ReadOnlyMemory<float> Reduce(long step, ReducedVector vector, ReadOnlyMemory<float> contribution, Memory<float> sum);
}

/// <summary>One process, a world of one: its single block is the whole tree's root already.</summary>
public sealed class LocalReducer : IStepReducer
{
    public static readonly LocalReducer Instance = new();

    public bool Communicates => false;

    /// <summary>The one block is the root: the step applies it where the backward pass wrote it (the statistics of the fully connected model are 13 MB).</summary>
    public ReadOnlyMemory<float> Reduce(long step, ReducedVector vector, ReadOnlyMemory<float> contribution, Memory<float> sum) => contribution;
}

/// <summary>
/// Global step <paramref name="Step"/> (the run's GlobalStep before it): the batch at <paramref name="StepInEpoch"/> of
/// data epoch <paramref name="DataEpoch"/>, computed as rank <paramref name="Rank"/> of <paramref name="WorldSize"/>.
/// </summary>
public readonly record struct StepInput(long Step, StepMode Mode, int DataEpoch, int StepInEpoch, ScheduleValues Schedule, int Rank = 0, int WorldSize = 1);

/// <summary>What a step did on this rank: the loss of the whole global batch, and the samples this rank trained on.</summary>
public readonly record struct StepOutcome(StepLoss Loss, int LocalSamples);

/// <summary>
/// The one training step, for every world size: read this rank's micro-batches of the global batch, augment them,
/// encode (f), reduce f, backward (statistics), reduce them, apply. The single-process <see cref="Trainer"/> runs it
/// with the <see cref="LocalReducer"/>; a cluster worker with the data plane. Everything the step allocates on the
/// native side lives in one dispose scope.
/// </summary>
public sealed class StepRunner : IDisposable
{
    private readonly DnmConfig config;
    private readonly StepEngine engine;
    private readonly IImageDataset train;
    private readonly ITrainingObserver? reducedObserver;
    private readonly BatchPrefetcher batches;
    private readonly float[] batchTargets;
    private readonly ImageCorruption corruption;
    private readonly float[] corrupted;
    private readonly LabelledSamples? labelled;
    private readonly int[] batchLabels;
    private readonly float[] softCounts;
    private readonly float[] stats;
    private float[] softCountBlocks = [];
    private float[] statBlocks = [];
    private (int DataEpoch, int[] Order)? order;

    /// <param name="reducedObserver">Told the global sums of every step (<see cref="ITrainingObserver.OnStepReduced"/>); null on a cluster worker, whose coordinator reports them.</param>
    public StepRunner(DnmConfig config, StepEngine engine, IImageDataset train, ITrainingObserver? reducedObserver)
    {
        this.config = config;
        this.engine = engine;
        this.train = train;
        this.reducedObserver = reducedObserver;
        batches = new BatchPrefetcher(train, ImageAugmenter.For(config, train.Shape), config.BatchSize);
        batchTargets = new float[config.SmoothWeight > 0 ? config.BatchSize * config.Latent : 0];
        corruption = new ImageCorruption(config.Denoise, config.Seed, train.Shape.Pixels);
        corrupted = new float[corruption.Enabled ? config.BatchSize * train.Shape.Pixels : 0];
        // Key-hash (or key-file) membership: every rank and a resumed run find the same labelled samples.
        labelled = engine.Classes is null ? null : LabelledSamples.For(config, train);
        batchLabels = new int[labelled is null ? 0 : config.BatchSize];
        softCounts = new float[engine.Layout.Nodes];
        stats = new float[engine.Layout.Length];
    }

    /// <summary>The smoothed targets ẑ of the joint phase's smoothing term, once made (null while the term is off).</summary>
    public SmoothTargets? Targets { get; set; }

    public StepOutcome Run(StepInput step, IStepReducer reducer, StepTrace trace)
    {
        var global = GlobalBatch(step.DataEpoch, step.StepInEpoch);
        var slice = new RankSlice(global.Length, step.Rank, step.WorldSize);
        var indices = LocalPart(global, step.Rank, step.WorldSize);
        var batch = batches.Take(step.DataEpoch, indices, out var waited);
        trace.Timings.Add(StepPhase.DataWait, waited);
        var n = batch.Count;
        PrefetchNext(step);
        var joint = step.Mode == StepMode.Joint;
        var fBlocks = Blocks(ref softCountBlocks, engine.ContributionLength(slice, engine.Layout.Nodes));
        var sBlocks = Blocks(ref statBlocks, engine.ContributionLength(slice, engine.Layout.Length));
        // Everything a step allocates on the native side is released when the step ends.
        using var scope = NewDisposeScope();
        var targets = ReadOnlySpan<float>.Empty;
        if (joint && config.SmoothWeight > 0)
            targets = (Targets ?? throw new InvalidOperationException($"joint step {step.Step + 1} needs the smoothed targets, but none were made or received"))
                .Gather(indices[..n], batchTargets);
        var inputs = ReadOnlySpan<float>.Empty;
        if (corruption.Enabled)
        {
            // The denoising autoencoder's x̃: a function of (seed, data epoch, sample index), as augmentation is.
            corruption.Apply(batch.FilledPixels, corrupted, indices[..n], step.DataEpoch);
            inputs = corrupted.AsSpan(0, batch.FilledPixels.Length);
        }
        var labels = ReadOnlySpan<int>.Empty;
        if (labelled is not null)
        {
            // Only the labelled samples' labels reach training; the others are -1 (unlabelled).
            for (int i = 0; i < n; i++) batchLabels[i] = labelled.IsLabelled(indices[i]) ? batch.Labels[i] : -1;
            labels = batchLabels.AsSpan(0, n);
        }
        using (trace.Phase(StepPhase.Encode)) engine.Forward(batch.FilledPixels, targets, slice, step.Mode, fBlocks.Span, inputs, labels);
        try
        {
            var f = joint ? Reduce(reducer, trace, step.Step, ReducedVector.SoftCounts, fBlocks, softCounts) : softCounts;
            using (trace.Phase(StepPhase.Backward)) engine.Backward(f.Span, sBlocks.Span);
            var root = Reduce(reducer, trace, step.Step, ReducedVector.Statistics, sBlocks, stats).Span;
            reducedObserver?.OnStepReduced(step.Step + 1, joint ? f.Span : [], root);
            var loss = engine.Apply(root, global.Length, step.Schedule, trace);
            return new StepOutcome(loss, n);
        }
        catch
        {
            // Same thread as Forward: the step's scope closes here and nothing of the step is applied.
            engine.Abort();
            throw;
        }
    }

    /// <summary>The sample indices of a step's global batch (the epoch order is kept for the epoch's steps).</summary>
    private ReadOnlySpan<int> GlobalBatch(int dataEpoch, int stepInEpoch)
    {
        if (order?.DataEpoch != dataEpoch) order = (dataEpoch, ShardSampler.EpochOrder(train.Count, config.Seed, dataEpoch));
        return ShardSampler.GlobalBatch(order.Value.Order, stepInEpoch, config.BatchSize);
    }

    /// <summary>This rank's whole micro-batches of a global batch: the only samples it reads.</summary>
    private ReadOnlySpan<int> LocalPart(ReadOnlySpan<int> global, int rank, int worldSize)
    {
        var (start, length) = engine.MicroBatches.SampleRange(global.Length, rank, worldSize);
        return global.Slice(start, length);
    }

    /// <summary>
    /// Starts reading the batch this rank will most likely need next: the next step of the epoch, or the first of the
    /// next epoch, in the same world. Any other next step (the world changed, the phase ended) just fills on demand.
    /// </summary>
    private void PrefetchNext(StepInput step)
    {
        int steps = ShardSampler.StepsPerEpoch(train.Count, config.BatchSize);
        var (epoch, next) = step.StepInEpoch + 1 < steps ? (step.DataEpoch, step.StepInEpoch + 1) : (step.DataEpoch + 1, 0);
        var upcoming = LocalPart(GlobalBatch(epoch, next), step.Rank, step.WorldSize).ToArray();
        batches.Prefetch(epoch, upcoming);
    }

    /// <summary>Waits for a prefetch still reading: the dataset must outlive it.</summary>
    public void Dispose() => batches.Dispose();

    /// <summary>A reduction, timed as its phase where it communicates (one process has no reduce phases: their timings stay zero).</summary>
    private static ReadOnlyMemory<float> Reduce(IStepReducer reducer, StepTrace trace, long step, ReducedVector vector, ReadOnlyMemory<float> contribution,
        Memory<float> sum)
    {
        if (!reducer.Communicates)
            return reducer.Reduce(step, vector, contribution, sum);
        using (trace.Phase(vector == ReducedVector.SoftCounts ? StepPhase.SoftCountReduce : StepPhase.GradientReduce))
            return reducer.Reduce(step, vector, contribution, sum);
    }

    private static Memory<float> Blocks(ref float[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new float[length];
        return buffer.AsMemory(0, length);
    }
}
