using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Training;
using Dnm.Tests.Shared;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>Coordinator and workers in separate OS processes over loopback, configured by environment variables.</summary>
public sealed class MultiProcessSpec(ITestOutputHelper output)
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(4);

    private static string WriteConfig(TempDir dir, Core.Config.DnmConfig config)
    {
        var path = dir.Sub("run.json");
        File.WriteAllText(path, config.ToJson());
        return path;
    }

    [Theory]
    [InlineData(1, "127.0.0.1")]
    [InlineData(2, "localhost")] // seed nodes by DNS name
    [InlineData(3, "127.0.0.1")]
    public async Task Should_equal_the_single_process_run_bitwise_with_workers_in_separate_processes(int workers, string host)
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        var single = TinyRun.Config(dataset, dir.Sub("single"));
        var reference = TinyRun.TrainSingleProcess(single);
        var config = TinyRun.Config(dataset, dir.Sub("cluster"));
        var port = TestPorts.Next();
        var seeds = $"{host}:{port}";
        using var coordinator = NodeProcess.Start("coordinator", NodeProcess.Env("coordinator", port, seeds,
            (NodeEnvironment.Config, WriteConfig(dir, config)), (NodeEnvironment.MinWorkers, $"{workers}"), (NodeEnvironment.Host, host)), output);
        var nodes = Enumerable.Range(0, workers)
            .Select(i => NodeProcess.Start($"worker{i}", NodeProcess.Env("worker", 0, seeds, (NodeEnvironment.Host, host)), output)).ToList();
        try
        {
            Assert.Equal(0, await coordinator.WaitForExitAsync(RunTimeout));
            foreach (var node in nodes) Assert.Equal(0, await node.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            // Worker processes on the coordinator's host negotiate the shared-memory data plane (the tiny model's
            // payloads are small enough to stay inline; SharedMemorySpec moves large ones across processes).
            Assert.Contains(coordinator.Lines, l => l.Contains("through shared memory", StringComparison.Ordinal));
            var final = TinyRun.Final(config);
            Assert.Equal(reference.State.GlobalStep, final.State.GlobalStep);
            TinyRun.AssertBitwiseEqual(final, reference, output, $"{workers} worker process(es)");
            // The map itself: the cluster coordinator's final-metrics.json is the single process's, byte for byte.
            var written = File.ReadAllText(Path.Combine(config.Out, "final-metrics.json"));
            output.WriteLine(written);
            Assert.Equal(File.ReadAllText(Path.Combine(single.Out, "final-metrics.json")), written);
        }
        finally
        {
            foreach (var node in nodes) node.Dispose();
        }
    }

    [Fact]
    public async Task Should_finish_the_run_when_one_of_three_worker_processes_is_killed()
    {
        using var dir = new TempDir();
        // 240 samples, batch 12: 20 steps an epoch, 40 of pre-training and 160 joint steps, so the kill at step 15 lands
        // mid-run even at ~20 ms a step on a loaded machine (a 100-step run left 1.7 s).
        var dataset = TinyRun.WriteDataset(dir.Path, count: 240);
        var reference = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("single")) with { Epochs = 8 });
        var config = TinyRun.Config(dataset, dir.Sub("cluster")) with { Epochs = 8 };
        var port = TestPorts.Next();
        var seeds = $"127.0.0.1:{port}";
        using var coordinator = NodeProcess.Start("coordinator", NodeProcess.Env("coordinator", port, seeds,
            (NodeEnvironment.Config, WriteConfig(dir, config)), (NodeEnvironment.MinWorkers, "3")), output);
        var workers = Enumerable.Range(0, 3).Select(i => NodeProcess.Start($"worker{i}", NodeProcess.Env("worker", 0, seeds), output)).ToList();
        try
        {
            await coordinator.WaitForLineAsync(l => l.StartsWith("step 15 ", StringComparison.Ordinal), RunTimeout);
            workers[1].Kill();
            Assert.Equal(0, await coordinator.WaitForExitAsync(RunTimeout));
            Assert.Equal(0, await workers[0].WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.Equal(0, await workers[2].WaitForExitAsync(TimeSpan.FromSeconds(60)));
            // The step in flight was abandoned and retried on two workers with the same global batch.
            Assert.Contains(coordinator.Lines, l => l.Contains("abandoned", StringComparison.Ordinal) || l.Contains("left:", StringComparison.Ordinal));
            var final = TinyRun.Final(config);
            Assert.Equal(reference.State.GlobalStep, final.State.GlobalStep);
            TinyRun.AssertBitwiseEqual(final, reference, output, "after the kill");
        }
        finally
        {
            foreach (var node in workers) node.Dispose();
        }
    }

    [Fact]
    public async Task Should_resume_from_the_last_checkpoint_when_the_coordinator_process_is_killed()
    {
        using var dir = new TempDir();
        // 200 steps (as above): the failover must come mid-run.
        var dataset = TinyRun.WriteDataset(dir.Path, count: 240);
        var reference = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("single")) with { Epochs = 8 });
        // Both coordinator-role nodes read the same config and share the run directory (as a volume would).
        var config = TinyRun.Config(dataset, dir.Sub("cluster")) with { Epochs = 8 };
        var configFile = WriteConfig(dir, config);
        var port = TestPorts.Next();
        var seeds = $"127.0.0.1:{port}";
        // a: coordinator only (the oldest, so it hosts the singleton); b: standby coordinator and a worker; c: a worker.
        using var a = NodeProcess.Start("a", NodeProcess.Env("coordinator", port, seeds, (NodeEnvironment.Config, configFile), (NodeEnvironment.MinWorkers, "2")), output);
        await a.WaitForLineAsync(l => l.StartsWith("info: coordinator ready", StringComparison.Ordinal), RunTimeout);
        using var b = NodeProcess.Start("b", NodeProcess.Env("both", 0, seeds, (NodeEnvironment.Config, configFile), (NodeEnvironment.MinWorkers, "2")), output);
        using var c = NodeProcess.Start("c", NodeProcess.Env("worker", 0, seeds), output);

        // b and c must be Up before a dies: a member still Joining when its only Up peer goes is not counted by the
        // split-brain resolver's majority, and never becomes Up (seen under load: b gave up after its join timeout).
        await b.WaitForLineAsync(l => l.StartsWith("up:", StringComparison.Ordinal), RunTimeout);
        await c.WaitForLineAsync(l => l.StartsWith("up:", StringComparison.Ordinal), RunTimeout);
        await a.WaitForLineAsync(l => l.StartsWith("step 15 ", StringComparison.Ordinal), RunTimeout);
        a.Kill();
        // b's singleton takes over once the split-brain resolver has downed a, and continues from a's last checkpoint.
        var resumed = await b.WaitForLineAsync(l => l.Contains("resumed from", StringComparison.Ordinal), RunTimeout);
        output.WriteLine(resumed);
        Assert.Equal(0, await b.WaitForExitAsync(RunTimeout));
        Assert.Equal(0, await c.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var final = TinyRun.Final(config);
        Assert.Equal(reference.State.GlobalStep, final.State.GlobalStep);
        TinyRun.AssertBitwiseEqual(final, reference, output, "after the coordinator failover");
    }
}
