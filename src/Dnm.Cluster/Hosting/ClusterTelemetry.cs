using System.Collections.Concurrent;
using System.Diagnostics;
using Dnm.Core.Telemetry;

namespace Dnm.Cluster.Hosting;

/// <summary>
/// Where a cluster node records its metrics and spans: the same "Dnm" instruments (<see cref="DnmMetrics"/>) and
/// activity source (<see cref="StepTracer.SourceName"/>) as the single-process trainer, labelled by role
/// (coordinator, worker), rank and device. The hosting process (Dnm.Node) owns the exporters and the meters;
/// the cluster code only asks for them. <see cref="None"/> records nothing (tests, library use).
/// </summary>
/// <param name="coordinator">The coordinator's metrics (role coordinator), or null on a node without that role.</param>
/// <param name="createWorkerMetrics">Builds a worker's metrics for an identity (its rank is known once a world
/// forms; a worker that gets another rank in a later world records under that one). Null: workers record nothing.</param>
/// <param name="source">The "Dnm" activity source; null where nothing traces.</param>
/// <param name="workerJoined">Called when a local worker has joined a world and holds the run's state (/readyz).</param>
public sealed class ClusterTelemetry(DnmMetrics? coordinator, Func<TelemetryIdentity, DnmMetrics>? createWorkerMetrics,
    ActivitySource? source, Action? workerJoined = null)
{
    public const string CoordinatorRole = "coordinator";
    public const string WorkerRole = "worker";

    private readonly ConcurrentDictionary<TelemetryIdentity, DnmMetrics> workers = new();

    public static ClusterTelemetry None { get; } = new(null, null, null);

    public DnmMetrics? Coordinator { get; } = coordinator;

    public ActivitySource? Source { get; } = source;

    /// <summary>The metrics of the local worker that holds <paramref name="rank"/> on <paramref name="device"/>; null when not recorded.</summary>
    public DnmMetrics? Worker(int rank, string device) =>
        createWorkerMetrics is null ? null : workers.GetOrAdd(new TelemetryIdentity(WorkerRole, rank, device), createWorkerMetrics);

    /// <summary>Step and phase spans for one world (run id, rank and world size are their tags).</summary>
    public StepTracer Tracer(string role, Guid runId, int rank, int worldSize) =>
        new(Source, runId.ToString("N"), rank, worldSize, role);

    public void WorkerJoined() => workerJoined?.Invoke();
}
