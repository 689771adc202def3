using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Cluster.Workers;
using Dnm.Core.Training;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// Faults of one rank in a step, injected by that worker through the real data plane (<see cref="WorkerFaults"/>): the
/// coordinator retries the step without the rank, and since the others recompute its micro-batches, the run still ends
/// bitwise equal to the single process's.
/// </summary>
public sealed class StepFaultsSpec(ITestOutputHelper output)
{
    [Fact]
    public async Task A_non_finite_contribution_from_one_rank_should_be_retried_without_it_and_change_nothing()
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        var reference = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("single")));

        var observer = new RecordingObserver();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        // Worker 1 sends NaN in its statistics of step 3 (autoencoder pre-training).
        var result = await ClusterTraining.RunEmbeddedAsync(TinyRun.Config(dataset, dir.Sub("cluster")), 2, observer, cancel.Token,
            new NodeOptions { ChecksumEvery = 5, WorkerFaults = new Dictionary<int, WorkerFaults> { [1] = new() { NonFiniteAt = 3 } } });

        foreach (var line in observer.Messages) output.WriteLine(line);
        var retried = observer.Messages.Where(l => l.Contains("held NaN or infinity, so the step is computed again", StringComparison.Ordinal)).ToArray();
        var line1 = Assert.Single(retried);
        Assert.StartsWith("step 3 abandoned: the contribution of rank ", line1);
        Assert.Contains("/w1) held NaN", line1);
        // Nothing was skipped: the step was computed again, without the fault.
        Assert.DoesNotContain(observer.Messages, l => l.Contains(" skipped: ", StringComparison.Ordinal));
        TinyRun.AssertBitwiseEqual(Checkpoint.Load(result.FinalCheckpoint!), reference, output, "a NaN contribution retried");
    }

    [Fact]
    public async Task A_straggler_should_be_evicted_at_the_step_timeout_named_alone_and_the_rest_should_finish_the_same_run()
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        var reference = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("single")));

        var observer = new RecordingObserver();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        // Worker 1 holds its statistics of step 2 back for 15 s; the step timeout is 5 s (generous for 2 loaded cores).
        var result = await ClusterTraining.RunEmbeddedAsync(TinyRun.Config(dataset, dir.Sub("cluster")), 2, observer, cancel.Token,
            new NodeOptions
            {
                ChecksumEvery = 5, StepTimeout = TimeSpan.FromSeconds(5),
                WorkerFaults = new Dictionary<int, WorkerFaults> { [1] = new() { DelayAt = 2, Delay = TimeSpan.FromSeconds(15) } },
            });

        foreach (var line in observer.Messages) output.WriteLine(line);
        var dropped = Assert.Single(observer.Messages, l => l.StartsWith("dropped worker ", StringComparison.Ordinal));
        Assert.Matches(@"^dropped worker [^ ]+/w1: a straggler: its contribution to step 2 had not arrived after 5s, the other ranks' within [0-9.]+s$", dropped);
        var abandoned = Assert.Single(observer.Messages, l => l.StartsWith("step 2 abandoned", StringComparison.Ordinal));
        Assert.Matches(@"^step 2 abandoned: rank \d \(worker [^ ]+/w1\) sent nothing within 5s \(evicted as a straggler\)", abandoned);
        Assert.DoesNotContain("/w0", abandoned);
        // The straggler registers again and takes part in later worlds; no step failed for good.
        Assert.DoesNotContain(observer.Messages, l => l.Contains("attempt", StringComparison.Ordinal));
        TinyRun.AssertBitwiseEqual(Checkpoint.Load(result.FinalCheckpoint!), reference, output, "a straggler evicted");
    }
}
