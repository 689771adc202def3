using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Dnm.Cluster.Coordination;
using Dnm.Cluster.Workers;
using Dnm.Core.Training;

namespace Dnm.Cluster.Hosting;

/// <summary>Registry key of the coordinator singleton's proxy.</summary>
public sealed class CoordinatorKey;

/// <summary>Registry key of this node's monitor.</summary>
public sealed class NodeMonitorKey;

/// <summary>Registers Dnm's actors on an Akka.Hosting builder.</summary>
public static class DnmAkkaExtensions
{
    public const string CoordinatorRole = "coordinator";
    public const string WorkerRole = "worker";
    public const string CoordinatorName = "dnm-coordinator";

    private static ClusterSingletonOptions SingletonOptions => new() { Role = CoordinatorRole };

    /// <summary>
    /// The coordinator singleton (hosted by the oldest node with the coordinator role) and its proxy, under
    /// <see cref="CoordinatorKey"/>. For a node with the coordinator role.
    /// </summary>
    public static AkkaConfigurationBuilder AddDnmCoordinator(this AkkaConfigurationBuilder builder, CoordinatorSettings settings,
        Func<ICoordinatorBackend> backendFactory, ITrainingObserver observer, RunCompletion completion, ClusterTelemetry? telemetry = null) =>
        builder.WithSingleton<CoordinatorKey>(CoordinatorName,
            (_, _, _) => CoordinatorActor.Props(settings, backendFactory, observer, completion, telemetry), SingletonOptions, createProxyToo: true);

    /// <summary>Only the proxy to the coordinator singleton, under <see cref="CoordinatorKey"/>: for a node without the coordinator role.</summary>
    public static AkkaConfigurationBuilder AddDnmCoordinatorProxy(this AkkaConfigurationBuilder builder) =>
        builder.WithSingletonProxy<CoordinatorKey>(CoordinatorName, SingletonOptions);

    /// <summary>
    /// This node's workers, named worker-0, worker-1, ...; each talks to the coordinator through the proxy.
    /// A worker's id is host:port/wN of this node's Akka address, so it is unique in the cluster.
    /// </summary>
    public static AkkaConfigurationBuilder AddDnmWorkers(this AkkaConfigurationBuilder builder, IReadOnlyList<string> devices,
        Func<int, string, IWorkerBackend> backendFactory, RunCompletion completion) =>
        builder.WithActors((system, registry) =>
        {
            var proxy = registry.Get<CoordinatorKey>();
            var self = ((ExtendedActorSystem)system).Provider.DefaultAddress;
            for (var i = 0; i < devices.Count; i++)
            {
                var index = i;
                var settings = new WorkerSettings($"{self.Host}:{self.Port}/w{i}", devices[i]);
                system.ActorOf(WorkerActor.Props(settings, proxy, () => backendFactory(index, devices[index]), completion), $"worker-{i}");
            }
        });

    /// <param name="orphanAfter">On a node without the coordinator role: how long it may see no coordinator before it rejoins the seeds.</param>
    public static AkkaConfigurationBuilder AddDnmNodeMonitor(this AkkaConfigurationBuilder builder, RunCompletion completion, TimeSpan? orphanAfter = null) =>
        builder.WithActors((system, registry) => registry.Register<NodeMonitorKey>(system.ActorOf(NodeMonitor.Props(completion, orphanAfter), NodeMonitor.Name)));
}
