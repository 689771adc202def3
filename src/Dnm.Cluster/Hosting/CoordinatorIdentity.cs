using Akka.Actor;

namespace Dnm.Cluster.Hosting;

/// <summary>
/// Who may speak for the coordinator to an actor that never registered with it (a node's monitor): the singleton itself,
/// an actor at its path (<c>/user/dnm-coordinator/dnm-coordinator</c>) in this actor system or on a cluster member with
/// the coordinator role. A worker checks more: the nonce its coordinator echoed (<see cref="Protocol.RegistrationAccepted"/>).
/// Without TLS a process that joins the cluster as a coordinator can still pass; this keeps out every other sender. With TLS
/// (docs/cluster.md, Security) only a node holding a certificate of the cluster's CA can become a member at all.
/// </summary>
public static class CoordinatorIdentity
{
    private static readonly string[] SingletonPath = ["user", DnmAkkaExtensions.CoordinatorName, DnmAkkaExtensions.CoordinatorName];

    public static bool IsCoordinator(ActorSystem system, IActorRef sender)
    {
        var path = sender.Path;
        if (!path.Elements.SequenceEqual(SingletonPath)) return false;
        var address = path.Address;
        if (address.HasLocalScope || address.Equals(((ExtendedActorSystem)system).Provider.DefaultAddress)) return true;
        if (((ExtendedActorSystem)system).Provider is not Akka.Cluster.ClusterActorRefProvider) return false;
        return Akka.Cluster.Cluster.Get(system).State.Members.Any(m => m.Address.Equals(address) && m.HasRole(DnmAkkaExtensions.CoordinatorRole));
    }
}
