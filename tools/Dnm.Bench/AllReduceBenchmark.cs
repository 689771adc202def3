using System.Diagnostics;
using System.Globalization;
using System.Net;
using Dnm.Cluster.Transport;

namespace Dnm.Bench;

/// <summary>
/// `Dnm.Bench allreduce`: the star all-reduce alone, as `dnm train --workers N` runs it (coordinator and N workers
/// in one process, over loopback), for each N over TCP and through the shared-memory path. One round is what a
/// joint step communicates: the soft counts, then the statistics, each summed by the <see cref="StarReducer"/> and
/// sent back. No training, no actors: this isolates the transport from the step's compute and scheduling.
/// </summary>
internal static class AllReduceBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        string? Option(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        var workers = (Option("--workers") ?? "1,2,4").Split(',').Select(w => int.Parse(w, CultureInfo.InvariantCulture)).ToArray();
        var floats = int.Parse(Option("--floats") ?? "855000", CultureInfo.InvariantCulture);
        var softCounts = int.Parse(Option("--soft-counts") ?? "600", CultureInfo.InvariantCulture);
        var duration = TimeSpan.FromSeconds(double.Parse(Option("--seconds") ?? "3", CultureInfo.InvariantCulture));
        Console.WriteLine($"star all-reduce in one process over loopback: {softCounts} soft counts then {floats} floats ({floats * 4e-6:F2} MB) a round, " +
                          $"{duration.TotalSeconds:F0} s per case; {Environment.ProcessorCount} cores, load average {LoadAverage()}");
        // --tls: each path again inside mutual TLS, with a fresh CA and node certificate as `dnm cert create` makes them.
        var tlsFolder = args.Contains("--tls") ? Directory.CreateTempSubdirectory("dnm-bench-tls-").FullName : null;
        if (tlsFolder is not null) Dnm.Cluster.Hosting.ClusterCertificates.Create(tlsFolder, [], 1, DateTimeOffset.UtcNow);
        using var tls = tlsFolder is null ? null : ClusterTls.FromPemFiles(Path.Combine(tlsFolder, "tls.crt"), Path.Combine(tlsFolder, "tls.key"), Path.Combine(tlsFolder, "ca.crt"));
        if (tlsFolder is not null) Directory.Delete(tlsFolder, recursive: true);
        (string, DataPlaneOptions)[] paths = [("TCP", DataPlaneOptions.Default with { SharedMemoryBytes = 0 }), ("shared memory", DataPlaneOptions.Default)];
        if (tls is not null)
            paths = [.. paths, ("TCP + TLS", DataPlaneOptions.Default with { SharedMemoryBytes = 0, Tls = tls }), ("shared memory + TLS", DataPlaneOptions.Default with { Tls = tls })];
        foreach (var n in workers)
        {
            var line = $"N = {n}:";
            foreach (var (path, options) in paths)
            {
                var (mean, p50, rounds) = await MeasureAsync(n, floats, softCounts, options, duration);
                line += FormattableString.Invariant($"  {path}: mean {mean,6:F2} ms, p50 {p50,6:F2} ms ({rounds} rounds);");
            }
            Console.WriteLine(line);
        }
        return 0;
    }

    private static async Task<(double MeanMs, double P50Ms, int Rounds)> MeasureAsync(
        int n, int floats, int softCounts, DataPlaneOptions options, TimeSpan duration)
    {
        var runId = Guid.NewGuid();
        StarReducer reducer;
        var clients = new StarReduceClient[n];
        using (var listener = DataPlaneListener.Start(new IPEndPoint(IPAddress.Loopback, 0), runId, StarReducer.CoordinatorRank, options))
        {
            var accept = StarReducer.AcceptWorkersAsync(listener, n);
            for (var rank = 0; rank < n; rank++)
                clients[rank] = await StarReduceClient.ConnectAsync(listener.LocalEndPoint, runId, rank, options);
            reducer = await accept;
        }
        using var _ = reducer;
        try
        {
            var random = new Random(1);
            var data = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, floats).Select(_ => (float)random.NextDouble()).ToArray()).ToArray();
            var sum = new float[floats];
            var tasks = new Task[n + 1];
            async Task RoundAsync(long step)
            {
                foreach (var (kind, length) in new[] { (FrameKind.SoftCounts, softCounts), (FrameKind.Gradients, floats) })
                {
                    tasks[0] = reducer.AllReduceAsync(step, kind, sum.AsMemory(0, length)).AsTask();
                    for (var rank = 0; rank < n; rank++)
                    {
                        var client = clients[rank];
                        var memory = data[rank].AsMemory(0, length);
                        // Each worker on its own thread-pool thread, as the workers' torch threads would be.
                        tasks[rank + 1] = Task.Run(async () => await client.AllReduceAsync(step, kind, memory));
                    }
                    await Task.WhenAll(tasks);
                }
            }

            for (var step = 0; step < 10; step++) // warm-up: JIT, first touches of the buffers and segments
                await RoundAsync(step);
            var samples = new List<double>();
            var clock = Stopwatch.StartNew();
            for (var step = 10L; clock.Elapsed < duration; step++)
            {
                var start = Stopwatch.GetTimestamp();
                await RoundAsync(step);
                samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
            samples.Sort();
            return (samples.Average(), samples[samples.Count / 2], samples.Count);
        }
        finally
        {
            foreach (var client in clients)
                client.Dispose();
        }
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
