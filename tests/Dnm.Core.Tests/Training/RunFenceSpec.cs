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
        // Many more racers than incarnations kept: a slow racer's number can be taken and pruned before it creates its file.
        for (var round = 0; round < 20; round++)
        {
            using var dir = new ScratchDirectory();
            var numbers = new long[32];
            Parallel.For(0, numbers.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => numbers[i] = RunFence.Acquire(dir.Path, $"racer {i}").Incarnation);
            Assert.Equal(numbers.Length, numbers.Distinct().Count());
        }
    }

    [Fact]
    public void A_racer_overtaken_until_its_number_was_pruned_takes_a_new_one()
    {
        using var dir = new ScratchDirectory();
        var first = RunFence.Acquire(dir.Path, "first");
        var held = true;
        // The slow racer read 1 as the highest and is about to create 2; meanwhile 2..10 are taken and 10 prunes 2.
        var slow = RunFence.Acquire(dir.Path, "slow", next =>
        {
            if (!held) return;
            held = false;
            Assert.Equal(2, next);
            for (var i = 0; i < 9; i++) RunFence.Acquire(dir.Path, $"fast {i}");
            Assert.False(File.Exists(Path.Combine(dir.Path, RunFence.FolderName, "000000002")));
        });
        Assert.Equal(11, slow.Incarnation);
        Assert.Null(slow.Newer());
        Assert.Equal(11, first.Newer());
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
