using System.Diagnostics;
using Dnm.Cluster.Hosting;
using Dnm.Core.Telemetry;
using Dnm.Core.Training;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Prometheus;

namespace Dnm.Node.Telemetry;

/// <summary>
/// A process's telemetry for one run, started before the run and disposed after it: the "Dnm" meter and
/// activity source, their Prometheus endpoint, and OTLP export where OTEL_EXPORTER_OTLP_ENDPOINT is set.
/// Everything is per instance (a private registry, meter and source), so runs in one process (tests)
/// never see each other's numbers.
/// </summary>
public sealed class NodeTelemetry : IDisposable
{
    private IDisposable? runtimeAdapter;
    private PrometheusMeterBridge? bridge;
    private TracerProvider? tracerProvider;
    private MeterProvider? meterProvider;
    private ActivitySource? source;
    private CudaMemoryProbe? probe;
    private readonly object scope = new();
    private readonly List<DnmMetrics> workerMetrics = [];
    private volatile bool workerJoined;

    private NodeTelemetry(TelemetryIdentity identity)
    {
        Identity = identity;
    }

    public TelemetryIdentity Identity { get; }
    public DnmMetrics Metrics { get; private set; } = null!;
    public MetricsObserver Observer { get; private set; } = null!;
    public StepTracer Tracer { get; private set; } = null!;
    /// <summary>Null when metrics are off or the port could not be bound.</summary>
    public MetricsEndpoint? Endpoint { get; private set; }

    /// <param name="progress">The run's tracker, which the console reads too: its throughput and ETA become gauges.</param>
    /// <param name="runId">Names the run in every span.</param>
    /// <param name="say">Where to print what is served where.</param>
    /// <param name="warn">Where to print that the endpoint could not start: the run goes on without it.</param>
    /// <param name="ready">What /readyz reports; by default, whether training has started (<see cref="MetricsObserver.Started"/>).</param>
    /// <param name="runMetrics">False on a worker-only `dnm node`: the process's own identity then publishes no run
    /// metrics (no zero counters under a rank it does not hold); its workers record under their ranks (<see cref="Cluster"/>).</param>
    public static NodeTelemetry Start(TelemetryOptions options, TelemetryIdentity identity, int worldSize, ProgressTracker progress,
        string runId, Func<string, string?> environment, Action<string> say, Action<string> warn, Func<bool>? ready = null, bool runMetrics = true)
    {
        var t = new NodeTelemetry(identity);
        try
        {
            t.Initialize(options, worldSize, progress, runId, environment, say, warn, ready, runMetrics);
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    private void Initialize(TelemetryOptions options, int worldSize, ProgressTracker progress, string runId,
        Func<string, string?> environment, Action<string> say, Action<string> warn, Func<bool>? ready, bool runMetrics)
    {
        // Exporters listen first: DnmMetrics records its counters' zeros as it is built, and a listener
        // started later would miss them. The scope tells this run's meters from any other "Dnm" meter.
        CollectorRegistry? registry = null;
        if (options.MetricsPort > 0)
        {
            registry = Prometheus.Metrics.NewCustomRegistry();
            // process_cpu_seconds_total, process_working_set_bytes, dotnet_total_memory_bytes, ...
            DotNetStats.Register(registry);
            // The runtime's own meter (GC, JIT, thread pool), as system_runtime_dotnet_* gauges.
            runtimeAdapter = MeterAdapter.StartListening(new MeterAdapterOptions
            {
                Registry = registry,
                MetricFactory = Prometheus.Metrics.WithCustomRegistry(registry),
                InstrumentFilterPredicate = i => i.Meter.Name == "System.Runtime",
            });
            bridge = new PrometheusMeterBridge(registry, meter => meter.Scope == scope);
        }
        if (options.OtlpEndpoint is not null) StartOtlp(worldSize);

        source = new ActivitySource(StepTracer.SourceName);
        Tracer = new StepTracer(source, runId, Identity.Rank, worldSize);
        probe = DeviceProbe(environment);
        Metrics = new DnmMetrics(Identity, probe is null ? null : probe.Read, scope, publishZeros: runMetrics);
        // A cluster's coordinator counts no step samples: its workers do, as they process them.
        Observer = new MetricsObserver(Metrics, progress, countStepSamples: Identity.Role != ClusterTelemetry.CoordinatorRole);
        // A single process is its one worker; a cluster's coordinator sets the gauge as each world forms.
        if (runMetrics && Identity.Role != ClusterTelemetry.CoordinatorRole) Metrics.SetWorkers(worldSize);

        if (registry is not null)
        {
            try
            {
                Endpoint = MetricsEndpoint.Start(options.BindAddresses(), options.MetricsPort, registry, ready ?? (() => Observer.Started));
                say($"metrics: {string.Join(", ", Endpoint.Urls)}/metrics (also /healthz, /readyz)");
            }
            catch (IOException e)
            {
                // Training matters more than its dashboard: a second run on the same host must not fail for a port.
                warn($"warning: not serving metrics on port {options.MetricsPort} ({e.Message}); choose another with --metrics-port, or --no-metrics");
            }
        }
        if (options.OtlpEndpoint is not null) say($"telemetry: exporting traces and metrics over OTLP to {options.OtlpEndpoint}");
    }

    private void StartOtlp(int worldSize)
    {
        // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the environment detector, added last) override these.
        var resource = ResourceBuilder.CreateEmpty()
            .AddService("dnm", serviceInstanceId: $"{Identity.Role}-{Identity.Rank}-{Environment.MachineName}-{Environment.ProcessId}")
            .AddAttributes([new("dnm.role", Identity.Role), new("dnm.rank", Identity.Rank), new("dnm.world_size", worldSize)])
            .AddTelemetrySdk()
            .AddEnvironmentVariableDetector();
        // The exporters read OTEL_EXPORTER_OTLP_* themselves (endpoint, protocol, headers), as every OpenTelemetry SDK does.
        tracerProvider = Sdk.CreateTracerProviderBuilder().SetResourceBuilder(resource).AddSource(StepTracer.SourceName).AddOtlpExporter().Build();
        meterProvider = Sdk.CreateMeterProviderBuilder().SetResourceBuilder(resource).AddMeter(DnmMetrics.MeterName, "System.Runtime").AddOtlpExporter().Build();
    }

    private CudaMemoryProbe? DeviceProbe(Func<string, string?> environment)
    {
        if (!Identity.Device.StartsWith("cuda", StringComparison.Ordinal)) return null;
        var index = Identity.Device.Split(':') is [_, var n] && int.TryParse(n, out var i) ? i : 0;
        return CudaMemoryProbe.TryOpen(index, environment("CUDA_VISIBLE_DEVICES"));
    }

    /// <summary>True once a local cluster worker has joined a world and holds the run's state (a worker's /readyz).</summary>
    public bool WorkerJoined => workerJoined;

    /// <summary>The node left its cluster to rejoin it with a fresh actor system: its workers hold no world until one joins again.</summary>
    public void NodeLeft() => workerJoined = false;

    /// <summary>
    /// This process's telemetry as the cluster code records it: <paramref name="coordinator"/> gives the coordinator
    /// <see cref="Metrics"/> (the identity must then have the coordinator role); each local worker gets metrics of
    /// its own, labelled with its rank, exported with this process's.
    /// </summary>
    public ClusterTelemetry Cluster(bool coordinator) =>
        new(coordinator ? Metrics : null, CreateWorkerMetrics, source, () => workerJoined = true);

    private DnmMetrics CreateWorkerMetrics(TelemetryIdentity identity)
    {
        var metrics = new DnmMetrics(identity, null, scope);
        lock (workerMetrics) workerMetrics.Add(metrics);
        return metrics;
    }

    /// <summary>
    /// At the end of a run: lets a scraper that has been watching collect the final numbers (see
    /// <see cref="MetricsEndpoint.AwaitNextScrape"/>). Waits at most a minute; Ctrl+C or SIGTERM end the wait.
    /// </summary>
    public void AwaitFinalScrape(Action<string> say, CancellationToken cancel)
    {
        if (Endpoint is not { Scrapes: > 0 } endpoint) return;
        say("metrics: waiting for a last scrape, so the final numbers reach Prometheus");
        endpoint.AwaitNextScrape(TimeSpan.FromMinutes(1), cancel);
    }

    public void Dispose()
    {
        // In this order: no scrape may start once the meter or probe is going; the providers flush their
        // last spans and metrics while the meter still exists; the probe outlives the meter that reads it.
        Endpoint?.Dispose();
        tracerProvider?.Dispose();
        meterProvider?.Dispose();
        Metrics?.Dispose();
        lock (workerMetrics) foreach (var m in workerMetrics) m.Dispose();
        probe?.Dispose();
        bridge?.Dispose();
        runtimeAdapter?.Dispose();
        source?.Dispose();
    }
}
