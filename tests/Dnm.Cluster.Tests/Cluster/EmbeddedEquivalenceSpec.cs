using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Config;
using Dnm.Core.Training;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// `dnm train --workers N` (coordinator and N workers in one process, through the actors and the TCP data
/// plane) must train the same map as the single-process Trainer: same seed, same global batches.
/// </summary>
public sealed class EmbeddedEquivalenceSpec(ITestOutputHelper output)
{
    [Theory]
    [InlineData(1, "minibatch")]
    [InlineData(2, "minibatch")]
    [InlineData(4, "minibatch")]
    [InlineData(1, "batch")]
    [InlineData(2, "batch")]
    [InlineData(4, "batch")]
    public async Task Should_equal_the_single_process_trainer_with_N_embedded_workers(int workers, string somRule)
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        var reference = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("single"), somRule));

        var observer = new RecordingObserver();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var result = await ClusterTraining.RunEmbeddedAsync(TinyRun.Config(dataset, dir.Sub("cluster"), somRule), workers, observer, cancel.Token,
            new NodeOptions { ChecksumEvery = 5 });

        var final = Checkpoint.Load(result.FinalCheckpoint!);
        output.WriteLine($"{workers} worker(s), {somRule} rule: {result.GlobalSteps} steps, " +
                         $"mean step {result.MeanStep.TotalMilliseconds:F2} ms, mean reduce {result.MeanReduce.TotalMilliseconds:F2} ms");
        Assert.Equal(reference.State.GlobalStep, result.GlobalSteps);
        Assert.Equal(TrainingPhase.Done, final.State.Phase);
        TinyRun.AssertBitwiseEqual(final, reference, output, $"{workers} worker(s), {somRule} rule");
        Assert.Equal(30, observer.Steps.Count(s => s.Phase != TrainingPhase.SomPretrain));
        // The coordinator's part after the slowest rank arrived lies inside every worker's all-reduce time.
        Assert.InRange(result.MeanTransfer, TimeSpan.FromTicks(1), result.MeanReduce);
    }

    /// <summary>
    /// Trains with <paramref name="option"/> applied to TinyRun's config in one process and with N embedded workers,
    /// asserts they agree (bitwise with one worker), and returns both runs' final states and that of a run without it.
    /// </summary>
    private async Task<(Checkpoint Final, Checkpoint Reference, Checkpoint Plain)> TrainWithAnOption(int workers, Func<DnmConfig, DnmConfig> option, string what)
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        DnmConfig With(string sub) => option(TinyRun.Config(dataset, dir.Sub(sub), "minibatch"));
        var reference = TinyRun.TrainSingleProcess(With("single"));
        var plain = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("plain"), "minibatch"));

        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var result = await ClusterTraining.RunEmbeddedAsync(With("cluster"), workers, new RecordingObserver(), cancel.Token,
            new NodeOptions { ChecksumEvery = 5 });

        var final = Checkpoint.Load(result.FinalCheckpoint!);
        TinyRun.AssertBitwiseEqual(final, reference, output, $"{workers} worker(s), {what}");
        return (final, reference, plain);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Should_augment_every_sample_as_the_single_process_trainer_does(int workers)
    {
        // Workers draw a sample's rotation and shift from (seed, data epoch, index), as the Trainer does: with one
        // worker the run stays bitwise equal, so a worker that skipped augmentation or used another epoch would fail.
        var (_, reference, plain) = await TrainWithAnOption(workers, c => c with { AugmentRotation = 12, AugmentShift = 0.15 }, "augmented");
        // Augmentation did change the run: the un-augmented trainer ends elsewhere.
        Assert.True(TinyRun.MaxRelativeDifference(plain, reference) > TinyRun.Different);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Should_pull_towards_the_smoothed_targets_as_the_single_process_trainer_does(int workers)
    {
        // The replica makes ẑ after autoencoder pre-training and sends it with each world's state; every worker
        // gathers its shard's rows. One worker stays bitwise equal, so a worker that used no targets, another
        // sample's rows or targets from other weights would fail.
        var (final, reference, plain) = await TrainWithAnOption(workers, c => c with { SmoothWeight = 1, SmoothNeighbours = 4, SmoothSteps = 3 }, "smoothed");
        // The coordinator's checkpoints carry the targets, as the Trainer's do.
        var targets = Assert.Single(final.Tensors, t => t.Name == SmoothTargets.CheckpointName);
        var targetsError = StateDiff.Relative(targets.Data, Assert.Single(reference.Tensors, t => t.Name == SmoothTargets.CheckpointName).Data);
        output.WriteLine($"{workers} worker(s): targets' relative error {targetsError:E2}");
        // NeighbourGraph re-ranks its candidates by the exact distance: with its float32 ranking alone, the rounding-level
        // difference of two workers' θ swapped near-tied neighbours and moved a third of these targets by ~1e-4.
        Assert.Equal(0.0, targetsError);
        // The term did change the run: the trainer without it ends elsewhere (compared over the plain run's tensors).
        Assert.True(TinyRun.MaxRelativeDifference(reference, plain) > TinyRun.Different);
    }

    [Fact]
    public async Task Should_train_the_mlp_encoder_as_the_single_process_trainer_does()
    {
        // The engine hands the cluster θ and φ as one flat gradient vector and state list, whatever the model: two
        // workers with the fully connected encoder still equal the Trainer, to rounding.
        var (final, _, _) = await TrainWithAnOption(2, c => c with { Encoder = EncoderKind.Mlp, Hidden = [24, 12] }, "mlp encoder");
        Assert.Equal(EncoderKind.Mlp, final.Config.Encoder);
        Assert.Contains(final.Tensors, t => t.Name.Contains("dense3", StringComparison.Ordinal));
    }
}
