using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Config;
using Dnm.Core.Training;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// Semi-supervised training and the denoising autoencoder with `dnm train --workers 2` (coordinator and two workers in
/// one process, through the actors and the TCP data plane) end exactly where the single-process Trainer does: the
/// nodes' class counts travel in the one step vector, and a sample's corruption depends on (seed, epoch, index) alone.
/// </summary>
public sealed class SemiSupervisedEquivalenceSpec(ITestOutputHelper output)
{
    private async Task<(Checkpoint Final, Checkpoint Reference, Checkpoint Plain)> TrainBothWays(Func<DnmConfig, DnmConfig> option, string what)
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        DnmConfig With(string sub) => option(TinyRun.Config(dataset, dir.Sub(sub), "minibatch"));
        var reference = TinyRun.TrainSingleProcess(With("single"));
        var plain = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("plain"), "minibatch"));

        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var result = await ClusterTraining.RunEmbeddedAsync(With("cluster"), 2, new RecordingObserver(), cancel.Token,
            new NodeOptions { ChecksumEvery = 5 });

        var final = Checkpoint.Load(result.FinalCheckpoint!);
        TinyRun.AssertBitwiseEqual(final, reference, output, $"2 workers, {what}");
        var metrics = File.ReadAllText(Path.Combine(dir.Sub("single"), "final-metrics.json"));
        output.WriteLine(metrics);
        Assert.Equal(metrics, File.ReadAllText(Path.Combine(dir.Sub("cluster"), "final-metrics.json")));
        return (final, reference, plain);
    }

    [Fact]
    public async Task Should_learn_the_nodes_classes_with_two_workers_as_the_single_process_trainer_does()
    {
        var (final, reference, plain) = await TrainBothWays(c => c with { LabelledFraction = 0.5, LabelWeight = 2 }, "semi-supervised");
        // The class counts are part of the state, and they were learned (every labelled sample counts at least once).
        var counts = Assert.Single(final.Tensors, t => t.Name == NodeClasses.CheckpointName);
        Assert.Equal([12L, 4L], counts.Shape);
        Assert.True(counts.Data.Sum() > 1);
        // The supervised term did change the run. Only slightly: TinyRun's barely trained map holds most samples on one
        // node, whose mixed classes give the term little to pull on, so any difference shows it was applied.
        var difference = TinyRun.MaxRelativeDifference(reference, plain);
        output.WriteLine($"relative difference from the unsupervised run: {difference:E2}");
        Assert.True(difference > 0);
    }

    [Fact]
    public async Task Should_corrupt_every_sample_with_two_workers_as_the_single_process_trainer_does()
    {
        var (_, reference, plain) = await TrainBothWays(c => c with { Denoise = new NoiseSpec(NoiseKind.Gaussian, 0.3) }, "denoising");
        // The corruption did change the run: the plain autoencoder ends elsewhere.
        Assert.True(TinyRun.MaxRelativeDifference(reference, plain) > TinyRun.Different);
    }

    [Fact]
    public void Should_train_the_unsupervised_map_when_the_labels_have_no_weight()
    {
        // label-weight 0 is the baseline of the semi-supervised benchmark: the same map as unsupervised training, only
        // classified by the labelled subset. θ, φ, Adam's moments and W equal the plain run's to the bit.
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        var plain = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("plain")));
        var weightless = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("weightless")) with { LabelledFraction = 0.25, LabelWeight = 0 });
        foreach (var p in plain.Tensors)
            Assert.True(p.Data.AsSpan().SequenceEqual(Assert.Single(weightless.Tensors, t => t.Name == p.Name).Data), p.Name);
        Assert.Contains(weightless.Tensors, t => t.Name == NodeClasses.CheckpointName);
    }
}
