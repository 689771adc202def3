using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Dnm.Cluster.Transport;

namespace Dnm.Cluster.Tests.Transport;

/// <summary>The shared-memory path of <see cref="DataPlaneConnection"/>: negotiation, fallbacks, checks and cleanup.</summary>
public sealed class SharedMemorySpec : IDisposable
{
    private const int Large = 200_000; // 800 kB: above the inline size, within the default segment

    // Every file name carries the run id, so tests running at the same time never see each other's files.
    private readonly Guid _runId = Guid.NewGuid();

    // Stands in for another host's /dev/shm: a directory where the server's files are not.
    private readonly string _elsewhere = Directory.CreateTempSubdirectory("dnm-shm-spec-").FullName;

    public void Dispose() => Directory.Delete(_elsewhere, recursive: true);

    [Fact]
    public async Task Should_negotiate_shared_memory_on_one_host_and_move_payloads_bitwise_both_ways_at_once()
    {
        var (server, client) = await Loopback.PairAsync(_runId, clientRank: 1);
        using (server)
        using (client)
        {
            Assert.True(server.UsesSharedMemory);
            Assert.True(client.UsesSharedMemory);
            Assert.Null(client.SharedMemoryFallback);
            Assert.Equal(DataPlaneOptions.Default.SharedMemoryBytes, client.SharedMemoryCapacity);
            // Both sides mapped the files during the handshake, so their names are already gone.
            Assert.Empty(Loopback.SharedMemoryFiles(_runId));

            const int Floats = 855_000, Rounds = 3; // the paper model's statistics
            for (var round = 0; round < Rounds; round++)
            {
                var up = Unusual(Loopback.RandomVector(Floats, 2 * round));
                var down = Unusual(Loopback.RandomVector(Floats, 2 * round + 1));
                var atServer = new float[Floats];
                var atClient = new float[Floats];
                // Full duplex: each direction has its own segment.
                var send = client.SendAsync(FrameKind.Gradients, round, up, Loopback.Deadline()).AsTask();
                var reply = server.SendAsync(FrameKind.Parameters, round, down, Loopback.Deadline()).AsTask();
                Assert.Equal(FrameKind.Gradients, (await server.ReceiveAsync(atServer, Loopback.Deadline())).Kind);
                Assert.Equal(FrameKind.Parameters, (await client.ReceiveAsync(atClient, Loopback.Deadline())).Kind);
                await Task.WhenAll(send, reply);
                Assert.Equal(Bits(up), Bits(atServer));
                Assert.Equal(Bits(down), Bits(atClient));
            }

            const long Payload = Rounds * Floats * 4L;
            Assert.Equal(Payload, client.SharedMemoryBytesSent);
            Assert.Equal(Payload, server.SharedMemoryBytesReceived);
            Assert.Equal(Payload, server.SharedMemoryBytesSent);
            Assert.Equal(Payload, client.SharedMemoryBytesReceived);
            // The byte counters behind dnm_allreduce_bytes_total count every frame, whichever path it took.
            Assert.Equal(Payload + Rounds * FrameHeader.Size, client.BytesSent);
            Assert.Equal(Payload + Rounds * FrameHeader.Size, server.BytesReceived);
        }
        Assert.Empty(Loopback.SharedMemoryFiles(_runId));
    }

    [Fact]
    public async Task Should_send_small_payloads_and_those_beyond_the_segment_over_TCP()
    {
        const int Capacity = 1 << 20;
        var (server, client) = await Loopback.PairAsync(_runId, serverOptions: new DataPlaneOptions { SharedMemoryBytes = Capacity });
        using (server)
        using (client)
        {
            Assert.Equal(Capacity, client.SharedMemoryCapacity); // the server's size, whatever the client's option

            long viaSharedMemory = 0;
            foreach (var (floats, shared) in new[] { (600, false), (Capacity / 4 + 1, false), (Capacity / 4, true), (Large, true), (16_384, false) })
            {
                var sent = Loopback.RandomVector(floats, floats);
                var received = new float[floats];
                await client.SendAsync(FrameKind.Gradients, floats, sent, Loopback.Deadline());
                Assert.Equal(floats, (await server.ReceiveAsync(received, Loopback.Deadline())).Step);
                Assert.Equal(Bits(sent), Bits(received));
                viaSharedMemory += shared ? floats * 4L : 0;
                Assert.Equal(viaSharedMemory, client.SharedMemoryBytesSent);
                Assert.Equal(viaSharedMemory, server.SharedMemoryBytesReceived);
            }
        }
    }

    [Theory]
    [InlineData(0, 8 << 20, "disabled on the server")]
    [InlineData(8 << 20, 0, "disabled on the client")]
    public async Task Should_use_TCP_only_when_either_side_sets_the_capacity_to_zero(int serverBytes, int clientBytes, string reason)
    {
        var (server, client) = await Loopback.PairAsync(_runId,
            serverOptions: new DataPlaneOptions { SharedMemoryBytes = serverBytes }, clientOptions: new DataPlaneOptions { SharedMemoryBytes = clientBytes });
        using (server)
        using (client)
        {
            Assert.False(server.UsesSharedMemory);
            Assert.False(client.UsesSharedMemory);
            Assert.Contains(reason, server.SharedMemoryFallback); // the server's own reason, or the client's answer
            await AssertRoundTripAsync(server, client, Large);
            Assert.Equal(0, client.SharedMemoryBytesSent + server.SharedMemoryBytesSent);
        }
        Assert.Empty(Loopback.SharedMemoryFiles(_runId));
    }

    [Fact]
    public async Task Should_fall_back_to_TCP_when_the_client_cannot_map_the_segments()
    {
        // The client looks in a directory the server did not write to, as a client on another host (or in
        // another pod's IPC namespace) would: the files are not there.
        var (server, client) = await Loopback.PairAsync(_runId, clientOptions: new DataPlaneOptions { SharedMemoryDirectory = _elsewhere });
        using (server)
        using (client)
        {
            Assert.False(server.UsesSharedMemory);
            Assert.False(client.UsesSharedMemory);
            Assert.Contains("cannot map", client.SharedMemoryFallback);
            Assert.Contains("client declined", server.SharedMemoryFallback);
            Assert.Empty(Loopback.SharedMemoryFiles(_runId)); // the server removed what it had offered
            await AssertRoundTripAsync(server, client, 1 << 20);
            Assert.Equal(0, client.SharedMemoryBytesSent + server.SharedMemoryBytesSent);
        }
        Assert.Empty(Loopback.SharedMemoryFiles(_runId));
        Assert.Empty(Directory.GetFiles(_elsewhere));
    }

    [Fact]
    public void Should_refuse_a_segment_that_carries_another_nonce()
    {
        using var offer = SharedMemoryOffer.TryCreate(DataPlaneOptions.Default, _runId, StarReducer.CoordinatorRank, 0, out var unavailable);
        Assert.True(offer is not null, unavailable);
        var fields = Encoding.UTF8.GetString(offer.Encode()).Split('\n');
        fields[1] = Convert.ToHexString(RandomNumberGenerator.GetBytes(SharedMemorySegment.NonceBytes)); // e.g. a stale file of the same name

        using var channel = SharedMemoryChannel.TryAttach(Encoding.UTF8.GetBytes(string.Join('\n', fields)), DataPlaneOptions.Default, out var problem);

        Assert.Null(channel);
        Assert.Contains("nonce", problem);
        Assert.Equal(2, Loopback.SharedMemoryFiles(_runId).Length); // the refusing client leaves the server's files alone
        offer.Dispose();
        Assert.Empty(Loopback.SharedMemoryFiles(_runId));
    }

    [Theory]
    [InlineData("8388608\n00112233445566778899AABBCCDDEEFF\n../../etc/passwd\ndnm-dp-x.s2c")]
    [InlineData("8388608\n00112233445566778899AABBCCDDEEFF\n/dev/shm/dnm-dp-x.c2s\ndnm-dp-x.s2c")]
    [InlineData("8388608\nnot-hex-not-hex-not-hex-not-hex-\ndnm-dp-x.c2s\ndnm-dp-x.s2c")]
    [InlineData("-1\n00112233445566778899AABBCCDDEEFF\ndnm-dp-x.c2s\ndnm-dp-x.s2c")]
    [InlineData("8388608\n00112233445566778899AABBCCDDEEFF\ndnm-dp-x.c2s")]
    public void Should_refuse_a_malformed_offer_without_touching_any_path_it_names(string offer)
    {
        using var channel = SharedMemoryChannel.TryAttach(Encoding.UTF8.GetBytes(offer), DataPlaneOptions.Default, out var problem);
        Assert.Null(channel);
        Assert.Contains("malformed", problem);
    }

    [Theory]
    [InlineData(true)]  // the client closes the socket
    [InlineData(false)] // the client stays silent until the handshake times out
    public async Task Should_leave_no_files_behind_when_the_client_fails_during_the_handshake(bool closes)
    {
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, _runId, StarReducer.CoordinatorRank,
            // A silent client is cut off by the handshake timeout; a closing one must be seen as closed, so there
            // the timeout is long enough that a loaded machine cannot make it fire first.
            new DataPlaneOptions { HandshakeTimeout = closes ? TimeSpan.FromSeconds(30) : TimeSpan.FromMilliseconds(500) });
        var accept = listener.AcceptAsync(Loopback.Deadline());
        using (var raw = await RawPeer.ConnectAsync(listener.LocalEndPoint))
        {
            var welcome = await raw.HandshakeAsync(_runId, rank: 0, answerOffer: false);
            Assert.Equal(FrameKind.Welcome, welcome.Kind);
            Assert.NotNull(raw.Offer);
            Assert.Equal(2, Loopback.SharedMemoryFiles(_runId).Length); // offered, waiting for the answer
            if (closes)
                raw.Socket.Close();
            var ex = await Assert.ThrowsAnyAsync<Exception>(() => accept);
            Assert.True(ex is DataPlaneException { Field: var field } && field == (closes ? "Connection" : "Handshake"), ex.ToString());
        }
        Assert.Empty(Loopback.SharedMemoryFiles(_runId));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Should_detect_a_corrupt_shared_memory_payload_and_name_the_peer(bool addedWhereItLies)
    {
        var (server, client) = await Loopback.PairAsync(_runId, clientRank: 3);
        using (server)
        using (client)
        {
            await client.SendAsync(FrameKind.Gradients, 7, Loopback.RandomVector(Large, 1), Loopback.Deadline());
            server.SharedMemory!.Incoming.CorruptPayloadByte(Large * 2); // corruption in the segment, after the sender's copy

            var ex = await Assert.ThrowsAsync<DataPlaneException>(async () => _ = addedWhereItLies
                ? await server.ReceiveSumAsync(new ReceivedSum(new float[Large], new float[Large], ReceivedIsLeft: true), new float[Large], Loopback.Deadline())
                : await server.ReceiveAsync(new float[Large], Loopback.Deadline()));
            Assert.Equal("Checksum", ex.Field);
            Assert.Contains("rank 3", ex.Peer);
            Assert.Contains("checksum", ex.Message, StringComparison.OrdinalIgnoreCase);
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await server.ReceiveAsync(new float[Large]));
        }
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public async Task Should_add_a_received_payload_to_a_local_vector_with_the_bits_of_receiving_then_adding(bool sharedMemory, bool receivedIsLeft)
    {
        var (server, client) = await Loopback.PairAsync(_runId, clientRank: 1, serverOptions: sharedMemory ? null : Loopback.TcpOnly);
        using (server)
        using (client)
        {
            Assert.Equal(sharedMemory, server.UsesSharedMemory);
            // Odd, and beyond one 256 kB chunk of the segment; values whose sums round.
            const int Floats = 300_001;
            var sent = Unusual(Loopback.RandomVector(Floats, 41));
            var local = Loopback.RandomVector(Floats, 42);
            var localBefore = (float[])local.Clone();
            var expected = new float[Floats];
            for (var i = 0; i < Floats; i++) expected[i] = receivedIsLeft ? sent[i] + local[i] : local[i] + sent[i];
            var sum = new float[Floats];
            await client.SendAsync(FrameKind.Gradients, 3, sent, Loopback.Deadline());
            var header = await server.ReceiveSumAsync(new ReceivedSum(local, sum, receivedIsLeft), new float[Floats], Loopback.Deadline());
            Assert.Equal(3, header.Step);
            Assert.Equal(Bits(expected), Bits(sum));
            Assert.Equal(Bits(localBefore), Bits(local));
            Assert.Equal(sharedMemory ? Floats * 4L : 0, server.SharedMemoryBytesReceived);

            // In place: the sum replaces the local vector (the reduction keeps each node where a child was).
            await client.SendAsync(FrameKind.Gradients, 4, sent, Loopback.Deadline());
            await server.ReceiveSumAsync(new ReceivedSum(local, local, receivedIsLeft), new float[Floats], Loopback.Deadline());
            Assert.Equal(Bits(expected), Bits(local));
        }
    }

    [Fact]
    public async Task Should_never_overwrite_a_payload_the_receiver_has_not_copied_out()
    {
        var (server, client) = await Loopback.PairAsync(_runId);
        using (server)
        using (client)
        {
            var vectors = Enumerable.Range(0, 4).Select(i => Loopback.RandomVector(Large, 10 + i)).ToArray();
            // Two frames back to back before the receiver has looked: the first fills the segment, so the
            // second must not touch it (were it written there, the first frame would arrive as the second's
            // bytes and fail its checksum).
            await client.SendAsync(FrameKind.Gradients, 0, vectors[0], Loopback.Deadline());
            await client.SendAsync(FrameKind.Gradients, 1, vectors[1], Loopback.Deadline());
            Assert.Equal(Large * 4L, client.SharedMemoryBytesSent); // the second went over TCP

            var received = new float[Large];
            for (var step = 0; step < 2; step++)
            {
                Assert.Equal(step, (await server.ReceiveAsync(received, Loopback.Deadline())).Step);
                Assert.Equal(Bits(vectors[step]), Bits(received));
            }

            // Copied out: the segment is free again, and the next frames use it.
            for (var step = 2; step < 4; step++)
            {
                await client.SendAsync(FrameKind.Gradients, step, vectors[step], Loopback.Deadline());
                Assert.Equal(step, (await server.ReceiveAsync(received, Loopback.Deadline())).Step);
                Assert.Equal(Bits(vectors[step]), Bits(received));
            }
            Assert.Equal(3 * Large * 4L, client.SharedMemoryBytesSent);
            Assert.Equal(3 * Large * 4L, server.SharedMemoryBytesReceived);
        }
    }

    [Fact]
    public async Task Should_fail_a_receive_cleanly_when_the_connection_is_disposed_meanwhile()
    {
        var (server, client) = await Loopback.PairAsync(_runId);
        using (client)
        {
            var receive = server.ReceiveAsync(new float[Large], Loopback.Deadline()).AsTask();
            server.Dispose();
            var ex = await Assert.ThrowsAsync<DataPlaneException>(() => receive);
            Assert.Equal("Connection", ex.Field);
            // The segments are unmapped on this side; the peer's next send fails on the socket, not in memory.
            await Assert.ThrowsAnyAsync<Exception>(async () =>
            {
                for (var i = 0; i < 100; i++)
                    await client.SendAsync(FrameKind.Gradients, i, new float[Large], Loopback.Deadline());
            });
        }
    }

    [Fact]
    public async Task Should_move_4_MiB_frames_intact_between_two_processes_through_shared_memory()
    {
        // The data-plane benchmark against this assembly started as its peer process (Program.cs): every frame
        // each way is checksummed, so a payload torn across processes would fail here.
        var result = await DataPlaneBenchmark.RunAsync(new DataPlaneBenchmarkOptions { Duration = TimeSpan.FromSeconds(0.3) }, peerArgs =>
        {
            var start = new System.Diagnostics.ProcessStartInfo("dotnet") { UseShellExecute = false };
            start.ArgumentList.Add(typeof(SharedMemorySpec).Assembly.Location);
            start.ArgumentList.Add(DataPlaneBenchmark.PeerCommand);
            foreach (var arg in peerArgs)
                start.ArgumentList.Add(arg);
            return System.Diagnostics.Process.Start(start)!;
        }, Loopback.Deadline());

        Assert.NotNull(result.LargeRoundTripSharedMemory); // negotiated across the two processes, and used
        Assert.True(result.LargeRoundTripSharedMemory.Count > 0);
        Assert.True(result.LargeRoundTripTcp.Count > 0);
    }

    [Fact]
    public void Should_announce_each_frame_and_hold_the_segment_until_it_is_copied_out()
    {
        var path = Path.Combine(_elsewhere, "dnm-dp-segment");
        var nonce = RandomNumberGenerator.GetBytes(SharedMemorySegment.NonceBytes);
        using var writer = SharedMemorySegment.Create(path, 1024, nonce);
        using var reader = SharedMemorySegment.Open(path, 1024, nonce);
        var destination = new byte[100];

        // A header that claims a shared-memory frame the writer never wrote is caught, not read as stale bytes.
        Assert.Throws<InvalidDataException>(() => reader.Read(destination));

        var payload = RandomNumberGenerator.GetBytes(100);
        Assert.True(writer.TryWrite(payload));
        Assert.False(writer.TryWrite(payload)); // the first is not copied out yet
        Assert.Equal(Crc32C.Compute(payload), reader.Read(destination));
        Assert.Equal(payload, destination);
        Assert.True(writer.TryWrite(payload)); // copied out: free again

        Assert.Throws<InvalidDataException>(() => SharedMemorySegment.Open(path, 2048, nonce)); // another size than offered
        Assert.Throws<FileNotFoundException>(() => SharedMemorySegment.Open(path + ".missing", 1024, nonce));
        writer.Unlink();
        Assert.False(File.Exists(path));
    }

    private static async Task AssertRoundTripAsync(DataPlaneConnection server, DataPlaneConnection client, int floats)
    {
        var sent = Loopback.RandomVector(floats, 5);
        var atServer = new float[floats];
        var atClient = new float[floats];
        await client.SendAsync(FrameKind.Gradients, 1, sent, Loopback.Deadline());
        await server.ReceiveAsync(atServer, Loopback.Deadline());
        await server.SendAsync(FrameKind.Gradients, 2, atServer, Loopback.Deadline());
        await client.ReceiveAsync(atClient, Loopback.Deadline());
        Assert.Equal(Bits(sent), Bits(atClient));
    }

    // Bit patterns an arithmetic copy would lose: NaN payloads, negative zero, subnormals, infinities.
    private static float[] Unusual(float[] v)
    {
        var bits = MemoryMarshal.Cast<float, int>(v.AsSpan());
        bits[0] = unchecked((int)0xFFC0_1234); // a NaN with a payload
        bits[1] = unchecked((int)0x8000_0000); // -0
        bits[2] = 1;                           // the smallest subnormal
        bits[3] = 0x7F80_0000;                 // +infinity
        bits[^1] = 0x7FA0_0001;                // a signalling NaN
        return v;
    }

    private static int[] Bits(float[] v) => MemoryMarshal.Cast<float, int>(v.AsSpan()).ToArray();
}
