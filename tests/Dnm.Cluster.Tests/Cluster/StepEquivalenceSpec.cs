using Dnm.Cluster.Hosting;
using Dnm.Cluster.Replica;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Som;
using Dnm.Core.Training;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// One distributed step, through the whole cluster path (`dnm train --workers N`: coordinator and worker actors, the
/// state transfer and the TCP data plane), from the Trainer's own state one step before the end of a TinyRun, must
/// equal the Trainer's last step to float rounding: θ, φ, W, Adam's moments and the reduced sums. The 30-step
/// EmbeddedEquivalenceSpec sees that rounding amplified by the trajectory; this spec sees a single step's.
/// </summary>
public sealed class StepEquivalenceSpec(ITestOutputHelper output)
{
    /// <summary>
    /// Bound on a state tensor's norm-relative difference after one step (the worst of θ, φ, W, Adam m and v, tensor by
    /// tensor). Measured: 2e-8 to 2.7e-6, the largest in Adam's v of a 4-element conv bias whose gradient nearly cancels
    /// over the batch; W 0 (η·ΔS is below an ulp of W). 3e-5 leaves 10x. A real difference in what is summed is far
    /// larger: the matrix-product distances this spec found moved 4 workers' state 8.6e-4 in one step, and a missing
    /// shard or a local f would be off by 1e-2 or more.
    /// </summary>
    private const double StateBound = 3e-5;

    /// <summary>
    /// Bound on the reduced sums' norm-relative difference (gradients, S, f, loss sums). N shards' partial sums added
    /// in rank order round differently from one batch's sum: measured 1e-8 to 1.1e-6 (the gradient, whose per-sample
    /// terms partly cancel). 1e-5 leaves 9x; the matrix-product distances gave 1.3e-3.
    /// </summary>
    private const double ReducedBound = 1e-5;

    [Theory]
    [InlineData("minibatch", 1.0 / 144)] // reconstruction weighed as a per-pixel mean
    [InlineData("batch", 1.0 / 144)]
    [InlineData("minibatch", 1.0)] // γ as written (the default)
    [InlineData("batch", 1.0)]
    public async Task Should_equal_one_trainer_step_to_float_rounding_with_2_and_4_workers(string somRule, double gamma)
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        var config = TinyRun.Config(dataset, dir.Sub("single"), somRule) with { Gamma = gamma };
        var start = LastStepFrom(JointStart(config));
        var reference = new StepRecorder();
        var expected = Resume(start, dir.Sub("single-step"), reference);
        var last = expected.State.GlobalStep;
        Assert.Equal(1, reference.StepCount);
        var layout = Layout(start);
        var step = reference.Reduced(last);
        var counts = step.Statistics.AsSpan(layout.BmuCountsOffset, layout.Nodes).ToArray();
        output.WriteLine($"the step: BMU counts [{string.Join(" ", counts)}], f [{string.Join(" ", step.SoftCounts.Select(f => f.ToString("F2")))}], " +
                         $"KL {reference.Loss(last).Kl:E2}");
        // The step must exercise what a distributed step sums: samples spread over several BMUs, and a KL term that is not ~0.
        Assert.True(counts.Count(c => c > 0) >= 3, "the start state's map has collapsed onto fewer than 3 BMUs");
        Assert.True(reference.Loss(last).Kl > 1e-3, $"KL {reference.Loss(last).Kl:E2}: q is uniform, P = Q");

        var problems = new List<string>();
        foreach (var workers in new[] { 1, 2, 4 })
        {
            var actual = await RunCluster(start, dir.Sub($"cluster-{workers}"), workers);
            var final = TinyRun.Final(actual.Config);
            var state = StateDiff.Between(final, expected);
            var sums = ReducedDiff.Between(actual.Recorder.Reduced(last), step, layout);
            output.WriteLine($"{workers} worker(s), {somRule} rule, γ = {gamma:G3}: state {state}");
            output.WriteLine($"    reduced {sums}");
            // The cluster path adds nothing to the arithmetic: bitwise what N engines and a float32 rank-ordered sum give.
            var report = reference.Report(last);
            var (byHand, handSums) = HandReduced(start, workers, new ScheduleValues(report.Sigma, report.Eta));
            var handState = StateDiff.Between(final, byHand);
            var handReduced = ReducedDiff.Between(actual.Recorder.Reduced(last), handSums, layout);
            output.WriteLine($"    vs N engines summed by hand: state {handState.Max:E2}, reduced {handReduced.Max:E2}");
            Assert.Equal(0.0, handState.Max);
            Assert.Equal(0.0, handReduced.Max);

            Assert.Equal(1, actual.Recorder.StepCount);
            Assert.Equal(last, final.State.GlobalStep);
            Assert.Equal(expected.AdamSteps, final.AdamSteps);
            Assert.Equal(sums.ExpectedSamples, sums.Samples);
            // Same z, same W before the step: the same BMUs, so the integer counts are equal, not just close.
            Assert.Equal(0, sums.BmuCountMismatches);
            if (workers == 1)
            {
                // One worker sums nothing: the cluster path itself adds no difference at all.
                Assert.Equal(0.0, state.Max);
                Assert.Equal(0.0, sums.Max);
                continue;
            }
            if (state.Max > StateBound) problems.Add($"{workers} workers: {state}");
            if (sums.Max > ReducedBound) problems.Add($"{workers} workers: {sums}");
        }
        Assert.Empty(problems);
    }

    /// <summary>
    /// How the difference grows when both runs go on from the same state: 30 joint steps (TinyRun's joint phase has 18) of
    /// the batch rule with γ = 1, 2 and 4 workers against the Trainer, logged at steps 1, 2, 5, 10, 20 and 30 with
    /// the first step whose BMU counts differ (docs/cluster.md, "Equivalence", quotes the numbers). The first step
    /// must be at rounding level; what follows is the trajectory's own amplification of it.
    /// </summary>
    [Fact]
    public async Task Should_start_at_rounding_level_and_log_the_growth_over_30_joint_steps()
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        var fitted = JointStart(TinyRun.Config(dataset, dir.Sub("single"), "batch") with { Gamma = 1 });
        static bool Joint(RunState s) => s.Phase == TrainingPhase.Joint;
        // The joint steps at the pre-training's lr 1e-2, and at TinyRun's 1e-3 (Adam's state carries over either way).
        foreach (var (lr, workers) in new[] { (1e-2, 2), (1e-2, 4), (1e-3, 2) })
        {
            var start = fitted with { Config = fitted.Config with { Epochs = 5, LearningRate = lr } }; // 5 epochs of 6 steps
            var reference = new StepRecorder(Joint);
            Resume(start, dir.Sub($"single-{lr}-{workers}"), reference);
            var layout = Layout(start);
            var g0 = start.State.GlobalStep;
            var (_, cluster) = await RunCluster(start, dir.Sub($"cluster-{lr}-{workers}"), workers, Joint);
            var firstFlip = Enumerable.Range(1, 30).FirstOrDefault(k =>
                ReducedDiff.Between(cluster.Reduced(g0 + k), reference.Reduced(g0 + k), layout).BmuCountMismatches > 0);
            var curve = new[] { 1, 2, 5, 10, 20, 30 }.Select(k => (k, StateDiff.Between(cluster.After(g0 + k), reference.After(g0 + k)))).ToArray();
            output.WriteLine($"{workers} workers, batch rule, γ = 1, lr {lr}: first step with differing BMU counts: {(firstFlip == 0 ? "none" : firstFlip)}");
            foreach (var (k, d) in curve) output.WriteLine($"    step {k,2}: max {d.Max:E2}; {d}");
            Assert.True(curve[0].Item2.Max <= StateBound, $"step 1: {curve[0].Item2}");
        }
    }

    /// <summary>
    /// The Trainer's state at the start of the joint phase: the autoencoder pre-trained, the SOM fitted to its
    /// embeddings. TinyRun's own run is too short to learn much (2 pre-training epochs at lr 1e-3: the embeddings
    /// are nearly equal, and by its end every sample of a batch has the same BMU, q is uniform to 1e-2 and KL ≈ 1e-9,
    /// so a step there would hardly exercise f, P or the Kohonen sums); 10 epochs at lr 1e-2 spread the samples
    /// over the map (a few seconds). Every step is checkpointed, so the recorder can keep that state.
    /// </summary>
    private static Checkpoint JointStart(DnmConfig config)
    {
        var recorder = new StepRecorder(s => s is { Phase: TrainingPhase.Joint, Epoch: 0, StepInEpoch: 0 });
        Train(config with { LearningRate = 1e-2, PretrainEpochs = 10, CheckpointEvery = 1 }, recorder, null);
        return recorder.First(s => s.Phase == TrainingPhase.Joint);
    }

    /// <summary>
    /// <paramref name="start"/> relabelled as one step before the end of the run (the last epoch's last batch), so a
    /// run that resumes it takes exactly one step and writes its final checkpoint. The schedule counter stays, so
    /// σ and η are the joint phase's first (η largest: W moves most).
    /// </summary>
    private static Checkpoint LastStepFrom(Checkpoint start)
    {
        var stepsPerEpoch = ShardSampler.StepsPerEpoch(72, start.Config.BatchSize);
        var remaining = start.Config.Epochs * stepsPerEpoch;
        return start with
        {
            State = start.State with
            {
                Epoch = start.Config.Epochs - 1, StepInEpoch = stepsPerEpoch - 1, GlobalStep = start.State.GlobalStep + remaining - 1,
            },
        };
    }

    /// <summary>
    /// What N replicas of <paramref name="start"/> compute for its step without any of the cluster: each a StepEngine
    /// on its <see cref="ShardSampler.Shard(int, ulong, int, int, int, int, int)"/>, f and the statistics summed in rank
    /// order in float32 (as <see cref="Dnm.Cluster.Transport.RankOrderedSum"/> does), the sum applied by one more replica. Returns
    /// the state after the step and the summed vectors.
    /// </summary>
    private static (Checkpoint After, ReducedStep Sums) HandReduced(Checkpoint start, int workers, ScheduleValues schedule)
    {
        var config = start.Config;
        using var train = TrainingRun.OpenSplit(config, "train", config.Limit, null);
        var s = start.State;
        var dataEpoch = s.Epoch + config.PretrainEpochs; // the joint phase continues the data order after pre-training
        var batch = ShardSampler.GlobalBatchRange(train.Count, s.StepInEpoch, config.BatchSize).Length;
        var engines = Enumerable.Range(0, workers + 1).Select(_ => ReplicaFactory.Create(config, train.Shape, TorchSharp.torch.CPU, config.BatchSize)).ToArray();
        try
        {
            foreach (var e in engines) EngineState.Import(e, start.Tensors, start.AdamSteps);
            var layout = engines[0].Layout;
            var f = new float[layout.Nodes];
            var stats = new float[layout.Length];
            var local = new float[layout.Length];
            var buffer = new BatchBuffer(train.Shape, config.BatchSize);
            for (int r = 0; r < workers; r++)
            {
                var n = buffer.Fill(train, ShardSampler.Shard(train.Count, config.Seed, dataEpoch, s.StepInEpoch, config.BatchSize, r, workers));
                engines[r].Forward(buffer.FilledPixels, n, StepMode.Joint, local);
                Dnm.Cluster.Transport.RankOrderedSum.AddInPlace(f, local.AsSpan(0, layout.Nodes));
            }
            for (int r = 0; r < workers; r++)
            {
                engines[r].Backward(f, batch, local);
                Dnm.Cluster.Transport.RankOrderedSum.AddInPlace(stats, local);
                engines[r].Abort();
            }
            var replica = engines[workers];
            replica.Forward(ReadOnlySpan<float>.Empty, 0, StepMode.Joint, local);
            replica.Apply(stats, batch, schedule);
            var after = start with { AdamSteps = replica.Optimizer.Steps, Tensors = EngineState.Export(replica) };
            return (after, new ReducedStep(f, stats));
        }
        finally
        {
            foreach (var e in engines) e.Dispose();
        }
    }

    private static StepLayout Layout(Checkpoint c) =>
        new(c.Tensors.Where(t => t.Name.StartsWith("param/", StringComparison.Ordinal)).Sum(t => t.Data.Length),
            c.Config.MapRows * c.Config.MapCols, c.Config.Latent);

    /// <summary>The Trainer continuing <paramref name="start"/> to the end of the run; returns its final state.</summary>
    private static Checkpoint Resume(Checkpoint start, string outDir, ITrainingObserver observer) =>
        Train(start.Config with { Out = outDir }, observer, start);

    private static Checkpoint Train(DnmConfig config, ITrainingObserver observer, Checkpoint? resume)
    {
        using var train = TrainingRun.OpenSplit(config, "train", config.Limit, null);
        using var trainer = new Trainer(config, train, TorchSharp.torch.CPU, new RunDirectory(config.Out), observer);
        if (resume is not null) trainer.Resume(resume);
        trainer.Run(null, CancellationToken.None);
        return trainer.ToCheckpoint();
    }

    /// <summary>An embedded cluster run that resumes <paramref name="start"/> (placed as its newest checkpoint) and runs to the end of the run.</summary>
    /// The coordinator takes the run config from the checkpoint (only device, threads and the directory are its own).
    private static async Task<(DnmConfig Config, StepRecorder Recorder)> RunCluster(Checkpoint start, string outDir, int workers,
        Func<RunState, bool>? keep = null)
    {
        var config = start.Config with { Out = outDir };
        (start with { Config = config }).Save(Path.Combine(new RunDirectory(outDir).Checkpoints, Checkpoint.FileName(start.State.GlobalStep)));
        var recorder = new StepRecorder(keep);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await ClusterTraining.RunEmbeddedAsync(config, workers, recorder, cancel.Token, new NodeOptions { ChecksumEvery = 1 }, resume: true);
        return (config, recorder);
    }
}
