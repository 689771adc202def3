using System.Diagnostics;
using System.Net.Sockets;
using Dnm.Cluster.Transport;

namespace Dnm.Cluster.Tests.Transport;

/// <summary>
/// A world forms while something else holds a connection to the data-plane port and says nothing (a port scanner, a
/// load balancer's probe, a stuck client): that connection is refused on its own handshake timeout, and the ranks'
/// handshakes neither wait for it nor fail because of it.
/// </summary>
public sealed class IdleConnectionSpec
{
    private readonly Guid runId = Guid.NewGuid();

    [Fact]
    public async Task An_idle_connection_should_not_hold_up_the_ranks_and_should_be_closed_once_the_world_formed()
    {
        // A long handshake timeout: had the ranks waited for the idle peer, forming would take 30 s.
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, runId, StarReducer.CoordinatorRank,
            Loopback.TcpOnly with { HandshakeTimeout = TimeSpan.FromSeconds(30) });
        using var idle = new TcpClient();
        await idle.ConnectAsync(listener.LocalEndPoint);
        var accepted = new List<DataPlaneConnection>();
        var refused = new List<DataPlaneException>();
        var clock = Stopwatch.StartNew();
        var forming = listener.AcceptManyAsync(2, accepted, refused.Add, Loopback.Deadline());
        await Task.Delay(200); // the idle peer is accepted first
        using var rank0 = await DataPlaneConnection.ConnectAsync(listener.LocalEndPoint, runId, 0, Loopback.TcpOnly, Loopback.Deadline());
        using var rank1 = await DataPlaneConnection.ConnectAsync(listener.LocalEndPoint, runId, 1, Loopback.TcpOnly, Loopback.Deadline());
        await forming;

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the world took {clock.Elapsed.TotalSeconds:F1} s to form");
        Assert.Equal([0, 1], accepted.Select(c => c.RemoteRank).Order());
        Assert.Empty(refused);
        // Its handshake was abandoned with the world formed: the server closed it (a read sees the end of the stream).
        idle.ReceiveTimeout = 5_000;
        Assert.Equal(0, await idle.GetStream().ReadAsync(new byte[64]));
        foreach (var c in accepted) c.Dispose();
    }

    [Fact]
    public async Task An_idle_connection_should_be_refused_on_its_own_timeout_while_the_world_still_forms()
    {
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, runId, StarReducer.CoordinatorRank,
            Loopback.TcpOnly with { HandshakeTimeout = TimeSpan.FromMilliseconds(300) });
        using var idle = new TcpClient();
        await idle.ConnectAsync(listener.LocalEndPoint);
        var accepted = new List<DataPlaneConnection>();
        var refused = new List<DataPlaneException>();
        var forming = listener.AcceptManyAsync(1, accepted, e => { lock (refused) refused.Add(e); }, Loopback.Deadline());
        // The rank connects only after the idle peer's timeout: the listener must still be accepting.
        await Task.Delay(1_000);
        lock (refused)
        {
            var e = Assert.Single(refused);
            Assert.Equal("Handshake", e.Field);
            Assert.Contains("completed no handshake within 0.3 s", e.Message);
        }
        Assert.False(forming.IsCompleted);
        using var rank0 = await DataPlaneConnection.ConnectAsync(listener.LocalEndPoint, runId, 0, Loopback.TcpOnly, Loopback.Deadline());
        await forming;
        Assert.Equal(0, Assert.Single(accepted).RemoteRank);
        accepted[0].Dispose();
    }
}
