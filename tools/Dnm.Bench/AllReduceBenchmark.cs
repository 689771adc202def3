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
/// <c>--reduction workers</c> measures the statistics' reduction among the workers instead, as a worker runs it
/// (<c>WorkerReplica</c>): its finite flag to the coordinator, recursive halving with its partners, its slice of the root to the
/// coordinator (which assembles the root) and recursive doubling for the rest; the soft counts still go through the star.
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
        var amongWorkers = (Option("--reduction") ?? "star") switch
        {
            "star" => false,
            "workers" => true,
            var other => throw new ArgumentException($"--reduction '{other}': star or workers"),
        };
        if (amongWorkers && workers.Any(n => !RecursiveHalvingReducer.IsPowerOfTwoWorld(n)))
            throw new ArgumentException("--reduction workers needs power-of-two worker counts of at least 2");
        Console.WriteLine($"{(amongWorkers ? "statistics summed among the workers (soft counts through the star)" : "star all-reduce")} in one process over loopback: {softCounts} soft counts then {floats} floats ({floats * 4e-6:F2} MB) a round, " +
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
                var (mean, p50, rounds) = amongWorkers
                    ? await MeasureAmongWorkersAsync(n, floats, softCounts, options, duration)
                    : await MeasureAsync(n, floats, softCounts, options, duration);
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
        var (reducer, clients) = await ConnectStarAsync(runId, n, options);
        using var _ = reducer;
        try
        {
            var data = RandomVectors(n, floats);
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

            return await TimeRoundsAsync(RoundAsync, duration);
        }
        finally
        {
            foreach (var client in clients)
                client.Dispose();
        }
    }

    /// <summary>
    /// One round as a joint step communicates with <c>--reduction workers</c>: the soft counts through the star, then every
    /// worker's flag to the coordinator, the reduce-scatter among the workers, each slice to the coordinator and the all-gather.
    /// </summary>
    private static async Task<(double MeanMs, double P50Ms, int Rounds)> MeasureAmongWorkersAsync(
        int n, int floats, int softCounts, DataPlaneOptions options, TimeSpan duration)
    {
        var runId = Guid.NewGuid();
        // The partners' segments hold the largest frame between workers: half the statistics.
        var partnerOptions = options.WithSharedMemoryFor((floats + 1L) / 2 * sizeof(float));
        var listeners = Enumerable.Range(0, n).Select(r => DataPlaneListener.Start(new IPEndPoint(IPAddress.Loopback, 0), runId, r, partnerOptions)).ToArray();
        RecursiveHalvingReducer[] partners;
        try
        {
            var endpoints = listeners.Select(l => (EndPoint)l.LocalEndPoint).ToArray();
            partners = await Task.WhenAll(listeners.Select(l => RecursiveHalvingReducer.ConnectAsync(l, runId, l.LocalRank, endpoints, partnerOptions,
                e => throw new InvalidOperationException("a partner refused a connection", e), CancellationToken.None)));
        }
        finally
        {
            foreach (var l in listeners) l.Dispose();
        }
        var (reducer, clients) = await ConnectStarAsync(runId, n, options);
        using var _ = reducer;
        try
        {
            var data = RandomVectors(n, floats);
            var sums = Enumerable.Range(0, n).Select(_ => new float[floats]).ToArray();
            var root = new float[floats];
            var flags = new float[n];
            var flagSlots = Enumerable.Range(0, n).Select(r => flags.AsMemory(r, 1)).ToArray();
            var slices = Enumerable.Range(0, n).Select(r =>
            {
                var (start, length) = RecursiveHalvingReducer.SliceOf(r, n, floats);
                return root.AsMemory(start, length);
            }).ToArray();
            var one = new[] { 1f };
            async Task RoundAsync(long step)
            {
                var tasks = new Task[n + 1];
                tasks[0] = reducer.AllReduceAsync(step, FrameKind.SoftCounts, root.AsMemory(0, softCounts)).AsTask();
                for (var rank = 0; rank < n; rank++)
                {
                    var client = clients[rank];
                    var memory = data[rank].AsMemory(0, softCounts);
                    tasks[rank + 1] = Task.Run(async () => await client.AllReduceAsync(step, FrameKind.SoftCounts, memory));
                }
                await Task.WhenAll(tasks);
                tasks[0] = Task.Run(async () =>
                {
                    await reducer.GatherAsync(step, FrameKind.Finite, flagSlots);
                    await reducer.GatherUntilFirstFailureAsync(step, FrameKind.Gradients, slices);
                });
                for (var rank = 0; rank < n; rank++)
                {
                    var (r, client, ring) = (rank, clients[rank], partners[rank]);
                    // Each worker on its own thread-pool thread, as the workers' torch threads would be.
                    tasks[rank + 1] = Task.Run(async () =>
                    {
                        // As WorkerReplica does: the block is only read, the slice checksummed once for both its frames.
                        await client.ContributeAsync(step, FrameKind.Finite, one);
                        await ring.ReduceScatterAsync(step, FrameKind.Gradients, data[r], sums[r]);
                        var (slice, checksum) = ring.ChecksummedSlice(sums[r]);
                        var toCoordinator = client.ContributeAsync(step, FrameKind.Gradients, slice, checksum).AsTask();
                        await ring.AllGatherAsync(step, FrameKind.Gradients, sums[r], checksum);
                        await toCoordinator;
                    });
                }
                await Task.WhenAll(tasks);
            }

            return await TimeRoundsAsync(RoundAsync, duration);
        }
        finally
        {
            foreach (var client in clients) client.Dispose();
            foreach (var ring in partners) ring.Dispose();
        }
    }

    /// <summary>The coordinator's side of a world of <paramref name="n"/> workers over loopback, and each worker's client.</summary>
    private static async Task<(StarReducer Reducer, StarReduceClient[] Clients)> ConnectStarAsync(Guid runId, int n, DataPlaneOptions options)
    {
        var clients = new StarReduceClient[n];
        using var listener = DataPlaneListener.Start(new IPEndPoint(IPAddress.Loopback, 0), runId, StarReducer.CoordinatorRank, options);
        var accept = StarReducer.AcceptWorkersAsync(listener, n);
        for (var rank = 0; rank < n; rank++)
            clients[rank] = await StarReduceClient.ConnectAsync(listener.LocalEndPoint, runId, rank, options);
        return (await accept, clients);
    }

    /// <summary>One vector of <paramref name="floats"/> seeded uniform values a worker.</summary>
    private static float[][] RandomVectors(int n, int floats)
    {
        var random = new Random(1);
        return Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, floats).Select(_ => (float)random.NextDouble()).ToArray()).ToArray();
    }

    /// <summary>10 warm-up rounds (JIT, first touches of the buffers and segments), then rounds for <paramref name="duration"/>: mean and median ms.</summary>
    private static async Task<(double MeanMs, double P50Ms, int Rounds)> TimeRoundsAsync(Func<long, Task> round, TimeSpan duration)
    {
        for (var step = 0; step < 10; step++)
            await round(step);
        var samples = new List<double>();
        var clock = Stopwatch.StartNew();
        for (var step = 10L; clock.Elapsed < duration; step++)
        {
            var start = Stopwatch.GetTimestamp();
            await round(step);
            samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        samples.Sort();
        return (samples.Average(), samples[samples.Count / 2], samples.Count);
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
