using System.Collections.Concurrent;
using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Training;
using Dnm.Tests.Shared;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// What a node's /readyz is built from follows its current actor system: a worker node that loses its coordinator leaves
/// to rejoin with a fresh system, and is not Up again (joined) until that system is. Two nodes in this process.
/// </summary>
public sealed class RejoinReadinessSpec
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(90);

    private static NodeOptions Coordinator(int port) => new()
    {
        // Two workers needed, one comes: the run never starts, and the coordinator stays Up, gathering.
        Roles = NodeRoles.Coordinator, Host = "127.0.0.1", BindHost = "127.0.0.1", Port = port, MinWorkers = 2, ResumeFromCheckpoint = false,
    };

    [Fact]
    public async Task Should_say_a_worker_node_left_when_it_rejoins_with_a_fresh_actor_system_and_joined_once_that_is_up()
    {
        using var dir = new TempDir();
        var config = TinyRun.Config(TinyRun.WriteDataset(dir.Path), dir.Sub("cluster"));
        var port = TestPorts.Next();
        var said = new ConcurrentQueue<string>();
        using var stopWorker = new CancellationTokenSource();
        using var stopFirst = new CancellationTokenSource();
        var first = NodeHost.RunAsync(Coordinator(port), config, new NoObserver(), stopFirst.Token);
        var worker = NodeHost.RunAsync(new NodeOptions
        {
            Roles = NodeRoles.Worker, Seeds = [$"127.0.0.1:{port}"], Host = "127.0.0.1", BindHost = "127.0.0.1", Port = 0,
            // It rejoins once it has seen no coordinator for this long.
            DownAfter = TimeSpan.FromSeconds(2),
        }, null, new NoObserver(), stopWorker.Token, joined: () => said.Enqueue("joined"), left: () => said.Enqueue("left"));
        try
        {
            await Until(() => said.Count == 1, "the worker node to be Up");
            // The coordinator stops (and leaves the cluster): the worker node has no coordinator, and rejoins.
            await stopFirst.CancelAsync();
            await Assert.ThrowsAsync<RunStoppedException>(() => first.WaitAsync(Wait));
            await Until(() => said.Count == 2, "the worker node to leave its cluster");
            Assert.Equal(["joined", "left"], said);
            // A coordinator again at the seed: the worker's fresh actor system joins it.
            using var stopSecond = new CancellationTokenSource();
            var second = NodeHost.RunAsync(Coordinator(port), config, new NoObserver(), stopSecond.Token);
            await Until(() => said.Count == 3, "the worker node's fresh actor system to be Up");
            Assert.Equal(["joined", "left", "joined"], said);
            await stopSecond.CancelAsync();
            await Assert.ThrowsAsync<RunStoppedException>(() => second.WaitAsync(Wait));
        }
        finally
        {
            await stopFirst.CancelAsync();
            await stopWorker.CancelAsync();
            await Assert.ThrowsAsync<RunStoppedException>(() => worker.WaitAsync(Wait));
        }
    }

    /// <summary>Polls: the nodes report from their own threads, in their own time.</summary>
    private static async Task Until(Func<bool> condition, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Wait) throw new TimeoutException($"waited {Wait.TotalSeconds:0}s for {what}");
            await Task.Delay(100);
        }
    }
}
