using System.Runtime.InteropServices;
using Dnm.Cluster.Transport;

namespace Dnm.Cluster.Tests.Transport;

public sealed class DataPlaneConnectionSpec
{
    private readonly Guid _runId = Guid.NewGuid();

    [Theory]
    [InlineData(FrameKind.SoftCounts, 0, true)]
    [InlineData(FrameKind.LossParts, 1, true)]
    [InlineData(FrameKind.SoftCounts, 600, true)]
    [InlineData(FrameKind.SomStats, 600 * 100, true)]  // through shared memory
    [InlineData(FrameKind.Gradients, 1 << 20, true)]   // 4 MiB, through shared memory
    [InlineData(FrameKind.SomStats, 600 * 100, false)] // the same over TCP
    [InlineData(FrameKind.Gradients, 1 << 20, false)]
    public async Task Should_round_trip_payloads_of_every_size_in_both_directions(FrameKind kind, int floats, bool sharedMemory)
    {
        var options = sharedMemory ? null : Loopback.TcpOnly;
        var (server, client) = await Loopback.PairAsync(_runId, clientRank: 2, serverOptions: options, clientOptions: options);
        using (server)
        using (client)
        {
            Assert.Equal(2, server.RemoteRank);
            Assert.Equal(StarReducer.CoordinatorRank, client.RemoteRank);

            var sent = Loopback.RandomVector(floats, seed: floats);
            var received = new float[floats];
            var send = client.SendAsync(kind, 41, sent, Loopback.Deadline());
            var header = await server.ReceiveAsync(received, Loopback.Deadline());
            await send;
            Assert.Equal(new FrameHeader(_runId, 41, 2, kind, floats * 4, Crc32C.Compute(MemoryMarshal.AsBytes(sent.AsSpan()))), header);
            Assert.Equal(sent, received);

            var back = new float[floats];
            var reply = server.SendAsync(kind, 42, received, Loopback.Deadline());
            Assert.Equal(42, (await client.ReceiveAsync(back, Loopback.Deadline())).Step);
            await reply;
            Assert.Equal(sent, back);

            long frameBytes = FrameHeader.Size + floats * 4L;
            Assert.Equal(frameBytes, client.BytesSent);
            Assert.Equal(frameBytes, client.BytesReceived);
            Assert.Equal(frameBytes, server.BytesSent);
            Assert.Equal(frameBytes, server.BytesReceived);
        }
    }

    [Theory]
    [InlineData(600)]            // inline path: header and payload in one send
    [InlineData(200_000)]        // separate payload send
    public async Task Should_detect_a_flipped_payload_byte_and_name_the_peer(int floats)
    {
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, _runId, StarReducer.CoordinatorRank);
        var accept = listener.AcceptAsync(Loopback.Deadline());
        using var raw = await RawPeer.ConnectAsync(listener.LocalEndPoint);
        Assert.Equal(FrameKind.Welcome, (await raw.HandshakeAsync(_runId, rank: 3)).Kind);
        using var server = await accept;

        var payload = MemoryMarshal.AsBytes(Loopback.RandomVector(floats, 1).AsSpan()).ToArray();
        var frame = new byte[FrameHeader.Size + payload.Length];
        new FrameHeader(_runId, 7, 3, FrameKind.Gradients, payload.Length, Crc32C.Compute(payload)).WriteTo(frame);
        payload.CopyTo(frame, FrameHeader.Size);
        frame[FrameHeader.Size + payload.Length / 2] ^= 0x04; // corruption in flight
        await raw.SendAsync(frame);

        var ex = await Assert.ThrowsAsync<DataPlaneException>(async () => await server.ReceiveAsync(new float[floats], Loopback.Deadline()));
        Assert.Equal("Checksum", ex.Field);
        Assert.Contains("rank 3", ex.Peer);
        Assert.Contains("checksum", ex.Message, StringComparison.OrdinalIgnoreCase);

        // The byte stream can no longer be trusted, so the connection refuses further use.
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await server.ReceiveAsync(new float[floats]));
    }

    [Fact]
    public async Task Should_reject_a_frame_of_another_run_on_an_established_connection()
    {
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, _runId, StarReducer.CoordinatorRank);
        var accept = listener.AcceptAsync(Loopback.Deadline());
        using var raw = await RawPeer.ConnectAsync(listener.LocalEndPoint);
        await raw.HandshakeAsync(_runId, rank: 1);
        using var server = await accept;

        var frame = new byte[FrameHeader.Size];
        new FrameHeader(Guid.NewGuid(), 1, 1, FrameKind.SoftCounts, 0, 0).WriteTo(frame);
        await raw.SendAsync(frame);

        var ex = await Assert.ThrowsAsync<DataPlaneException>(async () => await server.ReceiveAsync(Memory<float>.Empty, Loopback.Deadline()));
        Assert.Equal("RunId", ex.Field);
    }

    [Theory]
    [InlineData(600, 599)]
    [InlineData(599, 600)]          // shorter than expected: must fail on the header, not wait for more bytes
    [InlineData(100_000, 200_000)]  // large-frame path
    public async Task Should_reject_a_payload_that_does_not_match_the_destination_length(int sent, int expected)
    {
        var (server, client) = await Loopback.PairAsync(_runId);
        using (server)
        using (client)
        {
            await client.SendAsync(FrameKind.SoftCounts, 1, new float[sent], Loopback.Deadline());
            var ex = await Assert.ThrowsAsync<DataPlaneException>(async () => await server.ReceiveAsync(new float[expected], Loopback.Deadline()));
            Assert.Equal("PayloadBytes", ex.Field);
        }
    }

    [Theory]
    [InlineData(0, "closed the connection.")]
    [InlineData(100, "in the middle of a frame")]
    public async Task Should_report_a_peer_that_closed(int bytesBeforeClosing, string expected)
    {
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, _runId, StarReducer.CoordinatorRank);
        var accept = listener.AcceptAsync(Loopback.Deadline());
        using var raw = await RawPeer.ConnectAsync(listener.LocalEndPoint);
        await raw.HandshakeAsync(_runId, rank: 4);
        using var server = await accept;

        var frame = new byte[FrameHeader.Size + 40_000];
        new FrameHeader(_runId, 1, 4, FrameKind.Gradients, 40_000, 0).WriteTo(frame);
        if (bytesBeforeClosing > 0)
            await raw.SendAsync(frame[..(FrameHeader.Size + bytesBeforeClosing)]);
        raw.Socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);

        var ex = await Assert.ThrowsAsync<DataPlaneException>(async () => await server.ReceiveAsync(new float[10_000], Loopback.Deadline()));
        Assert.Equal("Connection", ex.Field);
        Assert.Contains("rank 4", ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public async Task Should_reject_a_run_id_mismatch_at_the_handshake_on_both_sides()
    {
        var serverRun = Guid.NewGuid();
        var clientRun = Guid.NewGuid();
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, serverRun, StarReducer.CoordinatorRank);
        var accept = listener.AcceptAsync(Loopback.Deadline());

        var clientError = await Assert.ThrowsAsync<DataPlaneException>(
            () => DataPlaneConnection.ConnectAsync(listener.LocalEndPoint, clientRun, 5, cancellationToken: Loopback.Deadline()));
        var serverError = await Assert.ThrowsAsync<DataPlaneException>(() => accept);

        foreach (var ex in new[] { clientError, serverError })
        {
            Assert.Equal("RunId", ex.Field);
            Assert.Contains(serverRun.ToString(), ex.Message);
            Assert.Contains(clientRun.ToString(), ex.Message);
        }
        Assert.Contains("rank 5", serverError.Peer);
        Assert.Contains(listener.LocalEndPoint.Port.ToString(), clientError.Peer);

        // The listener survives a bad client and accepts the next, good one.
        var next = listener.AcceptAsync(Loopback.Deadline());
        using var good = await DataPlaneConnection.ConnectAsync(listener.LocalEndPoint, serverRun, 0, cancellationToken: Loopback.Deadline());
        using var accepted = await next;
        Assert.Equal(0, accepted.RemoteRank);
    }

    [Fact]
    public async Task Should_reject_another_protocol_version_at_the_handshake_and_say_so()
    {
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, _runId, StarReducer.CoordinatorRank);
        var accept = listener.AcceptAsync(Loopback.Deadline());
        using var raw = await RawPeer.ConnectAsync(listener.LocalEndPoint);

        var reply = await raw.HandshakeAsync(_runId, rank: 0, version: 99);

        Assert.Equal(FrameKind.Reject, reply.Kind);
        var reason = System.Text.Encoding.UTF8.GetString(await raw.ReceiveAsync(reply.PayloadBytes));
        Assert.StartsWith("Version\n", reason);
        Assert.Contains("99", reason);
        var serverError = await Assert.ThrowsAsync<DataPlaneException>(() => accept);
        Assert.Equal("Version", serverError.Field);
    }

    [Fact]
    public async Task Should_refuse_to_send_handshake_kinds_as_data()
    {
        var (server, client) = await Loopback.PairAsync(_runId);
        using (server)
        using (client)
            await Assert.ThrowsAsync<ArgumentException>(async () => await client.SendAsync(FrameKind.Welcome, 1, new float[1]));
    }
}
