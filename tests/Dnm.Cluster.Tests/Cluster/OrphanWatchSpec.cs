namespace Dnm.Cluster.Tests.Cluster;

public sealed class OrphanWatchSpec
{
    private static readonly TimeSpan After = TimeSpan.FromSeconds(10);
    private static readonly DateTime T0 = new(2026, 12, 7, 12, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void A_node_that_sees_no_coordinator_member_rejoins_after_the_orphan_time()
    {
        var watch = new OrphanWatch(After);
        Assert.Null(watch.Observe(T0, selfUp: true, []));
        Assert.Null(watch.Observe(T0 + After - TimeSpan.FromSeconds(1), selfUp: true, []));
        var reason = watch.Observe(T0 + After, selfUp: true, []);
        Assert.NotNull(reason);
        Assert.Contains("no node with the coordinator role has been in the cluster for 10s", reason);
    }

    [Fact]
    public void A_coordinator_that_stays_unreachable_is_left_to_the_resolver_for_twice_the_orphan_time_then_the_node_rejoins()
    {
        var watch = new OrphanWatch(After);
        Assert.Null(watch.Observe(T0, selfUp: true, [false]));
        // The split-brain resolver decides after `After` of stable reachability: until twice that, it is its call.
        Assert.Null(watch.Observe(T0 + After, selfUp: true, [false]));
        Assert.Null(watch.Observe(T0 + After * 2 - TimeSpan.FromSeconds(1), selfUp: true, [false]));
        var reason = watch.Observe(T0 + After * 2, selfUp: true, [false]);
        Assert.NotNull(reason);
        Assert.Contains("unreachable from this node for 20s", reason);
    }

    [Fact]
    public void A_reachable_coordinator_or_a_node_not_yet_up_resets_the_clock()
    {
        var watch = new OrphanWatch(After);
        Assert.Null(watch.Observe(T0, selfUp: true, [false]));
        // One reachable coordinator (a standby beside an unreachable one counts too) ends the orphan time.
        Assert.Null(watch.Observe(T0 + After, selfUp: true, [false, true]));
        Assert.Null(watch.Observe(T0 + After * 2, selfUp: true, [false]));
        Assert.Null(watch.Observe(T0 + After * 3, selfUp: false, []));
        Assert.Null(watch.Observe(T0 + After * 4 - TimeSpan.FromSeconds(1), selfUp: true, []));
        Assert.NotNull(watch.Observe(T0 + After * 5 - TimeSpan.FromSeconds(1), selfUp: true, []));
    }
}
