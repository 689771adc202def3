using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Dnm.Cluster.Transport;

/// <summary>The sending half of <see cref="DataPlaneBenchmark"/>, run in its own process.</summary>
internal static class DataPlaneBenchmarkPeer
{
    public static async Task RunAsync(IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        string Arg(string name)
        {
            for (var i = 0; i + 1 < args.Count; i++)
                if (args[i] == name)
                    return args[i + 1];
            throw new ArgumentException($"The benchmark peer needs {name}.");
        }

        var tlsFolder = args.SkipWhile(a => a != "--tls").Skip(1).FirstOrDefault();
        using var tls = tlsFolder is null ? null : DataPlaneBenchmark.LoadTls(tlsFolder);
        var duration = TimeSpan.FromSeconds(double.Parse(Arg("--seconds"), CultureInfo.InvariantCulture));
        var large = int.Parse(Arg("--large"), CultureInfo.InvariantCulture);
        var small = int.Parse(Arg("--small"), CultureInfo.InvariantCulture);
        // The first framed connection declines shared memory, so (b), (c) and the TCP half of (d) measure TCP.
        var transport = new DataPlaneOptions { SocketBufferBytes = int.Parse(Arg("--socket-buffer"), CultureInfo.InvariantCulture), SharedMemoryBytes = 0, Tls = tls };
        var shared = transport with { SharedMemoryBytes = int.Parse(Arg("--shared-memory"), CultureInfo.InvariantCulture) };
        var payload = new float[large];
        new Random(1).NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(payload.AsSpan()));

        // (a) raw: echo small messages, then stream the same bytes as (b): no header, no checksum.
        using (var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            DataPlaneConnection.Configure(raw, transport);
            await raw.ConnectAsync(IPEndPoint.Parse(Arg("--raw")), cancellationToken).ConfigureAwait(false);
            await using var stream = new NetworkStream(raw, ownsSocket: false);
            var message = new byte[small * sizeof(float)];
            while (true)
            {
                await stream.ReadExactlyAsync(message, cancellationToken).ConfigureAwait(false);
                if (BitConverter.ToInt64(message) == DataPlaneBenchmark.EndOfPhase)
                    break;
                await stream.WriteAsync(message, cancellationToken).ConfigureAwait(false);
            }

            var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(payload.AsSpan()).ToArray();
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < duration)
                await stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
            raw.Shutdown(SocketShutdown.Send);
        }

        // (b) framed: each frame checksummed on send, as in training.
        using var connection = await DataPlaneConnection.ConnectAsync(
            IPEndPoint.Parse(Arg("--framed")), Guid.Parse(Arg("--run-id")), 0, transport, cancellationToken).ConfigureAwait(false);
        var sendClock = Stopwatch.StartNew();
        for (var step = 0L; sendClock.Elapsed < duration; step++)
            await connection.SendAsync(FrameKind.Gradients, step, payload, cancellationToken).ConfigureAwait(false);
        await connection.SendAsync(FrameKind.Gradients, DataPlaneBenchmark.EndOfPhase, payload, cancellationToken).ConfigureAwait(false);

        // (c) echo small frames, (d) large ones, until the measuring side ends each phase.
        await EchoAsync(connection, new float[small], cancellationToken).ConfigureAwait(false);
        await EchoAsync(connection, new float[large], cancellationToken).ConfigureAwait(false);

        // (d) again on a connection that takes the server's shared-memory offer.
        using var sharedConnection = await DataPlaneConnection.ConnectAsync(
            IPEndPoint.Parse(Arg("--framed")), Guid.Parse(Arg("--run-id")), 0, shared, cancellationToken).ConfigureAwait(false);
        await EchoAsync(sharedConnection, new float[large], cancellationToken).ConfigureAwait(false);
    }

    private static async Task EchoAsync(DataPlaneConnection connection, float[] echo, CancellationToken cancellationToken)
    {
        while (true)
        {
            var header = await connection.ReceiveAsync(echo, cancellationToken).ConfigureAwait(false);
            if (header.Step == DataPlaneBenchmark.EndOfPhase)
                break;
            await connection.SendAsync(header.Kind, header.Step, echo, cancellationToken).ConfigureAwait(false);
        }
    }
}
