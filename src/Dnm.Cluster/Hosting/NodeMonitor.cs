using Akka.Actor;
using Akka.Event;
using Dnm.Cluster.Protocol;

namespace Dnm.Cluster;

/// <summary>
/// One per node at /user/dnm-node: the coordinator announces the end of the run here, so a node whose own
/// actors took no part in the ending (a standby coordinator, a worker dropped at the last step) still stops.
/// </summary>
public sealed class NodeMonitor : ReceiveActor
{
    public const string Name = "dnm-node";

    public static Props Props(RunCompletion completion) => Akka.Actor.Props.Create(() => new NodeMonitor(completion));

    public NodeMonitor(RunCompletion completion)
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
    }
}
