using Dnm.Tests.Shared;
namespace Dnm.Node.Tests.Observability;

/// <summary>
/// A short real training run, as a cluster of child `dnm node` processes each serving /metrics, scraped every 250 ms by a real
/// Prometheus (when installed) and exporting OTLP to an <see cref="OtlpReceiver"/>. It runs once, on first
/// use, for the specs that share it; Prometheus stays up until the fixture is disposed so they can query it.
/// </summary>
public sealed class ObservedRunFixture : IDisposable
{
    private readonly Lazy<Task<ObservedRun>> run;
    private readonly ScratchDirectory directory = new();
    private PrometheusServer? prometheus;

    public ObservedRunFixture() => run = new Lazy<Task<ObservedRun>>(() => Task.Run(RunAsync));

    public Task<ObservedRun> Run => run.Value;

    /// <summary>
    /// The processes of the run: a real cluster of three `dnm node` processes over loopback — a coordinator (which
    /// founds the cluster on <paramref name="clusterPort"/> and waits for two workers) and two worker processes
    /// that join it through that seed — each serving /metrics on its own port. Sized to train for a few seconds
    /// on one CPU thread per process: 512 samples, batch 16, 2 pre-training and 6 joint epochs (256 steps).
    /// </summary>
    public static IReadOnlyList<string[]> RunCommands(string dataset, string outDir, IReadOnlyList<int> metricsPorts, int clusterPort)
    {
        string Text(int n) => n.ToString(System.Globalization.CultureInfo.InvariantCulture);
        string[] node = ["node", "--host", "127.0.0.1", "--bind-host", "127.0.0.1", "--device", "cpu", "--threads", "1", "--metrics-host", "127.0.0.1"];
        string[] coordinator =
        [
            .. node, "--role", "coordinator", "--port", Text(clusterPort), "--min-workers", "2", "--metrics-port", Text(metricsPorts[0]),
            "--dataset", dataset, "--out", outDir, "--map", "4x4", "--epochs", "6", "--pretrain-epochs", "2",
            // Micro-batches of 8: each of the two workers computes one of a batch's two (the dashboard shows both at work).
            "--som-iterations", "200", "--batch-size", "16", "--micro-batch", "8", "--encoder", "conv", "--channels", "4,4,2", "--latent", "8",
            "--eval-every", "1", "--eval-limit", "128", "--smooth-weight", "0", "--lattice", "rect", "--sigma-floor", "0.3",
        ];
        string[] Worker(int i) => [.. node, "--role", "worker", "--port", "0", "--seeds", $"127.0.0.1:{clusterPort}", "--metrics-port", Text(metricsPorts[i])];
        return [coordinator, Worker(1), Worker(2)];
    }

    /// <summary>Processes of the run: the coordinator first, then the worker processes.</summary>
    public const int Processes = 3;

    /// <summary>Worker processes (one worker each, so ranks 0 and 1).</summary>
    public const int Workers = Processes - 1;

    private async Task<ObservedRun> RunAsync()
    {
        var started = DateTimeOffset.UtcNow;
        var dataset = SyntheticIdx.Spec(directory.Path, count: 512);
        var ports = Enumerable.Range(0, Processes).Select(_ => TestPorts.Next()).ToArray();
        if (PrometheusServer.FindBinary() is { } binary)
        {
            prometheus = await PrometheusServer.StartAsync(binary, directory.Path, ports.Select(p => $"127.0.0.1:{p}"));
            await prometheus.WaitScrapingAsync(ports.Length);
        }
        using var otlp = new OtlpReceiver();
        var outDir = directory.File("run");
        var results = await Task.WhenAll(RunCommands(dataset, outDir, ports, TestPorts.Next()).Select(args => RunDnmAsync(args, otlp.Endpoint)));
        return new ObservedRun(results, outDir, prometheus, started, otlp.Posts.ToArray());
    }

    private static Task<DnmProcessResult> RunDnmAsync(string[] args, string otlpEndpoint) =>
        DnmProcess.RunAsync(args, TimeSpan.FromMinutes(3), env =>
        {
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlpEndpoint;
            env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf";
            // Only the flags configure the nodes.
            foreach (var variable in Dnm.Cluster.Hosting.NodeEnvironment.Variables.Where(v => v.StartsWith("DNM_", StringComparison.Ordinal)))
                env.Remove(variable);
        });

    public void Dispose()
    {
        prometheus?.Dispose();
        directory.Dispose();
    }
}

/// <param name="Prometheus">Null where prometheus is not installed.</param>
/// <param name="OtlpPosts">Every OTLP post the processes made (path and protobuf body).</param>
public sealed record ObservedRun(DnmProcessResult[] Processes, string OutDirectory, PrometheusServer? Prometheus, DateTimeOffset Started,
    (string Path, byte[] Body)[] OtlpPosts)
{
    public void AssertSucceeded()
    {
        foreach (var p in Processes)
            Assert.True(p.ExitCode == 0, $"dnm {string.Join(' ', p.Args)} exited with {p.ExitCode}:\n{p.Error}\n{p.Out}");
    }

    /// <summary>
    /// The last moment every process was still being scraped successfully. A target that has gone
    /// away gets staleness markers, so instant queries must be evaluated at or before this time.
    /// </summary>
    public async Task<double> LastScrapedAsync(PrometheusServer server)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        var data = await server.QueryRangeAsync("up{job=\"dnm\"}", Started.ToUnixTimeSeconds() - 5, now);
        var series = data.GetProperty("result").EnumerateArray().ToArray();
        Assert.True(series.Length == Processes.Length, $"prometheus knows {series.Length} dnm targets, expected {Processes.Length}");
        return series.Min(s => s.GetProperty("values").EnumerateArray()
            .Where(v => v[1].GetString() == "1")
            .Select(v => v[0].GetDouble())
            .DefaultIfEmpty(double.NaN)
            .Max());
    }
}

/// <summary>The specs that read the one observed run.</summary>
[CollectionDefinition(Name)]
public sealed class ObservedRunCollection : ICollectionFixture<ObservedRunFixture>
{
    public const string Name = "observed run";
}

/// <summary>
/// A fact that needs the `prometheus` binary. Without it the fact is skipped on a developer's machine,
/// but runs (and fails, saying what to install) where CI=true, so CI can never pass by skipping it.
/// </summary>
public sealed class NeedsPrometheusFactAttribute : FactAttribute
{
    public NeedsPrometheusFactAttribute()
    {
        if (PrometheusServer.FindBinary() is null && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            Skip = "prometheus is not installed (apt-get install prometheus); with CI=true this fails instead";
    }
}
