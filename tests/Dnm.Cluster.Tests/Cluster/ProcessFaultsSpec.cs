using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Tests.Shared;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// Faults of one rank in a step (<see cref="StepFaultsSpec"/>'s), with the coordinator and each worker in an OS process of
/// its own, as on a cluster: the faulty worker's process injects them through the test hook <see cref="TestFaults"/>.
/// The run still ends bitwise where one process ends, and every process exits 0.
/// </summary>
public sealed class ProcessFaultsSpec(ITestOutputHelper output)
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(4);

    [Theory]
    [InlineData("straggler")]
    [InlineData("nan")]
    public async Task A_faulty_worker_process_should_be_handled_and_the_run_end_bitwise_as_one_process(string fault)
    {
        using var dir = new TempDir();
        var run = TinyRun.ForProcesses(dir);
        // The straggler holds its statistics of step 2 back for 20 s against a step timeout of 6 s; the poisoner sends NaN
        // in its statistics of step 3.
        var hook = fault == "straggler" ? "delay-at=2,delay=20" : "nan-at=3";
        var faultyPort = TestPorts.Next();
        var faultyId = $"127.0.0.1:{faultyPort}/w0";
        using var coordinator = NodeProcess.Start("coordinator", NodeProcess.Env("coordinator", run.Port, run.Seeds,
            (NodeEnvironment.Config, run.ConfigFile), (NodeEnvironment.MinWorkers, "2"), (NodeEnvironment.StepTimeout, "6s")), output);
        using var healthy = NodeProcess.Start("worker0", NodeProcess.Env("worker", 0, run.Seeds), output);
        using var faulty = NodeProcess.Start("worker1", NodeProcess.Env("worker", faultyPort, run.Seeds, (TestFaults.Variable, hook)), output);

        Assert.Equal(0, await coordinator.WaitForExitAsync(RunTimeout));
        Assert.Equal(0, await healthy.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(0, await faulty.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        if (fault == "straggler")
        {
            // Named alone, from the ranks' arrival times, and evicted; it registers again and the run goes on.
            var dropped = Assert.Single(coordinator.Lines, l => l.StartsWith("info: dropped worker ", StringComparison.Ordinal));
            Assert.StartsWith($"info: dropped worker {faultyId}: a straggler: its contribution to step 2 had not arrived after 6s", dropped);
            var abandoned = Assert.Single(coordinator.Lines, l => l.StartsWith("info: step 2 abandoned", StringComparison.Ordinal));
            Assert.Contains($"(worker {faultyId}) sent nothing within 6s (evicted as a straggler)", abandoned);
        }
        else
        {
            var retried = Assert.Single(coordinator.Lines, l => l.Contains("held NaN or infinity, so the step is computed again", StringComparison.Ordinal));
            Assert.StartsWith("info: step 3 abandoned: the contribution of rank ", retried);
            Assert.Contains($"(worker {faultyId}) held NaN", retried);
            Assert.DoesNotContain(coordinator.Lines, l => l.Contains(" skipped: ", StringComparison.Ordinal));
        }
        run.AssertEndsAsTheSingleProcess(output, $"a {fault} worker in its own process");
    }
}
