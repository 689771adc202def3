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
/// <item><see cref="Forward"/>: encode and decode the local shard; write the local soft counts f^(k).</item>
/// <item><see cref="Backward"/>: with the global f, compute P, the loss, its gradient and the SOM statistics.</item>
/// <item><see cref="Apply"/>: apply the reduced statistics: L2, Adam, Kohonen rule. Identical on every replica.</item>
/// </list>
/// On the CPU the local batch is split again into one <see cref="StepShard"/> per thread, each on a
/// thread of its own with torch running single-threaded there (see <see cref="ShardThreads"/>); the
/// engine sums the shards' vectors in shard order, so a step is deterministic for a given thread
/// count. Phases 1 and 2 keep no tensors on the caller's thread, and phase 3 opens its own dispose
/// scope, so the phases of a step may be called from different threads, one at a time.
/// </summary>
public sealed class StepEngine : IDisposable
{
    private readonly DnmConfig config;
    private readonly Device device;
    private readonly Parameter[] parameters;
    private readonly bool[] isEncoderParameter;
    private readonly Tensor statsHost;        // (layout.Length) on CPU, reused every step
    private readonly Tensor softCountsHost;   // (K) on CPU: the global f that the shards read in phase 2
    private readonly SomRule rule;
    private readonly StepShard[] shards;
    private readonly ShardThreads threads;

    private bool inFlight;
    private StepMode pendingMode;
    private int pendingCount;

    public StepEngine(DnmConfig config, ImageShape shape, Device device, int maxLocalBatch)
    {
        this.config = config;
        this.device = device;
        if (device.type == DeviceType.CPU) Runtime.TorchRuntime.EnsureCpuNumerics();
        // The seed fixes θ, φ: every replica builds the identical model. The draws come from torch's one global
        // generator, so two engines built at once on two threads (embedded workers, parallel test classes)
        // would interleave them: builds take turns.
        lock (InitGate)
        {
            torch.manual_seed((long)config.Seed);
            Model = Autoencoder.Create(shape, config);
        }
        Model.to(device);
        parameters = Model.parameters().ToArray();
        var encoder = Model.EncoderParameters().Select(p => p.Handle).ToHashSet();
        isEncoderParameter = parameters.Select(p => encoder.Contains(p.Handle)).ToArray();
        Som = new SomLattice(config.MapRows, config.MapCols, config.Latent, device);
        Optimizer = new AdamOptimizer(parameters, config.LearningRate);
        Layout = new StepLayout(parameters.Sum(p => (int)p.numel()), Som.Nodes, config.Latent);
        statsHost = zeros(new long[] { Layout.Length }).DetachFromDisposeScope();
        softCountsHost = zeros(new long[] { Layout.Nodes }).DetachFromDisposeScope();
        MaxLocalBatch = maxLocalBatch;
        rule = config.SomRule == "batch" ? SomRule.Batch : SomRule.Minibatch;
        // A GPU runs a whole batch in one launch; threads only help where the CPU computes.
        var threadCount = device.type == DeviceType.CPU ? Math.Clamp(Runtime.TorchRuntime.StepThreads(config.Threads), 1, Math.Max(maxLocalBatch, 1)) : 1;
        var shardCount = ShardCount(Model.StepBufferBytesPerSample, maxLocalBatch, threadCount, device);
        var capacity = (maxLocalBatch + shardCount - 1) / shardCount;
        shards = Enumerable.Range(0, shardCount).Select(_ => new StepShard(config, Model, Som, parameters, device, Layout, capacity)).ToArray();
        threads = new ShardThreads(threadCount, "dnm-step");
    }

    /// <summary>
    /// Shards per step: a multiple of the thread count, each small enough that libtorch's largest
    /// per-step buffer (<see cref="Autoencoder.StepBufferBytesPerSample"/> per sample; slow_conv2d's im2col matrix for the conv encoder) stays below
    /// <see cref="MaxShardBufferBytes"/>. glibc gives every thread but the main one its own arena
    /// made of 64 MB heaps, and serves a larger block there with mmap and frees it with munmap: at
    /// 128 samples per shard that was ~370 000 page faults per step and 9× the CPU time.
    /// </summary>
    private static int ShardCount(long bufferBytesPerSample, int maxLocalBatch, int threadCount, Device device)
    {
        if (device.type != DeviceType.CPU) return 1;
        var perShard = (int)Math.Clamp(MaxShardBufferBytes / Math.Max(bufferBytesPerSample, 1), 1, int.MaxValue);
        var rounds = (Math.Max(maxLocalBatch, 1) + threadCount * perShard - 1) / (threadCount * perShard);
        return Math.Min(threadCount * rounds, Math.Max(maxLocalBatch, 1));
    }

    private static readonly Lock InitGate = new();

    /// <summary>Bound on one shard's largest libtorch buffer (below glibc's 64 MB per-thread heap).</summary>
    internal const long MaxShardBufferBytes = 48L << 20;

    public Autoencoder Model { get; }
    public SomLattice Som { get; }
    public AdamOptimizer Optimizer { get; }
    public StepLayout Layout { get; }
    public Device Device => device;
    public int MaxLocalBatch { get; }
    public IReadOnlyList<Parameter> Parameters => parameters;

    /// <summary>Threads that run phases 1 and 2.</summary>
    public int Threads => threads.Count;

    /// <summary>Batch shards per step (a multiple of <see cref="Threads"/> on the CPU).</summary>
    public int Shards => shards.Length;

    /// <summary>Phase 1. <paramref name="images"/> holds <paramref name="count"/> images (may be 0 on an idle worker).</summary>
    public void Forward(ReadOnlySpan<float> images, int count, StepMode mode, Span<float> localSoftCounts) =>
        Forward(images, ReadOnlySpan<float>.Empty, count, mode, localSoftCounts);

    /// <summary>
    /// Phase 1 with the images' smoothed targets ẑ (<paramref name="targets"/>: count × D, row i for image i)
    /// for the smoothing term of a joint step; empty when the term is off.
    /// </summary>
    public void Forward(ReadOnlySpan<float> images, ReadOnlySpan<float> targets, int count, StepMode mode, Span<float> localSoftCounts)
    {
        if (inFlight) throw new InvalidOperationException("a step is already in flight; call Apply or Abort first");
        if (count > MaxLocalBatch) throw new ArgumentException($"local batch {count} exceeds the engine's maximum {MaxLocalBatch}");
        inFlight = true;
        pendingMode = mode;
        pendingCount = count;
        var active = Split(images, targets, count);
        try
        {
            threads.Run(active, i => shards[i].Forward(mode));
        }
        catch
        {
            Abort();
            throw;
        }
        localSoftCounts[..Layout.Nodes].Clear();
        if (mode != StepMode.Joint) return;
        for (int i = 0; i < active; i++) Accumulate(shards[i].SoftCounts, localSoftCounts);
    }

    /// <summary>Phase 2: writes this shard's statistics (see <see cref="StepLayout"/>) into <paramref name="localStats"/>.</summary>
    public void Backward(ReadOnlySpan<float> globalSoftCounts, int globalBatch, Span<float> localStats)
    {
        if (!inFlight) throw new InvalidOperationException("Backward before Forward");
        globalSoftCounts[..Layout.Nodes].CopyTo(Runtime.HostTensor.Floats(softCountsHost));
        var active = ActiveShards(pendingCount);
        try
        {
            threads.Run(active, i => shards[i].Backward(softCountsHost, globalBatch));
        }
        catch
        {
            Abort();
            throw;
        }
        var stats = localStats[..Layout.Length];
        stats.Clear();
        for (int i = 0; i < active; i++) Accumulate(shards[i].Stats, stats);
    }

    /// <summary>
    /// Phase 3: applies the statistics summed over every replica. Adds the L2 gradient 2βθ once (it is
    /// not part of any shard), steps Adam, and moves the prototypes by the Kohonen rule.
    /// <paramref name="trace"/>, when given, times the Adam part as <see cref="StepPhase.Apply"/> and the
    /// Kohonen part as <see cref="StepPhase.SomUpdate"/>: only the engine can tell them apart.
    /// </summary>
    public StepLoss Apply(ReadOnlySpan<float> reducedStats, int globalBatch, ScheduleValues schedule, StepTrace? trace = null)
    {
        if (!inFlight) throw new InvalidOperationException("Apply before Forward");
        try
        {
            var adam = trace?.Phase(StepPhase.Apply);
            using var scope = NewDisposeScope();
            reducedStats[..Layout.Length].CopyTo(Runtime.HostTensor.Floats(statsHost));
            var flat = statsHost.to(device);
            var grads = new Tensor[parameters.Length];
            long offset = 0;
            for (int i = 0; i < parameters.Length; i++)
            {
                var n = parameters[i].numel();
                grads[i] = flat.narrow(0, offset, n).view_as(parameters[i]);
                offset += n;
            }
            double l2 = 0;
            using (no_grad())
            {
                if (config.Beta > 0)
                {
                    using var twoBeta = TorchScalars.Of(2 * config.Beta);
                    for (int i = 0; i < parameters.Length; i++)
                    {
                        if (!isEncoderParameter[i]) continue;
                        grads[i] = grads[i] + parameters[i].mul(twoBeta);
                        l2 += parameters[i].square().sum().item<float>();
                    }
                }
            }
            Optimizer.Step(grads);
            adam?.Dispose();
            if (pendingMode == StepMode.Joint)
            {
                using var somUpdate = trace?.Phase(StepPhase.SomUpdate);
                var sums = flat.narrow(0, Layout.BmuSumsOffset, Layout.Nodes * Layout.Latent).view(Layout.Nodes, Layout.Latent);
                var counts = flat.narrow(0, Layout.BmuCountsOffset, Layout.Nodes);
                Som.Update(sums, counts, globalBatch, schedule, rule);
            }
            var b = (double)globalBatch;
            var kl = reducedStats[Layout.KlSumIndex] / b;
            var recon = reducedStats[Layout.SquaredErrorSumIndex] / (b * Model.Shape.Pixels);
            // recon is reported per pixel (comparable with the evaluation's recon_mse); the loss sums the pixels.
            double? smoothing = pendingMode == StepMode.Joint && config.SmoothWeight > 0 ? reducedStats[Layout.SmoothingSumIndex] / b : null;
            var total = kl + config.Gamma * Model.Shape.Pixels * recon + config.Beta * l2 + config.SmoothWeight * (smoothing ?? 0);
            return new StepLoss(kl, recon, config.Beta * l2, total, (int)reducedStats[Layout.SampleCountIndex], smoothing);
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

    /// <summary>Embeddings of a batch without gradient, for evaluation and SOM pre-training. Caller owns the result.</summary>
    public Tensor Embed(ReadOnlySpan<float> images, int count)
    {
        var result = empty(new long[] { count, Som.Dim }, device: device);
        var active = Split(images, ReadOnlySpan<float>.Empty, count);
        var offsets = new long[active + 1];
        for (int i = 0; i < active; i++) offsets[i + 1] = offsets[i] + shards[i].Count;
        threads.Run(active, i =>
        {
            using var slice = result.narrow(0, offsets[i], shards[i].Count);
            shards[i].EmbedInto(slice);
        });
        return result;
    }

    /// <summary>Spreads <paramref name="count"/> images over the shards (sizes differ by at most one); returns how many got any.</summary>
    private int Split(ReadOnlySpan<float> images, ReadOnlySpan<float> targets, int count)
    {
        if (count > MaxLocalBatch) throw new ArgumentException($"batch {count} exceeds the engine's maximum {MaxLocalBatch}");
        var pixels = Model.Shape.Pixels;
        var active = ActiveShards(count);
        int start = 0;
        for (int i = 0; i < shards.Length; i++)
        {
            var n = i < active ? count / active + (i < count % active ? 1 : 0) : 0;
            shards[i].Load(images.Slice(start * pixels, n * pixels), targets.IsEmpty ? targets : targets.Slice(start * Layout.Latent, n * Layout.Latent), n);
            start += n;
        }
        return active;
    }

    private int ActiveShards(int count) => Math.Min(shards.Length, count);

    private static void Accumulate(ReadOnlySpan<float> source, Span<float> target)
    {
        var vectors = System.Numerics.Vector<float>.Count;
        int i = 0;
        for (; i <= source.Length - vectors; i += vectors)
            (new System.Numerics.Vector<float>(target[i..]) + new System.Numerics.Vector<float>(source[i..])).CopyTo(target[i..]);
        for (; i < source.Length; i++) target[i] += source[i];
    }

    public void Dispose()
    {
        EndStep();
        threads.Dispose();
        foreach (var s in shards) s.Dispose();
        Optimizer.Dispose();
        Som.Dispose();
        Model.Dispose();
        statsHost.Dispose();
        softCountsHost.Dispose();
    }
}
