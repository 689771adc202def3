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
        var waiting = NodeHost.WaitForUpAsync(up.Task, rejoin.Task, Long, CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        rejoin.SetResult("this node's actor system stopped before the run ended");
        Assert.Equal(NodeHost.JoinOutcome.EndedFirst, await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_node_that_is_up_has_joined()
    {
        var up = new TaskCompletionSource();
        var waiting = NodeHost.WaitForUpAsync(up.Task, new TaskCompletionSource().Task, Long, CancellationToken.None);
        up.SetResult();
        Assert.Equal(NodeHost.JoinOutcome.Up, await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Neither_within_the_timeout_is_a_timeout()
    {
        var never = new TaskCompletionSource().Task;
        await Assert.ThrowsAsync<TimeoutException>(() => NodeHost.WaitForUpAsync(never, never, TimeSpan.FromMilliseconds(50), CancellationToken.None));
    }
}
