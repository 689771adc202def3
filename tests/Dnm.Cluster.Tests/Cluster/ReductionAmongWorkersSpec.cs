using System.Collections.Concurrent;
using Dnm.Cluster.Coordination;
using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Cluster.Workers;
using Dnm.Core.Telemetry;
using Dnm.Core.Training;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// The statistics summed among the workers (recursive halving, then doubling; the coordinator receives one slice a rank):
/// embedded runs end bitwise equal to one process, the coordinator's link carries a fraction of the star's bytes, and a
/// NaN rank or a rank lost mid-reduction is still named and the step retried.
/// </summary>
public sealed class ReductionAmongWorkersSpec(ITestOutputHelper output)
{
    private const string AmongWorkers = "statistics summed among the workers (recursive halving)";

    [Fact]
    public async Task Four_workers_should_sum_among_themselves_end_bitwise_equal_to_one_process_and_spare_the_coordinators_link()
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        var reference = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("single")));

        var (amongWorkers, ringMessages) = await RunAsync(dataset, dir.Sub("workers"), reference, StatisticsReduction.Workers);
        var (star, starMessages) = await RunAsync(dataset, dir.Sub("star"), reference, StatisticsReduction.Star);

        Assert.Contains(ringMessages, l => l.Contains(AmongWorkers, StringComparison.Ordinal));
        Assert.DoesNotContain(starMessages, l => l.Contains(AmongWorkers, StringComparison.Ordinal));
        output.WriteLine($"coordinator's link, 4 workers: star {star.Received:N0} B in, {star.Sent:N0} B out; " +
                         $"among workers {amongWorkers.Received:N0} B in, {amongWorkers.Sent:N0} B out");
        // In: the star takes 4 vectors a step, the workers' reduction one (4 slices) and 4 flags. Out: the star sends the sum to
        // 4 ranks a step, the other nothing. Both send the state (about 3 vectors a rank, once) and the soft counts alike.
        Assert.True(amongWorkers.Received * 3 < star.Received,
            $"the coordinator received {amongWorkers.Received} B among workers, {star.Received} B through the star");
        Assert.True(amongWorkers.Sent * 5 < star.Sent,
            $"the coordinator sent {amongWorkers.Sent} B among workers, {star.Sent} B through the star");
    }

    [Fact]
    public async Task Two_workers_should_sum_among_themselves_end_bitwise_equal_to_one_process_the_star_steps_of_a_short_batch_included()
    {
        using var dir = new TempDir();
        // 75 samples, batch 12: every epoch ends with a batch of 3, one micro-batch, which two ranks can only sum through the
        // coordinator: a world that sums among its workers switches to the star and back within an epoch.
        var dataset = TinyRun.WriteDataset(dir.Path, count: 75);
        var reference = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("single")));
        var observer = new RecordingObserver();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        // θ's checksums compared after every step: a rank that drifted would fail the run at once.
        var result = await ClusterTraining.RunEmbeddedAsync(TinyRun.Config(dataset, dir.Sub("workers")), 2, observer, cancel.Token,
            new NodeOptions { ChecksumEvery = 1, Reduction = StatisticsReduction.Workers });
        foreach (var line in observer.Messages) output.WriteLine(line);
        Assert.Contains(observer.Messages, l => l.Contains(AmongWorkers, StringComparison.Ordinal));
        TinyRun.AssertBitwiseEqual(Checkpoint.Load(result.FinalCheckpoint!), reference, output, "2 workers summing among themselves, and through the star for the short batches");
    }

    [Fact]
    public async Task A_non_finite_rank_among_four_should_be_named_and_the_step_retried_without_it()
    {
        // Worker 2 sends NaN in its statistics of step 3: its partners sum it into their halves, so only its flag names it.
        var (messages, final, reference) = await RunFaultedAsync(2, new WorkerFaults { NonFiniteAt = 3 });

        Assert.Contains(messages, l => l.Contains(AmongWorkers, StringComparison.Ordinal));
        var retried = Assert.Single(messages, l => l.Contains("held NaN or infinity, so the step is computed again", StringComparison.Ordinal));
        Assert.StartsWith("step 3 abandoned: the contribution of rank ", retried);
        Assert.Contains("/w2) held NaN", retried);
        Assert.DoesNotContain("/w0)", retried);
        Assert.DoesNotContain(messages, l => l.Contains(" skipped: ", StringComparison.Ordinal));
        TinyRun.AssertBitwiseEqual(final, reference, output, "a NaN rank among four workers retried");
    }

    [Fact]
    public async Task A_rank_lost_mid_reduction_should_be_named_and_the_step_retried_by_a_new_world()
    {
        // Worker 1 closes every data-plane connection as the statistics' reduction of step 4 begins: its partners' reductions
        // fail (and name no one); the coordinator's connection to it names it.
        var (messages, final, reference) = await RunFaultedAsync(1, new WorkerFaults { DisconnectAt = 4 });

        var dropped = Assert.Single(messages, l => l.StartsWith("dropped worker ", StringComparison.Ordinal));
        Assert.Matches(@"^dropped worker [^ ]+/w1: ", dropped);
        Assert.Single(messages, l => l.StartsWith("step 4 abandoned", StringComparison.Ordinal));
        Assert.DoesNotContain(messages, l => l.Contains("attempt", StringComparison.Ordinal));
        TinyRun.AssertBitwiseEqual(final, reference, output, "a rank lost mid-reduction");
    }

    [Fact]
    public async Task A_broken_link_between_live_workers_should_retry_the_step_through_the_coordinator_without_waiting_for_the_step_timeout()
    {
        // Worker 1 closes its partner connections (not its link to the coordinator) as the reduction of step 4 begins: every
        // rank's reduction fails, no rank is lost. The step timeout is far beyond the spec's own deadline: only the coordinator's
        // reaction to the failure can finish the run.
        var (messages, final, reference) = await RunFaultedAsync(1, new WorkerFaults { PartnersDisconnectAt = 4 }, stepTimeout: TimeSpan.FromMinutes(10));

        var abandoned = AssertRetriedThroughTheCoordinator(messages, ") reported: the reduction among the workers failed: ");
        Assert.Contains("no worker was lost within 2s", abandoned);
        TinyRun.AssertBitwiseEqual(final, reference, output, "a broken link between workers, retried through the coordinator");
    }

    [Fact]
    public async Task A_hung_link_between_live_workers_should_be_found_by_the_slices_timeout_and_the_step_retried_through_the_coordinator()
    {
        // Worker 2 sends its flag of step 4, then nothing to anyone: its partners wait on it without an error, and so does the
        // coordinator for the slices, until the among-workers timeout.
        var (messages, final, reference) = await RunFaultedAsync(2, new WorkerFaults { PartnersStallAt = 4 }, stepTimeout: TimeSpan.FromMinutes(10),
            amongWorkersTimeout: TimeSpan.FromSeconds(3));

        var abandoned = AssertRetriedThroughTheCoordinator(messages, "the reduction among the workers stalled: every rank began it");
        Assert.Contains("had not arrived after 3s", abandoned);
        TinyRun.AssertBitwiseEqual(final, reference, output, "a hung link between workers, retried through the coordinator");
    }

    /// <summary>
    /// A 4-worker embedded run summing among the workers, checksums every 5 steps, with <paramref name="fault"/> injected by
    /// <paramref name="worker"/> (within the spec's 3 minutes); its messages, its final checkpoint and the single process's.
    /// </summary>
    private async Task<(IReadOnlyList<string> Messages, Checkpoint Final, Checkpoint Reference)> RunFaultedAsync(int worker, WorkerFaults fault,
        TimeSpan? stepTimeout = null, TimeSpan? amongWorkersTimeout = null)
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        var reference = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("single")));
        var observer = new RecordingObserver();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var options = new NodeOptions { ChecksumEvery = 5, Reduction = StatisticsReduction.Workers, WorkerFaults = new Dictionary<int, WorkerFaults> { [worker] = fault } };
        if (stepTimeout is { } step) options = options with { StepTimeout = step };
        if (amongWorkersTimeout is { } among) options = options with { AmongWorkersTimeout = among };
        var result = await ClusterTraining.RunEmbeddedAsync(TinyRun.Config(dataset, dir.Sub("cluster")), 4, observer, cancel.Token, options);
        foreach (var line in observer.Messages) output.WriteLine(line);
        return (observer.Messages, Checkpoint.Load(result.FinalCheckpoint!), reference);
    }

    /// <summary>
    /// Step 4 abandoned once for <paramref name="cause"/>, no worker dropped or evicted, the next world through the coordinator;
    /// returns the abandonment's line.
    /// </summary>
    private static string AssertRetriedThroughTheCoordinator(IReadOnlyCollection<string> messages, string cause)
    {
        var abandoned = Assert.Single(messages, l => l.StartsWith("step 4 abandoned", StringComparison.Ordinal));
        Assert.Contains(cause, abandoned);
        Assert.Contains("the next world sums the statistics through the coordinator", abandoned);
        Assert.DoesNotContain(messages, l => l.StartsWith("dropped worker ", StringComparison.Ordinal) || l.Contains("evicted", StringComparison.Ordinal));
        var worlds = messages.Where(l => l.StartsWith("membership epoch ", StringComparison.Ordinal)).ToArray();
        Assert.Contains(AmongWorkers, worlds[0]);
        Assert.Contains(worlds, l => l.Contains("statistics summed through the coordinator (after step 4: ", StringComparison.Ordinal));
        // Every world after the failure has the same four members, so none sums among the workers again.
        var failedAt = Array.FindIndex(worlds, l => l.Contains("summed through the coordinator", StringComparison.Ordinal));
        Assert.All(worlds[failedAt..], l => Assert.DoesNotContain(AmongWorkers, l));
        return abandoned;
    }

    /// <summary>A 4-worker embedded run with <paramref name="reduction"/>, bitwise the reference; the coordinator's data-plane bytes.</summary>
    private async Task<((double Received, double Sent) Coordinator, string[] Messages)> RunAsync(string dataset, string outDir, Checkpoint reference,
        StatisticsReduction reduction)
    {
        // Its own source, of the name the coordinator requires; nothing listens to it.
        using var source = new System.Diagnostics.ActivitySource(StepTracer.SourceName);
        using var recorded = new MetricsRecorder();
        using var coordinator = new DnmMetrics(new TelemetryIdentity(ClusterTelemetry.CoordinatorRole, 0, "cpu"), scope: recorded);
        var workerMetrics = new ConcurrentBag<DnmMetrics>();
        var telemetry = new ClusterTelemetry(coordinator, id =>
        {
            var m = new DnmMetrics(id, scope: recorded);
            workerMetrics.Add(m);
            return m;
        }, source);
        var observer = new RecordingObserver();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var result = await ClusterTraining.RunEmbeddedAsync(TinyRun.Config(dataset, outDir), 4, observer, cancel.Token,
            new NodeOptions { ChecksumEvery = 5, Reduction = reduction }, telemetry: telemetry);
        foreach (var m in workerMetrics) m.Dispose();
        output.WriteLine($"{reduction}: mean step {result.MeanStep.TotalMilliseconds:F2} ms, mean reduce {result.MeanReduce.TotalMilliseconds:F2} ms");
        TinyRun.AssertBitwiseEqual(Checkpoint.Load(result.FinalCheckpoint!), reference, output, $"4 workers, {reduction}");
        return ((recorded.Sum("dnm_allreduce_bytes_total", role: "coordinator", rank: "0", direction: "received"),
                 recorded.Sum("dnm_allreduce_bytes_total", role: "coordinator", rank: "0", direction: "sent")), observer.Messages.ToArray());
    }
}
