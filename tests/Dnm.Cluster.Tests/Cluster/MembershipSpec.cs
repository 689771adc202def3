using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Training;
using Dnm.Tests.Shared;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>Two cluster nodes in this process (two actor systems over loopback remoting, and the TCP data plane).</summary>
public sealed class MembershipSpec(ITestOutputHelper output)
{
    [Fact]
    public async Task Should_give_work_to_a_worker_that_joins_mid_run()
    {
        using var dir = new TempDir();
        // 240 samples, batch 12: 20 steps an epoch, 2 + 3 epochs.
        var dataset = TinyRun.WriteDataset(dir.Path, count: 240);
        var reference = TinyRun.TrainSingleProcess(TinyRun.Config(dataset, dir.Sub("single")));
        var config = TinyRun.Config(dataset, dir.Sub("cluster"));
        var port = TestPorts.Next();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        Task<ClusterRunResult>? joiner = null;
        var observer = new RecordingObserver
        {
            OnStepHook = r =>
            {
                if (r.GlobalStep != 10 || joiner is not null) return;
                joiner = NodeHost.RunAsync(new NodeOptions
                {
                    Roles = NodeRoles.Worker, Seeds = [$"127.0.0.1:{port}"], Host = "127.0.0.1", BindHost = "127.0.0.1", Port = 0, LocalWorkers = 1,
                }, null, new NoObserver(), cancel.Token);
                // This runs on the coordinator actor: holding it a moment lets the new node join the cluster
                // and queue its registration before the (fast) run is over.
                Thread.Sleep(TimeSpan.FromSeconds(3));
            },
        };
        var result = await NodeHost.RunAsync(new NodeOptions
        {
            Roles = NodeRoles.Both, Host = "127.0.0.1", BindHost = "127.0.0.1", Port = port, LocalWorkers = 2, MinWorkers = 2, ChecksumEvery = 5,
        }, config, observer, cancel.Token);
        Assert.NotNull(joiner);
        await joiner!.WaitAsync(TimeSpan.FromSeconds(60));

        foreach (var m in observer.Messages.Where(m => m.Contains("membership epoch", StringComparison.Ordinal))) output.WriteLine(m);
        var grown = observer.Messages.FirstOrDefault(m => m.Contains("3 worker(s)", StringComparison.Ordinal));
        Assert.NotNull(grown);
        // Steps ran in the world of three.
        var index = observer.Messages.ToList().IndexOf(grown!);
        Assert.True(observer.Steps.Count(s => s.Phase != TrainingPhase.SomPretrain) > 10);
        Assert.True(index >= 0);
        TinyRun.AssertBitwiseEqual(Checkpoint.Load(result.FinalCheckpoint!), reference, output, "with a worker that joined at step 10");
    }
}
