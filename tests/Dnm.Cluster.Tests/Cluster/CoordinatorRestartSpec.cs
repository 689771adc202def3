using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Tests.Shared;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// The shipped topology (one coordinator whose seed is itself, workers seeded with it) when the coordinator process dies
/// and is started again with the same command, as Kubernetes restarts a pod: the workers get back to it without help,
/// and the run ends bitwise where an uninterrupted run ends.
/// </summary>
public sealed class CoordinatorRestartSpec(ITestOutputHelper output)
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(4);

    [Theory]
    [InlineData("SIGKILL")]
    [InlineData("SIGTERM")]
    public async Task Should_finish_bitwise_when_the_only_coordinator_is_stopped_and_started_again_with_the_same_command(string signal)
    {
        using var dir = new TempDir();
        // 72 samples, batch 12: 6 steps an epoch, 12 of pre-training and 252 joint steps (42 epochs: at ~20 ms a step a
        // shorter run could end before the stop lands). The third checkpoint is step 14's, in the joint phase (after step 7's
        // and the end of SOM pre-training at step 12): the stop comes after it.
        var run = TinyRun.ForProcesses(dir, epochs: 42);
        var (config, seeds) = (run.Config, run.Seeds);
        var coordinatorEnv = NodeProcess.Env("coordinator", run.Port, seeds, (NodeEnvironment.Config, run.ConfigFile), (NodeEnvironment.MinWorkers, "2"));
        var first = NodeProcess.Start("coordinator", coordinatorEnv, output);
        var workers = Enumerable.Range(0, 2).Select(i => NodeProcess.Start($"worker{i}", NodeProcess.Env("worker", 0, seeds), output)).ToList();
        NodeProcess? second = null;
        try
        {
            await first.WaitForLineAsync(l => l.StartsWith("checkpoint: step-000000014", StringComparison.Ordinal), RunTimeout);
            string expected;
            if (signal == "SIGKILL")
            {
                first.Kill();
                await first.WaitForExitAsync(TimeSpan.FromSeconds(30));
                // The newest checkpoint it wrote: at ~20 ms a step the run can get several steps and a checkpoint past step 14's
                // before the kill lands (a CI run resumed from step 21's), and a restart continues the newest.
                expected = Path.GetFileName(Core.Training.Checkpoint.Latest(Path.Combine(config.Out, "checkpoints")))!;
                Assert.True(string.CompareOrdinal(expected, "step-000000014.ckpt") >= 0, $"the newest checkpoint after the kill is {expected}, older than step 14's");
            }
            else
            {
                // SIGTERM: the step in flight is finished or abandoned, its checkpoint written, and the process exits 0
                // well within Kubernetes' default grace period of 30 s.
                var clock = System.Diagnostics.Stopwatch.StartNew();
                first.Terminate();
                Assert.Equal(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(30)));
                output.WriteLine($"the coordinator exited {clock.Elapsed.TotalSeconds:F1} s after SIGTERM");
                var stopped = await first.WaitForLineAsync(l => l.StartsWith("stopped: stopped at global step ", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
                var step = long.Parse(stopped.Split(' ')[5].TrimEnd(';'), System.Globalization.CultureInfo.InvariantCulture);
                expected = Core.Training.Checkpoint.FileName(step);
                Assert.Contains(expected, stopped, StringComparison.Ordinal);
            }
            second = NodeProcess.Start("coordinator'", coordinatorEnv, output);
            var resumed = await second.WaitForLineAsync(l => l.Contains("resumed from", StringComparison.Ordinal), RunTimeout);
            output.WriteLine(resumed);
            // The restart resumes where the first incarnation stopped, and fences it off.
            Assert.Contains(expected, resumed, StringComparison.Ordinal);
            Assert.Contains(second.Lines, l => l.Contains("coordinator incarnation 2 of run directory", StringComparison.Ordinal));
            Assert.Equal(0, await second.WaitForExitAsync(RunTimeout));
            foreach (var worker in workers) Assert.Equal(0, await worker.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            // The workers came back on their own: each left its orphaned cluster and joined the restarted coordinator's.
            foreach (var worker in workers)
                Assert.Contains(worker.Lines, l => l.StartsWith("info: rejoining: ", StringComparison.Ordinal));
            Assert.Equal(run.Reference.State.GlobalStep, TinyRun.Final(config).State.GlobalStep);
            run.AssertEndsAsTheSingleProcess(output, $"after the coordinator was stopped with {signal} and started again");
        }
        finally
        {
            first.Dispose();
            second?.Dispose();
            foreach (var worker in workers) worker.Dispose();
        }
    }

    [Fact]
    public async Task Should_let_a_worker_stopped_by_SIGTERM_leave_cleanly_and_the_run_finish_without_it()
    {
        using var dir = new TempDir();
        // 252 joint steps: at ~25 ms a step the default 18 can end before the SIGTERMed worker has left the cluster.
        var run = TinyRun.ForProcesses(dir, epochs: 42);
        var seeds = run.Seeds;
        using var coordinator = NodeProcess.Start("coordinator", NodeProcess.Env("coordinator", run.Port, seeds,
            (NodeEnvironment.Config, run.ConfigFile), (NodeEnvironment.MinWorkers, "2")), output);
        using var stays = NodeProcess.Start("worker0", NodeProcess.Env("worker", 0, seeds), output);
        using var leaves = NodeProcess.Start("worker1", NodeProcess.Env("worker", 0, seeds), output);
        await coordinator.WaitForLineAsync(l => l.StartsWith("step 3 ", StringComparison.Ordinal), RunTimeout);
        leaves.Terminate();
        Assert.Equal(0, await leaves.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains(leaves.Lines, l => l == "stopped: stopped on request; this node left the cluster");
        Assert.Equal(0, await coordinator.WaitForExitAsync(RunTimeout));
        Assert.Equal(0, await stays.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(coordinator.Lines, l => l.Contains("/w0 left: ", StringComparison.Ordinal));
        run.AssertEndsAsTheSingleProcess(output, "after a worker left on SIGTERM");
    }
}
