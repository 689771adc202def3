using Dnm.Core.Training;

namespace Dnm.Core.Tests.Training;

/// <summary>Coordinator incarnations of one run directory: the newest owns it, older ones are refused what they would write.</summary>
public class RunFenceSpec
{
    [Fact]
    public void A_newer_incarnation_fences_off_the_older_one()
    {
        using var dir = new ScratchDirectory();
        var first = RunFence.Acquire(dir.Path, "first");
        Assert.Equal(1, first.Incarnation);
        Assert.Null(first.Newer());
        first.Check("commit step 1");

        var second = RunFence.Acquire(dir.Path, "second");
        Assert.Equal(2, second.Incarnation);
        Assert.Null(second.Newer());
        Assert.Equal(2, first.Newer());
        var refused = Assert.Throws<RunFencedException>(() => first.Check("commit step 8"));
        Assert.Contains("coordinator incarnation 2 of", refused.Message);
        Assert.Contains("started after this one (1): this coordinator does not commit step 8 and stops", refused.Message);
        second.Check("commit step 8");
    }

    [Fact]
    public void Coordinators_racing_for_a_number_each_get_their_own()
    {
        using var dir = new ScratchDirectory();
        var numbers = new long[16];
        Parallel.For(0, numbers.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => numbers[i] = RunFence.Acquire(dir.Path, $"racer {i}").Incarnation);
        Assert.Equal(numbers.Length, numbers.Distinct().Count());
        Assert.Equal(Enumerable.Range(1, numbers.Length).Select(n => (long)n), numbers.Order());
    }

    [Fact]
    public void Old_incarnations_are_pruned_and_the_numbers_go_on()
    {
        using var dir = new ScratchDirectory();
        for (var i = 0; i < 20; i++) RunFence.Acquire(dir.Path, "crash loop");
        var files = Directory.GetFiles(Path.Combine(dir.Path, RunFence.FolderName)).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(Enumerable.Range(13, 8).Select(n => n.ToString("D9", System.Globalization.CultureInfo.InvariantCulture)), files);
        Assert.Equal(21, RunFence.Acquire(dir.Path, "next").Incarnation);
    }

    [Fact]
    public void A_fenced_session_writes_no_checkpoint()
    {
        using var dir = new ScratchDirectory();
        using var data = InMemoryDataset.Blobs(48, 2);
        var config = StepEngineSpec.Small with { Map = "3x3", BatchSize = 24, Out = dir.File("run") };
        using var engine = new StepEngine(config, data.Shape, TorchSharp.torch.CPU, config.BatchSize);
        var run = new RunDirectory(config.Out);
        var old = RunFence.Acquire(config.Out, "old");
        var session = new RunSession(config, run, engine, data, data, new Silent()) { Fence = old };
        var state = session.Start();
        Assert.NotNull(session.SaveCheckpoint(state with { GlobalStep = 1 }));
        RunFence.Acquire(config.Out, "new");
        var refused = Assert.Throws<RunFencedException>(() => session.SaveCheckpoint(state with { GlobalStep = 2 }));
        Assert.Contains("does not write checkpoint step-000000002.ckpt", refused.Message);
        Assert.Equal(["step-000000001.ckpt"], Directory.GetFiles(run.Checkpoints).Select(Path.GetFileName));
    }

    private sealed class Silent : ITrainingObserver;
}
