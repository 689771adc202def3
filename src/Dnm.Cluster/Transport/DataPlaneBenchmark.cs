using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Dnm.Cluster.Transport;

/// <summary>What the data-plane benchmark runs; see docs/BENCHMARKS.md.</summary>
public sealed record DataPlaneBenchmarkOptions
{
    /// <summary>Length of each measurement (raw stream, framed stream, small-frame ping-pong).</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Floats per large frame: 1 Mi floats = 4 MiB, the size of a gradient message.</summary>
    public int LargeFloats { get; init; } = 1 << 20;

    /// <summary>Floats per small frame: 600, the soft counts (R·C) of the reference map.</summary>
    public int SmallFloats { get; init; } = 600;

    /// <summary>Socket settings, applied to the raw baseline too so that only framing and checksums differ.</summary>
    public DataPlaneOptions Transport { get; init; } = DataPlaneOptions.Default;

    /// <summary>
    /// A folder with tls.crt, tls.key and ca.crt (`dnm cert create`): (b), (c) and (d) then run inside mutual TLS, on both
    /// sides; (a) stays the plain socket. Null: no TLS.
    /// </summary>
    public string? TlsDirectory { get; init; }
}

/// <summary>Round-trip times of one small message, in microseconds.</summary>
public sealed record RoundTripLatency(double MeanMicros, double P50Micros, double P99Micros, int Count);

/// <summary>Throughputs in MB/s (10^6 bytes per second, payload bytes only).</summary>
/// <param name="LargeRoundTripTcp">4 MiB frames sent and echoed back over TCP (the shared-memory path refused).</param>
/// <param name="LargeRoundTripSharedMemory">The same through the shared-memory path, when it was negotiated.</param>
/// <param name="LargeFrameBytes">Payload bytes of one large frame.</param>
public sealed record DataPlaneBenchmarkResult(
    double RawMBps, double FramedMBps, RoundTripLatency RawRoundTrip, RoundTripLatency FramedRoundTrip, double ChecksumMBps,
    RoundTripLatency LargeRoundTripTcp, RoundTripLatency? LargeRoundTripSharedMemory, long LargeFrameBytes)
{
    public double Ratio => FramedMBps / RawMBps;

    /// <summary>Payload bytes moved per second by large round trips over TCP (both directions: 2 frames a round trip).</summary>
    public double LargeTcpMBps => EffectiveMBps(LargeRoundTripTcp);

    /// <summary>The same through shared memory; 0 when it was not negotiated.</summary>
    public double LargeSharedMemoryMBps => LargeRoundTripSharedMemory is { } l ? EffectiveMBps(l) : 0;

    private double EffectiveMBps(RoundTripLatency l) => 2 * LargeFrameBytes / (l.MeanMicros * 1e-6) / 1e6;
}

/// <summary>
/// Measures the data plane between two OS processes on loopback: this process receives and measures, a
/// peer process (started through a callback, so the host decides how) sends. (a) a raw NetworkStream of
/// 4 MiB writes; (b) DataPlaneConnection frames of 4 MiB floats, framed and checksummed, received into one
/// reused destination; (c) round trips of a small frame, and of the same bytes on the raw socket for
/// reference; (d) round trips of 4 MiB frames (the peer echoes each back, as a one-worker all-reduce)
/// over TCP, then over a second connection that negotiates the shared-memory path. (b), (c) and the TCP
/// half of (d) share one connection on which the peer declines shared memory. All over the same socket options.
/// </summary>
public static class DataPlaneBenchmark
{
    /// <summary>The first argument that makes a host run <see cref="RunPeerAsync"/>.</summary>
    public const string PeerCommand = "dataplane-peer";

    // A frame with a negative step ends a phase: a benchmark convention, not part of the protocol.
    internal const long EndOfPhase = -1;

    public static async Task<DataPlaneBenchmarkResult> RunAsync(
        DataPlaneBenchmarkOptions options, Func<IReadOnlyList<string>, Process> startPeer, CancellationToken cancellationToken = default)
    {
        var runId = Guid.NewGuid();
        using var tls = options.TlsDirectory is { } folder ? LoadTls(folder) : null;
        if (tls is not null) options = options with { Transport = options.Transport with { Tls = tls } };
        using var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        DataPlaneConnection.Configure(raw, options.Transport);
        raw.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        raw.Listen();
        using var framed = DataPlaneListener.Start(new IPEndPoint(IPAddress.Loopback, 0), runId, StarReducer.CoordinatorRank, options.Transport);

        using var peer = startPeer(
        [
            "--raw", raw.LocalEndPoint!.ToString()!, "--framed", framed.LocalEndPoint.ToString(), "--run-id", runId.ToString(),
            "--seconds", options.Duration.TotalSeconds.ToString(CultureInfo.InvariantCulture),
            "--large", options.LargeFloats.ToString(CultureInfo.InvariantCulture),
            "--small", options.SmallFloats.ToString(CultureInfo.InvariantCulture),
            "--socket-buffer", options.Transport.SocketBufferBytes.ToString(CultureInfo.InvariantCulture),
            "--shared-memory", options.Transport.SharedMemoryBytes.ToString(CultureInfo.InvariantCulture),
            .. (options.TlsDirectory is { } tlsFolder ? ["--tls", tlsFolder] : Array.Empty<string>()),
        ]);
        try
        {
            var (rawMBps, rawRoundTrip) = await MeasureRawAsync(raw, options, cancellationToken).ConfigureAwait(false);
            using var connection = await framed.AcceptAsync(cancellationToken).ConfigureAwait(false);
            var framedMBps = await MeasureFramedAsync(connection, options, cancellationToken).ConfigureAwait(false);
            var framedRoundTrip = await MeasureFramedRoundTripsAsync(connection, options.SmallFloats, options, cancellationToken).ConfigureAwait(false);
            if (connection.UsesSharedMemory)
                throw new InvalidOperationException("The benchmark peer should have declined shared memory on its first connection.");
            var largeTcp = await MeasureFramedRoundTripsAsync(connection, options.LargeFloats, options, cancellationToken).ConfigureAwait(false);
            using var shared = await framed.AcceptAsync(cancellationToken).ConfigureAwait(false);
            var largeShared = await MeasureFramedRoundTripsAsync(shared, options.LargeFloats, options, cancellationToken).ConfigureAwait(false);
            await peer.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            if (peer.ExitCode != 0)
                throw new InvalidOperationException($"The benchmark peer process exited with code {peer.ExitCode}.");
            return new DataPlaneBenchmarkResult(rawMBps, framedMBps, rawRoundTrip, framedRoundTrip, MeasureChecksum(options),
                largeTcp, shared.UsesSharedMemory && shared.SharedMemoryBytesReceived > 0 ? largeShared : null, options.LargeFloats * (long)sizeof(float));
        }
        catch
        {
            if (!peer.HasExited)
                peer.Kill();
            throw;
        }
    }

    internal static ClusterTls LoadTls(string folder) =>
        ClusterTls.FromPemFiles(Path.Combine(folder, "tls.crt"), Path.Combine(folder, "tls.key"), Path.Combine(folder, "ca.crt"));

    /// <summary>The sending side, run in the peer process with the arguments <see cref="RunAsync"/> passed.</summary>
    public static Task RunPeerAsync(IReadOnlyList<string> args, CancellationToken cancellationToken = default)
        => DataPlaneBenchmarkPeer.RunAsync(args, cancellationToken);

    // Context for (b): how much CPU a frame's checksum costs on this machine, single core.
    private static double MeasureChecksum(DataPlaneBenchmarkOptions options)
    {
        var bytes = new byte[options.LargeFloats * sizeof(float)];
        new Random(2).NextBytes(bytes);
        var clock = Stopwatch.StartNew();
        long done = 0;
        while (clock.Elapsed < TimeSpan.FromSeconds(0.5))
        {
            Crc32C.Compute(bytes);
            done += bytes.Length;
        }
        return done / 1e6 / clock.Elapsed.TotalSeconds;
    }

    private static async Task<(double MBps, RoundTripLatency RoundTrip)> MeasureRawAsync(
        Socket listener, DataPlaneBenchmarkOptions options, CancellationToken cancellationToken)
    {
        using var socket = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
        DataPlaneConnection.Configure(socket, options.Transport);
        await using var stream = new NetworkStream(socket, ownsSocket: false);

        // Round trips first: fixed-size messages whose first 8 bytes are the sequence number, -1 ends.
        var message = new byte[options.SmallFloats * sizeof(float)];
        var roundTrip = await MeasureRoundTripsAsync(async sequence =>
        {
            BitConverter.TryWriteBytes(message, sequence);
            await stream.WriteAsync(message, cancellationToken).ConfigureAwait(false);
            await stream.ReadExactlyAsync(message, cancellationToken).ConfigureAwait(false);
        }, options.Duration).ConfigureAwait(false);
        BitConverter.TryWriteBytes(message, EndOfPhase);
        await stream.WriteAsync(message, cancellationToken).ConfigureAwait(false);

        var buffer = new byte[options.LargeFloats * sizeof(float)];
        // The clock starts at the first bytes, so connection set-up and process start are not measured.
        Stopwatch? clock = null;
        long bytes = 0;
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (clock is null)
                clock = Stopwatch.StartNew();
            else
                bytes += n;
        }
        return (bytes / 1e6 / clock!.Elapsed.TotalSeconds, roundTrip);
    }

    private static async Task<double> MeasureFramedAsync(DataPlaneConnection connection, DataPlaneBenchmarkOptions options, CancellationToken cancellationToken)
    {
        var destination = new float[options.LargeFloats];
        Stopwatch? clock = null;
        long bytes = 0;
        while (true)
        {
            var header = await connection.ReceiveAsync(destination, cancellationToken).ConfigureAwait(false);
            if (header.Step == EndOfPhase)
                break;
            if (clock is null)
                clock = Stopwatch.StartNew();
            else
                bytes += header.PayloadBytes;
        }
        return bytes / 1e6 / clock!.Elapsed.TotalSeconds;
    }

    private static async Task<RoundTripLatency> MeasureFramedRoundTripsAsync(
        DataPlaneConnection connection, int floats, DataPlaneBenchmarkOptions options, CancellationToken cancellationToken)
    {
        var outgoing = new float[floats];
        new Random(3).NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(outgoing.AsSpan()));
        var incoming = new float[floats];
        var latency = await MeasureRoundTripsAsync(async step =>
        {
            outgoing[0] = step;
            await connection.SendAsync(FrameKind.SoftCounts, step, outgoing, cancellationToken).ConfigureAwait(false);
            var header = await connection.ReceiveAsync(incoming, cancellationToken).ConfigureAwait(false);
            header.Expect(step, FrameKind.SoftCounts, connection.Peer);
        }, options.Duration, warmUp: floats == options.SmallFloats ? 500 : 20).ConfigureAwait(false);
        await connection.SendAsync(FrameKind.SoftCounts, EndOfPhase, outgoing, cancellationToken).ConfigureAwait(false);
        return latency;
    }

    // warmUp: round trips left out first (JIT tiers, socket paths, page faults of fresh buffers).
    private static async Task<RoundTripLatency> MeasureRoundTripsAsync(Func<long, Task> roundTrip, TimeSpan duration, int warmUp = 500)
    {
        var samples = new long[1 << 21];
        var count = 0;
        for (var i = 0; i < warmUp; i++)
            await roundTrip(i).ConfigureAwait(false);

        var end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        while (count < samples.Length)
        {
            var start = Stopwatch.GetTimestamp();
            await roundTrip(warmUp + count).ConfigureAwait(false);
            var stop = Stopwatch.GetTimestamp();
            samples[count++] = stop - start;
            if (stop >= end)
                break;
        }

        Array.Sort(samples, 0, count);
        double Micros(long ticks) => ticks * 1e6 / Stopwatch.Frequency;
        long total = 0;
        foreach (var ticks in samples.AsSpan(0, count))
            total += ticks;
        return new RoundTripLatency(Micros(total) / count, Micros(samples[count / 2]), Micros(samples[(int)(count * 0.99)]), count);
    }
}
