using Dnm.Cluster.Hosting;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// How a node's wait to be Up ends. A node that joined as a partition began took part in the run without ever being Up,
/// was downed, and waited out its 15-minute join timeout instead of rejoining (the 2|2 rehearsal, caught in a process dump).
/// </summary>
public sealed class NodeJoinSpec
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(15);

    [Fact]
    public async Task A_node_downed_before_it_was_up_stops_waiting_at_once()
    {
        var up = new TaskCompletionSource();
        var rejoin = new TaskCompletionSource<string>();
        var waiting = NodeHost.WaitForUpAsync(up.Task, rejoin.Task, () => true, Long, CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        rejoin.SetResult("this node's actor system stopped before the run ended");
        Assert.Equal(NodeHost.JoinOutcome.EndedFirst, await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_node_the_cluster_never_accepted_waits_out_its_timeout_and_fails_as_before()
    {
        // A node whose certificate the cluster refuses: its system stops, but it never trained, so the join's error is its answer.
        var stopped = Task.FromResult("this node's actor system stopped before the run ended");
        var waiting = NodeHost.WaitForUpAsync(new TaskCompletionSource().Task, stopped, () => false, TimeSpan.FromMilliseconds(600), CancellationToken.None);
        await Task.Delay(300);
        Assert.False(waiting.IsCompleted);
        await Assert.ThrowsAsync<TimeoutException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_node_that_is_up_has_joined()
    {
        var up = new TaskCompletionSource();
        var waiting = NodeHost.WaitForUpAsync(up.Task, new TaskCompletionSource().Task, () => true, Long, CancellationToken.None);
        up.SetResult();
        Assert.Equal(NodeHost.JoinOutcome.Up, await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Neither_within_the_timeout_is_a_timeout()
    {
        var never = new TaskCompletionSource().Task;
        await Assert.ThrowsAsync<TimeoutException>(() => NodeHost.WaitForUpAsync(never, never, () => true, TimeSpan.FromMilliseconds(50), CancellationToken.None));
    }
}
