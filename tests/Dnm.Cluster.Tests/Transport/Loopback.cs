using System.Net;
using System.Net.Sockets;
using Dnm.Cluster.Transport;

namespace Dnm.Cluster.Tests.Transport;

/// <summary>Helpers that wire data-plane peers over 127.0.0.1 inside the test process.</summary>
internal static class Loopback
{
    public static readonly IPEndPoint AnyPort = new(IPAddress.Loopback, 0);

    /// <summary>A token that fails a hung test instead of hanging the run.</summary>
    public static CancellationToken Deadline() => new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;

    /// <summary>Options with the shared-memory path turned off: every payload over TCP.</summary>
    public static readonly DataPlaneOptions TcpOnly = new() { SharedMemoryBytes = 0 };

    public static async Task<(DataPlaneConnection Server, DataPlaneConnection Client)> PairAsync(
        Guid runId, int serverRank = StarReducer.CoordinatorRank, int clientRank = 0,
        DataPlaneOptions? serverOptions = null, DataPlaneOptions? clientOptions = null)
    {
        using var listener = DataPlaneListener.Start(AnyPort, runId, serverRank, serverOptions);
        var accept = listener.AcceptAsync(Deadline());
        var client = await DataPlaneConnection.ConnectAsync(listener.LocalEndPoint, runId, clientRank, clientOptions, Deadline());
        return (await accept, client);
    }

    /// <summary>The shared-memory files of a run still present in /dev/shm (every name carries the run id).</summary>
    public static string[] SharedMemoryFiles(Guid runId, string directory = "/dev/shm")
        => Directory.Exists(directory) ? Directory.GetFiles(directory, $"dnm-dp-{runId:N}-*") : [];

    public static float[] RandomVector(int length, int seed)
    {
        var random = new Random(seed);
        var v = new float[length];
        for (var i = 0; i < v.Length; i++)
            v[i] = (float)(random.NextDouble() - 0.5) * MathF.Pow(2, random.Next(-20, 20));
        return v;
    }
}

/// <summary>
/// A hand-driven client socket that speaks the wire format through <see cref="FrameHeader"/> but can
/// write anything afterwards (corrupt payloads, other versions), to test the receiving side's checks.
/// </summary>
internal sealed class RawPeer : IDisposable
{
    private RawPeer(Socket socket) => Socket = socket;

    public Socket Socket { get; }

    public static async Task<RawPeer> ConnectAsync(IPEndPoint server)
    {
        var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server, Loopback.Deadline());
        return new RawPeer(socket);
    }

    /// <summary>
    /// Sends Hello (optionally of another protocol version) and returns the server's reply header. A
    /// Welcome's shared-memory offer is read and declined, so the connection carries every payload over
    /// TCP, where this peer can corrupt it; <paramref name="answerOffer"/> false leaves the offer unanswered.
    /// </summary>
    public async Task<FrameHeader> HandshakeAsync(Guid runId, int rank, ushort version = FrameHeader.ProtocolVersion, bool answerOffer = true)
    {
        var hello = new byte[FrameHeader.Size];
        new FrameHeader(runId, 0, rank, FrameKind.Hello, 0, 0).WriteTo(hello, version);
        await SendAsync(hello);
        var reply = FrameHeader.ReadFrom(await ReceiveAsync(FrameHeader.Size), "test server");
        if (reply.Kind == FrameKind.Welcome && reply.PayloadBytes > 0)
        {
            Offer = System.Text.Encoding.UTF8.GetString(await ReceiveAsync(reply.PayloadBytes));
            if (answerOffer)
            {
                var reason = "declined by the test peer"u8.ToArray();
                var answer = new byte[FrameHeader.Size + reason.Length];
                new FrameHeader(runId, 0, rank, FrameKind.SharedMemoryReply, reason.Length, Crc32C.Compute(reason)).WriteTo(answer);
                reason.CopyTo(answer, FrameHeader.Size);
                await SendAsync(answer);
            }
        }
        return reply;
    }

    /// <summary>The shared-memory offer of the Welcome, if the server made one.</summary>
    public string? Offer { get; private set; }

    public async Task SendAsync(byte[] bytes)
    {
        for (var sent = 0; sent < bytes.Length;)
            sent += await Socket.SendAsync(bytes.AsMemory(sent), SocketFlags.None, Loopback.Deadline());
    }

    public async Task<byte[]> ReceiveAsync(int count)
    {
        var buffer = new byte[count];
        for (var done = 0; done < count;)
        {
            var n = await Socket.ReceiveAsync(buffer.AsMemory(done), SocketFlags.None, Loopback.Deadline());
            if (n == 0)
                throw new EndOfStreamException();
            done += n;
        }
        return buffer;
    }

    public void Dispose() => Socket.Dispose();
}
