using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;

namespace Dnm.Cluster.Coordination;

// Membership under churn. The cluster's failure detector says a node is unreachable seconds before the split-brain resolver
// downs it and Terminated arrives: its workers are left out of new worlds at once, and a forming world or a committed step
// stops waiting for them. A node that becomes reachable again brings its workers back. Workers that join are admitted at a
// step boundary, once the current world has stepped for as long as it took to form, so that a stream of joins cannot keep
// the run forming worlds that never step.
public sealed partial class CoordinatorActor
{
    // Nodes the failure detector reports unreachable. Their workers stay registered (a node may come back) but take no new rank.
    private readonly HashSet<Address> unreachable = new();
    // Steps completed in the current world.
    private int worldSteps;
    // Since the current world's Form; formedIn: how long it took to form (null while it forms).
    private readonly Stopwatch worldClock = new();
    private TimeSpan? formedIn;

    /// <summary>A worker that may take a rank in the next world.</summary>
    private bool Eligible(WorkerEntry w) => w.Ready && !benched.Contains(w) && !unreachable.Contains(w.Node);

    /// <summary>
    /// The next step needs a new world: there is none, a member is gone, or workers wait to join and the current world has
    /// completed a step and stepped at least as long as it took to form (so forming for joins takes at most half the time).
    /// </summary>
    private bool NeedsWorld => world is null || membershipChanged
                               || (Waiting && worldSteps > 0 && formedIn is { } f && worldClock.Elapsed >= 2 * f);

    /// <summary>Workers that could take a rank wait outside the current world (while it has room: a rank per sample at most).</summary>
    private bool Waiting => world is { } w && w.Size < replica.Config.BatchSize && workers.Values.Any(e => Eligible(e) && w.RankOf(e) < 0);

    /// <summary>Reachability events of the cluster's members, where there is a cluster (actor specs run without one).</summary>
    private void SubscribeToReachability()
    {
        if (((ExtendedActorSystem)Context.System).Provider is not ClusterActorRefProvider) return;
        Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IReachabilityEvent), typeof(ClusterEvent.MemberRemoved));
    }

    private void UnsubscribeFromReachability()
    {
        if (((ExtendedActorSystem)Context.System).Provider is ClusterActorRefProvider) Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
    }

    /// <summary>The reachability part of <see cref="Membership"/>: the same in every running state but for the state's reaction.</summary>
    private void Reachability(Action? onReady, Action<int>? onUnreachable)
    {
        Receive<ClusterEvent.UnreachableMember>(u => NodeUnreachable(u.Member.Address, onUnreachable));
        Receive<ClusterEvent.ReachableMember>(r => NodeReachable(r.Member.Address, onReady));
        // Removed (downed, left): its workers' Terminated follows, and an address used again is a new node.
        Receive<ClusterEvent.MemberRemoved>(r => unreachable.Remove(r.Member.Address));
    }

    private void NodeUnreachable(Address node, Action<int>? react)
    {
        if (!unreachable.Add(node)) return;
        var there = workers.Values.Where(w => w.Node.Equals(node)).ToArray();
        if (there.Length == 0) return;
        observer.OnMessage($"worker(s) {string.Join(", ", there.Select(w => w.Id))} unreachable (node {node}): left out of new worlds until reachable again");
        foreach (var w in there)
        {
            // A reaction may form another world (without them): look the rank up in the world current at each turn.
            var rank = world?.RankOf(w) ?? -1;
            if (rank < 0) continue;
            membershipChanged = true;
            react?.Invoke(rank);
        }
    }

    private void NodeReachable(Address node, Action? onReady)
    {
        if (!unreachable.Remove(node)) return;
        var back = workers.Values.Where(w => w.Node.Equals(node) && w.Ready).ToArray();
        if (back.Length == 0) return;
        observer.OnMessage($"worker(s) {string.Join(", ", back.Select(w => w.Id))} reachable again (node {node}): they join the next world");
        onReady?.Invoke();
    }
}
