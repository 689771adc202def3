using System.Net;
using System.Net.Sockets;
using Dnm.Core.Config;
using Dnm.Core.Telemetry;
using Dnm.Core.Training;
using Dnm.Node.Telemetry;
using Dnm.Tests.Shared;

namespace Dnm.Node.Tests.Observability;

/// <summary>The HTTP side of <see cref="NodeTelemetry"/>: what a scraper and a kubelet see.</summary>
public sealed class MetricsEndpointSpec : IDisposable
{
    private readonly HttpClient http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly List<string> said = [];
    private readonly List<string> warned = [];
    private readonly ProgressTracker tracker = new(new DnmConfig(), TimeProvider.System);

    public void Dispose() => http.Dispose();

    private NodeTelemetry Start(int port) => NodeTelemetry.Start(new TelemetryOptions(port, "127.0.0.1", null),
        new TelemetryIdentity(TelemetryIdentity.SingleProcessRole, 0, "cpu"), 1, tracker, "run-1", _ => null, said.Add, warned.Add);

    private Task<HttpResponseMessage> Get(int port, string path) => http.GetAsync($"http://127.0.0.1:{port}{path}");

    [Fact]
    public async Task Metrics_should_be_served_under_their_own_names_and_prometheus_types()
    {
        var port = TestPorts.Next();
        using var telemetry = Start(port);
        telemetry.Observer.OnStep(new StepReport(TrainingPhase.Joint, 0, 1, 1, 1, 1, 16, default, 1, 0.1, TimeSpan.FromMilliseconds(5), new StepTimings()));

        var text = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");

        foreach (var expected in new[]
                 {
                     "# TYPE dnm_train_steps_total counter", "# TYPE dnm_train_samples_total counter", "# TYPE dnm_allreduce_bytes_total counter",
                     "# TYPE dnm_train_step_duration_seconds histogram", "# TYPE dnm_train_phase_duration_seconds histogram",
                     "# TYPE dnm_train_loss gauge", "# TYPE dnm_cluster_workers gauge",
                     "dnm_train_steps_total{role=\"trainer\",rank=\"0\",device=\"cpu\"} 1",
                     "dnm_train_phase_duration_seconds_count{role=\"trainer\",rank=\"0\",device=\"cpu\",phase=\"gradient_reduce\"} 1",
                     "dnm_cluster_workers{role=\"trainer\",rank=\"0\",device=\"cpu\"} 1",
                     "process_working_set_bytes ", "process_cpu_seconds_total ", "system_runtime_dotnet_gc_collections",
                 })
            Assert.Contains(expected, text);
        Assert.DoesNotContain("dnm_dnm_", text);
        Assert.Contains(said, l => l.Contains($"http://127.0.0.1:{port}/metrics", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Healthz_should_answer_at_once_and_readyz_only_once_training_has_started()
    {
        var port = TestPorts.Next();
        using var telemetry = Start(port);

        Assert.Equal(HttpStatusCode.OK, (await Get(port, "/healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(port, "/readyz")).StatusCode);
        telemetry.Observer.OnPhaseStarted(TrainingPhase.Pretrain, 1, 4);
        Assert.Equal(HttpStatusCode.OK, (await Get(port, "/readyz")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Get(port, "/other")).StatusCode);
    }

    [Fact]
    public async Task A_worker_node_should_be_ready_once_a_local_worker_joined_and_report_only_under_its_rank()
    {
        var port = TestPorts.Next();
        NodeTelemetry? self = null;
        // As `dnm node --role worker` starts it: no run metrics of its own, ready once a worker holds the state.
        using var telemetry = NodeTelemetry.Start(new TelemetryOptions(port, "127.0.0.1", null), new TelemetryIdentity("worker", 0, "cpu"), 1,
            tracker, "run-1", _ => null, said.Add, warned.Add, ready: () => self?.WorkerJoined == true, runMetrics: false);
        self = telemetry;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(port, "/readyz")).StatusCode);

        var cluster = telemetry.Cluster(coordinator: false);
        Assert.Null(cluster.Coordinator);
        cluster.Worker(1, "cpu")!.RecordSamples(3);
        cluster.WorkerJoined();

        Assert.Equal(HttpStatusCode.OK, (await Get(port, "/readyz")).StatusCode);
        var text = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        Assert.Contains("dnm_train_samples_total{role=\"worker\",rank=\"1\",device=\"cpu\"} 3", text);
        Assert.Contains("dnm_cluster_membership_changes_total{role=\"worker\",rank=\"1\",device=\"cpu\"} 0", text);
        Assert.DoesNotContain("rank=\"0\"", text);
    }

    [Fact]
    public async Task A_worker_node_that_leaves_to_rejoin_should_not_be_ready_until_a_worker_of_its_fresh_actor_system_joined()
    {
        var port = TestPorts.Next();
        NodeTelemetry? self = null;
        using var telemetry = NodeTelemetry.Start(new TelemetryOptions(port, "127.0.0.1", null), new TelemetryIdentity("worker", 0, "cpu"), 1,
            tracker, "run-1", _ => null, said.Add, warned.Add, ready: () => self?.WorkerJoined == true, runMetrics: false);
        self = telemetry;
        var first = telemetry.Cluster(coordinator: false);
        first.WorkerJoined();
        Assert.Equal(HttpStatusCode.OK, (await Get(port, "/readyz")).StatusCode);

        // NodeHost's `left`: the first actor system is gone; its worker's world says nothing of the node now.
        telemetry.NodeLeft();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(port, "/readyz")).StatusCode);
        telemetry.Cluster(coordinator: false).WorkerJoined();
        Assert.Equal(HttpStatusCode.OK, (await Get(port, "/readyz")).StatusCode);
    }

    [Fact]
    public async Task An_embedded_cluster_should_serve_the_coordinator_and_every_worker_under_its_own_labels()
    {
        var port = TestPorts.Next();
        // As `dnm train --workers 2` starts it: the process is the coordinator and hosts both workers.
        using var telemetry = NodeTelemetry.Start(new TelemetryOptions(port, "127.0.0.1", null), new TelemetryIdentity("coordinator", 0, "cpu"), 2,
            tracker, "run-1", _ => null, said.Add, warned.Add);
        var cluster = telemetry.Cluster(coordinator: true);
        Assert.Same(telemetry.Metrics, cluster.Coordinator);
        cluster.Coordinator!.RecordMembershipChange();
        for (var rank = 0; rank < 2; rank++)
        {
            var worker = cluster.Worker(rank, "cpu")!;
            worker.RecordSamples(8);
            worker.RecordStep(TimeSpan.FromMilliseconds(3), new StepTimings());
        }
        // The coordinator counts no step samples (its workers do); it counts SOM pre-training's.
        telemetry.Observer.OnStep(new StepReport(TrainingPhase.Joint, 0, 1, 1, 1, 1, 16, default, 1, 0.1, TimeSpan.FromMilliseconds(5)));
        telemetry.Observer.OnStep(new StepReport(TrainingPhase.SomPretrain, 0, 1, 1, 1, 1, 32, default, 1, 0.1, TimeSpan.FromMilliseconds(5)));

        var text = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        foreach (var expected in new[]
                 {
                     "dnm_train_samples_total{role=\"worker\",rank=\"0\",device=\"cpu\"} 8",
                     "dnm_train_samples_total{role=\"worker\",rank=\"1\",device=\"cpu\"} 8",
                     "dnm_train_samples_total{role=\"coordinator\",rank=\"0\",device=\"cpu\"} 32",
                     "dnm_train_steps_total{role=\"coordinator\",rank=\"0\",device=\"cpu\"} 1",
                     "dnm_train_steps_total{role=\"worker\",rank=\"1\",device=\"cpu\"} 1",
                     "dnm_train_phase_duration_seconds_count{role=\"worker\",rank=\"0\",device=\"cpu\",phase=\"gradient_reduce\"} 1",
                     "dnm_cluster_membership_changes_total{role=\"coordinator\",rank=\"0\",device=\"cpu\"} 1",
                 })
            Assert.Contains(expected, text);
        // The coordinator's world size is set when a world forms, not guessed at start-up.
        Assert.DoesNotContain("dnm_cluster_workers{role=\"coordinator\"", text);
    }

    [Fact]
    public void A_taken_port_should_leave_the_run_going_without_metrics_and_say_so()
    {
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;

        using var telemetry = Start(port);

        Assert.Null(telemetry.Endpoint);
        var warning = Assert.Single(warned);
        Assert.StartsWith($"warning: not serving metrics on port {port}", warning);
        Assert.NotNull(telemetry.Metrics);
    }

    [Fact]
    public async Task The_end_of_a_run_should_wait_for_one_more_scrape_only_when_something_scrapes()
    {
        var port = TestPorts.Next();
        using var telemetry = Start(port);
        var endpoint = telemetry.Endpoint!;

        // Nobody has scraped: nothing to wait for.
        Assert.False(endpoint.AwaitNextScrape(TimeSpan.FromSeconds(30), CancellationToken.None));

        await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        // The client can hold the whole response before the server's middleware has counted the scrape as
        // completed; a wait started in between would see no scrape yet and return at once (CI failed so).
        await Until(() => endpoint.Scrapes == 1, TimeSpan.FromSeconds(10));
        var waiting = Task.Run(() => endpoint.AwaitNextScrape(TimeSpan.FromSeconds(30), CancellationToken.None));
        await Task.Delay(200);
        Assert.False(waiting.IsCompleted);
        await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        Assert.True(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(2, endpoint.Scrapes);
    }

    private static async Task Until(Func<bool> condition, TimeSpan limit)
    {
        using var patience = new CancellationTokenSource(limit);
        while (!condition()) await Task.Delay(10, patience.Token);
    }

    [Fact]
    public void Port_zero_should_serve_nothing_yet_still_measure()
    {
        using var telemetry = Start(0);
        Assert.Null(telemetry.Endpoint);
        Assert.Empty(warned);
        Assert.NotNull(telemetry.Tracer);
    }
}
