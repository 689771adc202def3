using System.Diagnostics;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Som;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// SOM pre-training: embed the training set with the pre-trained encoder, seed W with embeddings
/// of randomly chosen samples, then run the Kohonen rule on minibatches of embeddings, with σ and
/// η decaying over the iterations.
/// </summary>
/// <param name="targets">Vectors to fit instead of the encoder's embeddings (the smoothed targets), or null.</param>
internal sealed class SomPretrainer(DnmConfig config, StepEngine engine, IImageDataset data, SomSchedule schedule, ITrainingObserver observer, Tensor? targets = null)
{
    /// <summary>
    /// Most training samples whose embeddings the SOM is fitted on: a larger set is represented by a random subset of
    /// this size (seeded by the run's seed), so pre-training's memory (latent × 4 bytes a sample) and its embedding pass
    /// stop growing with the dataset. MNIST and Fashion-MNIST (60,000) are fitted whole, as before.
    /// </summary>
    public const int MaxSamples = 200_000;

    // The smoothed targets, when given, are one per training sample: they pin the set to the whole training split.
    private readonly IImageDataset train = targets is null && data.Count > MaxSamples
        ? DatasetView.Subset(data, MaxSamples, config.Seed ^ 0x50_4D_53_5F_46_49_54UL, ownsInner: false)
        : data;

    public void Run(ref RunState state, Action<RunState> checkpoint, CancellationToken cancel)
    {
        var iterations = config.SomIterations;
        var stepsPerEpoch = ShardSampler.StepsPerEpoch(train.Count, config.BatchSize);
        observer.OnPhaseStarted(TrainingPhase.SomPretrain, (int)Math.Ceiling(iterations / (double)stepsPerEpoch), stepsPerEpoch);
        using var embeddings = targets?.alias().DetachFromDisposeScope() ?? Embeddings.Of(engine, train, config.BatchSize, cancel).DetachFromDisposeScope();
        // A warm start's prototypes (--init-from) are where the map starts; otherwise samples' embeddings are.
        if (state.PhaseStep == 0 && !config.InitsPrototypes) SeedPrototypes(embeddings);
        var rule = config.SomRule;
        var sw = Stopwatch.StartNew();
        // SOM passes use data epochs after all training epochs, so their order differs from training's.
        var epochBase = config.PretrainEpochs + config.Epochs + 1;
        var sinceReport = 0;
        while (state.PhaseStep < iterations)
        {
            cancel.ThrowIfCancellationRequested();
            var it = (int)state.PhaseStep;
            var epoch = it / stepsPerEpoch;
            var step = it % stepsPerEpoch;
            var sched = new ScheduleValues(schedule.Sigma(it), schedule.Eta(it));
            int n;
            using (NewDisposeScope())
            {
                var idx = ShardSampler.GlobalBatch(train.Count, config.Seed, epochBase + epoch, step, config.BatchSize);
                n = idx.Length;
                var z = embeddings.index_select(0, tensor(idx.Select(i => (long)i).ToArray(), device: embeddings.device));
                var bmu = engine.Som.SquaredDistances(z).argmin(1);
                var (sums, counts) = engine.Som.BmuStatistics(z, bmu);
                engine.Som.Update(sums, counts, n, sched, rule);
            }
            state = state with { PhaseStep = state.PhaseStep + 1, Epoch = epoch, StepInEpoch = step + 1 };
            sinceReport++;
            if ((it + 1) % 100 == 0 || it + 1 == iterations)
            {
                // The report covers the iterations since the last one: fewer than 100 at the end or after a resume.
                observer.OnStep(new StepReport(TrainingPhase.SomPretrain, epoch, (int)Math.Ceiling(iterations / (double)stepsPerEpoch),
                    step + 1, stepsPerEpoch, state.GlobalStep, n * sinceReport, default, sched.Sigma, sched.Eta, sw.Elapsed));
                sinceReport = 0;
                sw.Restart();
            }
            // Only on wall time (CheckpointPolicy): iterations are cheap, and a run that stops here redoes little.
            if (state.PhaseStep < iterations) checkpoint(state);
        }
    }

    private void SeedPrototypes(Tensor embeddings)
    {
        using var scope = NewDisposeScope();
        var nodes = engine.Som.Nodes;
        var order = ShardSampler.EpochOrder(train.Count, config.Seed, int.MaxValue);
        var idx = Enumerable.Range(0, nodes).Select(i => (long)order[i % order.Length]).ToArray();
        engine.Som.SetPrototypes(embeddings.index_select(0, tensor(idx, device: embeddings.device)));
    }
}

/// <summary>Embeds a dataset in batches, without gradient.</summary>
public static class Embeddings
{
    /// <summary>(N, D) embeddings of the first <paramref name="limit"/> samples (all by default). Caller owns the result.</summary>
    public static Tensor Of(StepEngine engine, IImageDataset data, int batchSize, CancellationToken cancel, int? limit = null)
    {
        var count = Math.Min(limit ?? data.Count, data.Count);
        var buffer = new BatchBuffer(data.Shape, Math.Min(batchSize, engine.MaxLocalBatch));
        var result = empty(new long[] { count, engine.Som.Dim }, device: engine.Device);
        using var _ = no_grad();
        for (int start = 0; start < count; start += buffer.Capacity)
        {
            cancel.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var n = Math.Min(buffer.Capacity, count - start);
            var indices = Enumerable.Range(start, n).ToArray();
            buffer.Fill(data, indices);
            result.narrow(0, start, n).copy_(engine.Embed(buffer.FilledPixels, n));
        }
        return result;
    }
}
