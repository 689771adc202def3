using Dnm.Cluster.Tests.Support;
using Dnm.Cluster.Transport;

namespace Dnm.Cluster.Tests.Transport;

/// <summary>The data plane with <see cref="DataPlaneOptions.Tls"/>: mutual TLS before the handshake, and a peer of another CA, or with none, refused.</summary>
public sealed class DataPlaneTlsSpec : IDisposable
{
    private readonly Guid _runId = Guid.NewGuid();
    private readonly TestCertificates _certificates = new();
    private readonly ClusterTls _cluster;
    private readonly ClusterTls _otherCluster;

    public DataPlaneTlsSpec()
    {
        var folder = _certificates.Create("cluster");
        _cluster = TestCertificates.Load(folder);
        _otherCluster = TestCertificates.Load(_certificates.Create("other"));
    }

    [Theory]
    [InlineData(600, false)]
    [InlineData(1 << 20, false)] // 4 MiB through the TLS session
    [InlineData(1 << 20, true)]  // 4 MiB through shared memory, its header through the TLS session
    public async Task Should_round_trip_payloads_inside_a_mutually_authenticated_session(int floats, bool sharedMemory)
    {
        var options = (sharedMemory ? DataPlaneOptions.Default : Loopback.TcpOnly) with { Tls = _cluster };
        var (server, client) = await Loopback.PairAsync(_runId, clientRank: 1, serverOptions: options, clientOptions: options);
        using (server)
        using (client)
        {
            Assert.True(server.IsEncrypted);
            Assert.True(client.IsEncrypted);
            Assert.Equal(sharedMemory, client.UsesSharedMemory);
            var sent = Loopback.RandomVector(floats, seed: 5);
            var received = new float[floats];
            var send = client.SendAsync(FrameKind.Gradients, 3, sent, Loopback.Deadline());
            Assert.Equal(3, (await server.ReceiveAsync(received, Loopback.Deadline())).Step);
            await send;
            Assert.Equal(sent, received);
            var back = new float[floats];
            var reply = server.SendAsync(FrameKind.Gradients, 4, received, Loopback.Deadline());
            Assert.Equal(4, (await client.ReceiveAsync(back, Loopback.Deadline())).Step);
            await reply;
            Assert.Equal(sent, back);
        }
    }

    [Fact]
    public async Task Should_refuse_a_client_whose_certificate_another_CA_signed()
    {
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, _runId, StarReducer.CoordinatorRank, Loopback.TcpOnly with { Tls = _cluster });
        var accept = listener.AcceptAsync(Loopback.Deadline());
        var connect = DataPlaneConnection.ConnectAsync(listener.LocalEndPoint, _runId, 0, Loopback.TcpOnly with { Tls = _otherCluster }, Loopback.Deadline());
        var refused = await Assert.ThrowsAsync<DataPlaneException>(() => accept);
        Assert.Equal("Certificate", refused.Field);
        // Each side refuses the other: neither certificate chains to the other's CA.
        Assert.Contains("does not chain to this cluster's CA", refused.Message + refused.InnerException?.Message, StringComparison.Ordinal);
        Assert.Equal("Certificate", (await Assert.ThrowsAsync<DataPlaneException>(() => connect)).Field);
    }

    [Fact]
    public async Task Should_refuse_a_plain_client_before_it_may_say_anything()
    {
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, _runId, StarReducer.CoordinatorRank, Loopback.TcpOnly with { Tls = _cluster });
        var accept = listener.AcceptAsync(Loopback.Deadline());
        using var raw = await RawPeer.ConnectAsync(listener.LocalEndPoint);
        // A well-formed Hello of the right run: without TLS it is not a ClientHello, and the server drops the socket.
        var hello = raw.HandshakeAsync(_runId, rank: 0);
        Assert.Equal("Certificate", (await Assert.ThrowsAsync<DataPlaneException>(() => accept)).Field);
        await Assert.ThrowsAnyAsync<Exception>(() => hello);
        // The plain client of DataPlaneConnection fails too, and so does a TLS client against a plain server.
        var accept2 = listener.AcceptAsync(Loopback.Deadline());
        await Assert.ThrowsAnyAsync<IOException>(() => DataPlaneConnection.ConnectAsync(listener.LocalEndPoint, _runId, 0, Loopback.TcpOnly, Loopback.Deadline()));
        await Assert.ThrowsAsync<DataPlaneException>(() => accept2);
        using var plain = DataPlaneListener.Start(Loopback.AnyPort, _runId, StarReducer.CoordinatorRank, Loopback.TcpOnly);
        var accept3 = plain.AcceptAsync(Loopback.Deadline());
        await Assert.ThrowsAnyAsync<IOException>(() => DataPlaneConnection.ConnectAsync(plain.LocalEndPoint, _runId, 0, Loopback.TcpOnly with { Tls = _cluster }, Loopback.Deadline()));
        await Assert.ThrowsAsync<DataPlaneException>(() => accept3);
    }

    public void Dispose()
    {
        _cluster.Dispose();
        _otherCluster.Dispose();
        _certificates.Dispose();
    }
}
