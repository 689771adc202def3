using System.Diagnostics;
using System.Globalization;
using Dnm.Bench;
using Dnm.Cluster.Transport;

// dnm-bench dataplane [--seconds S] [--socket-buffer BYTES] [--shared-memory BYTES] [--tls]: measures, and starts its own peer process.
// dnm-bench dataplane-peer ...: the peer half, started by the above.
// dnm-bench step [--batch 256] [--threads 2] [--warmup 5] [--steps 30] [--phases] [--mlp]: the training step
//   (--mlp: the fully connected encoder of configs/mnist-mlp.json instead of the paper's conv model).
// dnm-bench cluster [--workers 1,2,4] ...: bare Trainer vs dnm train --workers N (scripts/bench-cluster.sh).
// dnm-bench memory [--batch 64] [--threads 2] [--steps 2000] [--every 100]: RSS over many steps.
// dnm-bench layers [--batch 43] [--steps 7]: each layer alone, single-threaded.
// dnm-bench allreduce [--workers 1,2,4] [--floats 855000] [--seconds 3] [--tls] [--reduction star|workers]: the star all-reduce (or the statistics summed
// among the workers) alone, TCP vs shared memory (and each inside mutual TLS).
// dnm-bench serve [--url http://127.0.0.1:8080] [--seconds 10] [--batch 1,64] [--clients 1,2]: a running dnm serve (scripts/bench-serve.sh).
// dnm-bench loader --dataset <shards:dir | folder:dir> [--batches N]: decoded images/s through the training step's loader (scripts/bench-loader.sh).
// dnm-bench scaling [--gbit 25] [--latency-us 50] [--floats 855000]: the star vs ring communication model (no measuring).
if (args is [DataPlaneBenchmark.PeerCommand, .. var peerArgs])
{
    await DataPlaneBenchmark.RunPeerAsync(peerArgs);
    return 0;
}

if (args is ["cluster", .. var clusterArgs])
    return await ClusterBenchmark.RunAsync(clusterArgs);

if (args is ["step", .. var stepArgs])
{
    using var bench = new StepBenchmark(StepBenchmarkOptions.Parse(stepArgs, new StepBenchmarkOptions()));
    return bench.Run();
}

// dnm-bench mnist-path: fetches MNIST if needed and prints the training images' IDX path (for the peer).
if (args is ["mnist-path"])
{
    var files = await new Dnm.Core.Data.MnistStore().EnsureAsync(Dnm.Core.Data.DatasetCatalog.DefaultDataDir());
    Console.WriteLine(files.TrainImages);
    return 0;
}

if (args is ["serve", .. var serveArgs])
    return await ServeBenchmark.RunAsync(serveArgs);

if (args is ["allreduce", .. var allReduceArgs])
    return await AllReduceBenchmark.RunAsync(allReduceArgs);

if (args is ["scaling", .. var scalingArgs])
    return ScalingModel.Run(scalingArgs);

if (args is ["layers", .. var layerArgs])
    return LayerProfile.Run(layerArgs);

if (args is ["loader", .. var loaderArgs])
    return LoaderBenchmark.Run(loaderArgs);

if (args is ["memory", .. var memoryArgs])
    return MemoryBenchmark.Run(memoryArgs);

if (args is not ["dataplane", .. var rest])
{
    Console.Error.WriteLine($"""
        usage: Dnm.Bench dataplane [--seconds 3] [--socket-buffer 4194304] [--shared-memory 8388608] [--tls]
               Dnm.Bench step [--batch 256] [--threads 2] [--warmup 5] [--steps 30] [--phases] [--mlp]
               Dnm.Bench layers [--batch 256] [--steps 7]
               Dnm.Bench mnist-path
               Dnm.Bench memory [--batch 64] [--threads 2] [--steps 2000] [--every 100] [--bound-percent 5] [--bound-mb 50]
               Dnm.Bench cluster [--workers 1,2,4] [--limit 4096] [--batch-size 256] [--threads 1] [--shared-memory 8388608] [--repeat 1]
               Dnm.Bench allreduce [--workers 1,2,4] [--floats 855000] [--soft-counts 600] [--seconds 3] [--tls] [--reduction star|workers]
               {LoaderBenchmark.Usage}
               Dnm.Bench scaling [--workers 1,2,4,...,64] [--gbit 25] [--latency-us 50] [--floats 855000] [--soft-counts 600]
        """);
    return 2;
}

string? Option(string name) => rest.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
var options = new DataPlaneBenchmarkOptions
{
    Duration = TimeSpan.FromSeconds(double.Parse(Option("--seconds") ?? "3", CultureInfo.InvariantCulture)),
    Transport = new DataPlaneOptions
    {
        SocketBufferBytes = int.Parse(Option("--socket-buffer") ?? DataPlaneOptions.Default.SocketBufferBytes.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
        SharedMemoryBytes = int.Parse(Option("--shared-memory") ?? DataPlaneOptions.Default.SharedMemoryBytes.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
    },
    // --tls: a fresh CA and node certificate (as `dnm cert create` makes them) for both processes.
    TlsDirectory = rest.Contains("--tls") ? Directory.CreateTempSubdirectory("dnm-bench-tls-").FullName : null,
};
if (options.TlsDirectory is { } tlsFolder)
    Dnm.Cluster.Hosting.ClusterCertificates.Create(tlsFolder, [], 1, DateTimeOffset.UtcNow);

DataPlaneBenchmarkResult r;
try
{
    r = await DataPlaneBenchmark.RunAsync(options, StartPeer);
}
finally
{
    if (options.TlsDirectory is { } folder) Directory.Delete(folder, recursive: true);
}
Console.WriteLine(FormattableString.Invariant($"""
    data plane, 2 processes on loopback, {options.Duration.TotalSeconds:F0} s each, socket buffers {options.Transport.SocketBufferBytes} B, CRC-32C hardware: {Crc32C.IsHardwareAccelerated}{(options.TlsDirectory is null ? "" : ", (b) to (d) inside mutual TLS")}
    (a) raw NetworkStream, 4 MiB writes:        {r.RawMBps,8:F0} MB/s
    (b) DataPlaneConnection, 4 MiB float frames: {r.FramedMBps,8:F0} MB/s
    ratio (b)/(a):                               {r.Ratio,8:F2}
    (c) {options.SmallFloats}-float frame round trip:   {Describe(r.FramedRoundTrip)}
        same bytes, raw socket:         {Describe(r.RawRoundTrip)}
    CRC-32C of 4 MiB on one core:                {r.ChecksumMBps,8:F0} MB/s
    (d) 4 MiB frame round trip, TCP:           {Describe(r.LargeRoundTripTcp)}, {r.LargeTcpMBps,6:F0} MB/s
        through shared memory:          {(r.LargeRoundTripSharedMemory is { } shm ? $"{Describe(shm)}, {r.LargeSharedMemoryMBps,6:F0} MB/s" : "not negotiated")}
        (MB/s: both frames' payload bytes over the mean round trip; speed-up {r.LargeSharedMemoryMBps / r.LargeTcpMBps:F2}x)
    """));
return 0;

static string Describe(RoundTripLatency l)
    => FormattableString.Invariant($"p50 {l.P50Micros,6:F1} us, p99 {l.P99Micros,6:F1} us, mean {l.MeanMicros,6:F1} us ({l.Count} round trips)");

// The peer is this same program in another process; under `dotnet x.dll` the path is the dotnet host.
static Process StartPeer(IReadOnlyList<string> peerArgs)
{
    var host = Environment.ProcessPath!;
    var start = new ProcessStartInfo(host) { UseShellExecute = false };
    if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        start.ArgumentList.Add(System.Reflection.Assembly.GetEntryAssembly()!.Location);
    start.ArgumentList.Add(DataPlaneBenchmark.PeerCommand);
    foreach (var arg in peerArgs)
        start.ArgumentList.Add(arg);
    return Process.Start(start) ?? throw new InvalidOperationException("Could not start the benchmark peer.");
}
