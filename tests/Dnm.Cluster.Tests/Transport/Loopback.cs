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

    public static async Task<(DataPlaneConnection Server, DataPlaneConnection Client)> PairAsync(
        Guid runId, int serverRank = StarReducer.CoordinatorRank, int clientRank = 0)
    {
        using var listener = DataPlaneListener.Start(AnyPort, runId, serverRank);
        var accept = listener.AcceptAsync(Deadline());
        var client = await DataPlaneConnection.ConnectAsync(listener.LocalEndPoint, runId, clientRank, cancellationToken: Deadline());
        return (await accept, client);
    }

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

    /// <summary>Sends Hello (optionally of another protocol version) and returns the server's reply header.</summary>
    public async Task<FrameHeader> HandshakeAsync(Guid runId, int rank, ushort version = FrameHeader.ProtocolVersion)
    {
        var hello = new byte[FrameHeader.Size];
        new FrameHeader(runId, 0, rank, FrameKind.Hello, 0, 0).WriteTo(hello, version);
        await SendAsync(hello);
        var reply = await ReceiveAsync(FrameHeader.Size);
        return FrameHeader.ReadFrom(reply, "test server");
    }

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
