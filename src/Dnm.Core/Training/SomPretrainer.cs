using System.Diagnostics;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Som;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// SOM pre-training: seed W with the vectors of randomly chosen samples, then run the Kohonen rule on minibatches of
/// vectors, with σ and η decaying over the iterations. The vectors are the pre-trained encoder's embeddings of
/// <see cref="FitSet"/> (or the smoothed targets), made by whoever holds the data (<see cref="Embeddings"/>): this
/// class reads no image.
/// </summary>
/// <param name="vectors">(samples × latent) vectors to fit: row i for sample i of the fitted set.</param>
internal sealed class SomPretrainer(DnmConfig config, StepEngine engine, Tensor vectors, SomSchedule schedule, ITrainingObserver observer)
{
    private readonly int count = (int)vectors.shape[0];

    public void Run(ref RunState state, Action<RunState> checkpoint, CancellationToken cancel)
    {
        var iterations = config.SomIterations;
        var stepsPerEpoch = ShardSampler.StepsPerEpoch(count, config.BatchSize);
        observer.OnPhaseStarted(TrainingPhase.SomPretrain, (int)Math.Ceiling(iterations / (double)stepsPerEpoch), stepsPerEpoch);
        var embeddings = vectors;
        // A warm start's prototypes (--init-from) are where the map starts; otherwise samples' vectors are.
        if (state.PhaseStep == 0 && !config.InitsPrototypes) SeedPrototypes(embeddings);
        var rule = config.SomRule;
        var sw = Stopwatch.StartNew();
        // SOM passes use data epochs after all training epochs, so their order differs from training's.
        var epochBase = config.PretrainEpochs + config.Epochs + 1;
        var sinceReport = 0;
        // One shuffle an epoch, not one an iteration (a 60,000-sample shuffle and a large-object allocation each time).
        var orderEpoch = -1;
        int[] order = [];
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
                if (orderEpoch != epoch) (order, orderEpoch) = (ShardSampler.EpochOrder(count, config.Seed, epochBase + epoch), epoch);
                var idx = ShardSampler.GlobalBatch(order, step, config.BatchSize);
                n = idx.Length;
                var rows = new long[n];
                for (int i = 0; i < n; i++) rows[i] = idx[i];
                var z = embeddings.index_select(0, tensor(rows, device: embeddings.device));
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
        var order = ShardSampler.EpochOrder(count, config.Seed, int.MaxValue);
        var idx = Enumerable.Range(0, nodes).Select(i => (long)order[i % order.Length]).ToArray();
        engine.Som.SetPrototypes(embeddings.index_select(0, tensor(idx, device: embeddings.device)));
    }
}

/// <summary>Which training samples SOM pre-training fits.</summary>
public static class SomFitSet
{
    /// <summary>
    /// Most training samples whose embeddings the SOM is fitted on: a larger set is represented by a random subset of
    /// this size (seeded by the run's seed), so pre-training's memory (latent × 4 bytes a sample) and its embedding pass
    /// stop growing with the dataset. MNIST and Fashion-MNIST (60,000) are fitted whole, as before.
    /// </summary>
    public const int MaxSamples = DnmConfig.MaxDefaultSmoothedSamples;

    /// <summary>
    /// The training samples SOM pre-training fits: all of them, or a seeded random subset of <see cref="MaxSamples"/> of a
    /// larger set. The smoothed targets (smooth-weight &gt; 0) are one per training sample: they pin it to the whole split.
    /// A pure function of the config and the dataset, so every replica computes the same set.
    /// </summary>
    public static IImageDataset For(DnmConfig config, IImageDataset train) =>
        config.SmoothWeight <= 0 && train.Count > MaxSamples
            ? DatasetView.Subset(train, MaxSamples, config.Seed ^ 0x50_4D_53_5F_46_49_54UL, ownsInner: false)
            : train;
}
