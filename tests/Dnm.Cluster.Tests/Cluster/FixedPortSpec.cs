using System.Net;
using Dnm.Cluster.Tests.Support;
using Dnm.Cluster.Transport;
using Dnm.Tests.Shared;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>DNM_DATA_PLANE_PORT: every world re-binds the same port right after the last world's connections closed.</summary>
public sealed class FixedPortSpec
{
    [Fact]
    public async Task Should_rebind_a_fixed_data_plane_port_for_the_next_world()
    {
        var port = TestPorts.Next();
        for (var world = 0; world < 3; world++)
        {
            var id = Guid.NewGuid();
            using var listener = DataPlaneListener.Start(new IPEndPoint(IPAddress.Loopback, port), id, StarReducer.CoordinatorRank);
            var accept = listener.AcceptAsync();
            using var client = await DataPlaneConnection.ConnectAsync(listener.LocalEndPoint, id, 0);
            using var server = await accept;
            await client.SendAsync(FrameKind.Gradients, world, new float[] { 1, 2, 3 });
            await server.ReceiveAsync(new float[3]);
            // The coordinator closes first, as CloseWorld does: its side of the connection goes to TIME_WAIT.
            server.Dispose();
        }
    }
}
