using Dnm.Core.Config;
using Dnm.Core.Training;

namespace Dnm.Cluster.Hosting;

/// <summary>`dnm train --workers N`: the coordinator and N workers in one process, over loopback, through the same actors and transport as a cluster.</summary>
public static class ClusterTraining
{
    /// <param name="options">Overrides (timeouts, checksum period); roles, addresses and worker count are set here.</param>
    /// <param name="resume">Continue from the newest checkpoint in the run directory (`dnm train --resume`).</param>
    /// <param name="telemetry">Where the coordinator and the workers record metrics and spans; none by default.</param>
    public static Task<ClusterRunResult> RunEmbeddedAsync(DnmConfig config, int workers, ITrainingObserver observer, CancellationToken cancel,
        NodeOptions? options = null, bool resume = false, ClusterTelemetry? telemetry = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        var embedded = (options ?? new NodeOptions()) with
        {
            Roles = NodeRoles.Both,
            Seeds = [],
            Host = "127.0.0.1",
            BindHost = "127.0.0.1",
            Port = 0,
            DataPlanePort = 0,
            LocalWorkers = workers,
            MinWorkers = workers,
            ResumeFromCheckpoint = resume,
        };
        return NodeHost.RunAsync(embedded, config, observer, cancel, telemetry: telemetry);
    }
}
