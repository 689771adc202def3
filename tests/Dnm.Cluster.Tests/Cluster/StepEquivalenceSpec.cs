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
/// equal the Trainer's last step to the bit: θ, φ, W, Adam's moments and the reduced sums. Every micro-batch is
/// computed alone and summed in one fixed tree (MicroBatches, FixedOrderSum), so the world size changes nothing.
/// The 30-step spec checks that no difference appears along a trajectory either.
/// </summary>
public sealed class StepEquivalenceSpec(ITestOutputHelper output)
{
    [Theory]
    [InlineData("minibatch", 1.0 / 144)] // reconstruction weighed as a per-pixel mean
    [InlineData("batch", 1.0 / 144)]
    [InlineData("minibatch", 1.0)] // γ as written (the default)
    [InlineData("batch", 1.0)]
    public async Task Should_equal_one_trainer_step_bitwise_with_1_to_4_workers(string somRule, double gamma)
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

        foreach (var workers in new[] { 1, 2, 3, 4 })
        {
            var actual = await RunCluster(start, dir.Sub($"cluster-{workers}"), workers);
            var final = TinyRun.Final(actual.Config);
            var state = StateDiff.Between(final, expected);
            var sums = ReducedDiff.Between(actual.Recorder.Reduced(last), step, layout);
            output.WriteLine($"{workers} worker(s), {somRule} rule, γ = {gamma:G3}: state {state}; reduced {sums}");
            Assert.Equal(1, actual.Recorder.StepCount);
            Assert.Equal(last, final.State.GlobalStep);
            Assert.Equal(expected.AdamSteps, final.AdamSteps);
            Assert.Equal(sums.ExpectedSamples, sums.Samples);
            Assert.Equal(step.SoftCounts, actual.Recorder.Reduced(last).SoftCounts);
            Assert.Equal(step.Statistics, actual.Recorder.Reduced(last).Statistics);
            Assert.Equal(0.0, state.Max);
            foreach (var (a, b) in final.Tensors.Zip(expected.Tensors)) Assert.Equal(b.Data, a.Data);
        }
    }

    /// <summary>
    /// Both runs go on from the same state for 30 joint steps (TinyRun's joint phase has 18) of the batch rule with
    /// γ = 1, with 2, 3 and 4 workers against the Trainer: every step's reduced sums and state are the same bits. (Before
    /// the fixed micro-batch tree, rounding at 1e-7 after the first step grew through Adam and BMU flips to 1e-3.)
    /// </summary>
    [Fact]
    public async Task Should_stay_bitwise_equal_over_30_joint_steps()
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        var fitted = JointStart(TinyRun.Config(dataset, dir.Sub("single"), "batch") with { Gamma = 1 });
        static bool Joint(RunState s) => s.Phase == TrainingPhase.Joint;
        foreach (var workers in new[] { 2, 3, 4 })
        {
            var start = fitted with { Config = fitted.Config with { Epochs = 5, LearningRate = 1e-2 } }; // 5 epochs of 6 steps
            var reference = new StepRecorder(Joint);
            Resume(start, dir.Sub($"single-{workers}"), reference);
            var g0 = start.State.GlobalStep;
            var (_, cluster) = await RunCluster(start, dir.Sub($"cluster-{workers}"), workers, Joint);
            for (var k = 1; k <= 30; k++)
            {
                Assert.Equal(reference.Reduced(g0 + k).Statistics, cluster.Reduced(g0 + k).Statistics);
                Assert.Equal(0.0, StateDiff.Between(cluster.After(g0 + k), reference.After(g0 + k)).Max);
            }
            output.WriteLine($"{workers} workers: 30 joint steps, every one bitwise equal to the Trainer's");
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

    private static StepLayout Layout(Checkpoint c) =>
        new(c.Tensors.Where(t => t.Name.StartsWith("param/", StringComparison.Ordinal)).Sum(t => t.Data.Length),
            c.Config.MapRows * c.Config.MapCols, c.Config.Latent);

    /// <summary>The Trainer continuing <paramref name="start"/> to the end of the run; returns its final state.</summary>
    private static Checkpoint Resume(Checkpoint start, string outDir, ITrainingObserver observer) =>
        Train(start.Config with { Out = outDir }, observer, start);

    private static Checkpoint Train(DnmConfig config, ITrainingObserver observer, Checkpoint? resume)
    {
        using var train = TrainingRun.OpenTrain(config, null);
        using var trainer = new Trainer(config, train, train, TorchSharp.torch.CPU, new RunDirectory(config.Out), observer);
        if (resume is not null) trainer.Resume(resume);
        trainer.Run(CancellationToken.None);
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
