using Akka.Actor;
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
        Receive<RunFinished>(f => completion.Succeed(new ClusterRunResult(f.GlobalStep, 0, f.RunDirectory, null, TimeSpan.Zero, 0, TimeSpan.Zero, TimeSpan.Zero)));
        Receive<RunFailed>(f => completion.Fail(new ClusterRunException(f.Reason)));
    }
}
