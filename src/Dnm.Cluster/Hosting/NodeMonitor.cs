using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Dnm.Cluster.Protocol;

namespace Dnm.Cluster;

/// <summary>
/// One per node at /user/dnm-node: the coordinator announces the end of the run here, so a node whose own
/// actors took no part in the ending (a standby coordinator, a worker dropped at the last step) still stops.
/// <para>
/// On a node without the coordinator role it also watches for the coordinator to be gone for good: when no member with
/// the coordinator role has been in the cluster (Joining, WeaklyUp or Up) for <c>orphanAfter</c>, its node was downed or
/// left, and nothing in this cluster will replace it (a coordinator started again founds a new cluster through its
/// seeds, it never joins this one). The node then asks to rejoin (<see cref="RunCompletion.RequestRejoin"/>): its host
/// leaves and joins the seeds again with a fresh actor system, which finds the coordinator wherever it now is. It does the
/// same when the coordinator is still a member but has been unreachable for twice <c>orphanAfter</c>: longer than the
/// split-brain resolver takes to decide, so this node is outside what the rest of the cluster decided.
/// </para>
/// </summary>
public sealed class NodeMonitor : ReceiveActor, IWithTimers
{
    public const string Name = "dnm-node";

    private sealed record CheckCoordinator
    {
        public static readonly CheckCoordinator Instance = new();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="orphanAfter">How long a node may see no coordinator-role member before it rejoins; null on a node with that role.</param>
    public static Props Props(RunCompletion completion, TimeSpan? orphanAfter = null) =>
        Akka.Actor.Props.Create(() => new NodeMonitor(completion, orphanAfter));

    public NodeMonitor(RunCompletion completion, TimeSpan? orphanAfter)
    {
        var log = Context.GetLogger();
        // Either message stops this node: only the coordinator singleton may send it.
        bool FromCoordinator(object message)
        {
            if (Hosting.CoordinatorIdentity.IsCoordinator(Context.System, Sender)) return true;
            log.Warning("node monitor dropped {0} from {1}: only the coordinator singleton ends a run", message.GetType().Name, Sender.Path);
            return false;
        }
        Receive<RunFinished>(f =>
        {
            if (FromCoordinator(f)) completion.Succeed(new ClusterRunResult(f.GlobalStep, 0, f.RunDirectory, null, TimeSpan.Zero, 0, TimeSpan.Zero, TimeSpan.Zero));
        });
        Receive<RunFailed>(f =>
        {
            if (FromCoordinator(f)) completion.Fail(new ClusterRunException(f.Reason));
        });
        if (orphanAfter is not { } after || ((ExtendedActorSystem)Context.System).Provider is not ClusterActorRefProvider) return;
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var watch = new OrphanWatch(after);
        Receive<CheckCoordinator>(_ =>
        {
            var state = cluster.State;
            var coordinators = state.Members.Where(m => m.HasRole(Hosting.DnmAkkaExtensions.CoordinatorRole)
                                                        && m.Status is MemberStatus.Joining or MemberStatus.WeaklyUp or MemberStatus.Up)
                .Select(m => !state.Unreachable.Contains(m)).ToList();
            if (watch.Observe(DateTime.UtcNow, cluster.SelfMember.Status == MemberStatus.Up, coordinators) is not { } reason) return;
            Timers.Cancel(CheckCoordinator.Instance);
            completion.RequestRejoin(reason);
        });
        Timers.StartPeriodicTimer(CheckCoordinator.Instance, CheckCoordinator.Instance, TimeSpan.FromSeconds(1));
    }
}

/// <summary>
/// The node monitor's rule for a node left without a coordinator, fed what the node sees once a second: whether it is Up, and
/// for each member with the coordinator role (Joining, WeaklyUp or Up) whether it is reachable from here.
/// </summary>
internal sealed class OrphanWatch(TimeSpan after)
{
    private DateTime? since;

    /// <summary>Why this node must rejoin the seeds now, or null while it need not.</summary>
    public string? Observe(DateTime now, bool selfUp, IReadOnlyCollection<bool> coordinatorsReachable)
    {
        // Before this node is Up the join itself is being waited for (NodeHost), with its own timeout and message.
        if (!selfUp || coordinatorsReachable.Any(reachable => reachable))
        {
            since = null;
            return null;
        }
        since ??= now;
        // A coordinator that is still a member but unreachable is the split-brain resolver's to decide (it downs one side after
        // `after` of stable reachability). Twice that long undecided, this node is the one left outside: a healed partition
        // whose other side had already removed it, which no decision of its own side will undo.
        var absent = coordinatorsReachable.Count == 0;
        var limit = absent ? after : after * 2;
        if (now - since < limit) return null;
        return absent
            ? $"no node with the coordinator role has been in the cluster for {after.TotalSeconds:0}s (it was downed or left)"
            : $"the coordinator has been unreachable from this node for {limit.TotalSeconds:0}s and the split-brain resolver has not decided " +
              "(this node was left outside a healed partition)";
    }
}
