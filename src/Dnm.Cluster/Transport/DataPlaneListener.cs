using System.Net;
using System.Net.Sockets;

namespace Dnm.Cluster.Transport;

/// <summary>
/// Accepts data-plane connections on host:port. Port 0 binds an ephemeral port; <see cref="LocalEndPoint"/>
/// is what to advertise over Akka (replace 0.0.0.0 with a routable address when binding to all interfaces).
/// </summary>
public sealed class DataPlaneListener : IDisposable
{
    private readonly Socket _socket;
    private readonly DataPlaneOptions _options;

    private DataPlaneListener(Socket socket, Guid runId, int localRank, DataPlaneOptions options)
    {
        _socket = socket;
        _options = options;
        RunId = runId;
        LocalRank = localRank;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
    }

    public Guid RunId { get; }

    public int LocalRank { get; }

    /// <summary>The bound address, with the real port when 0 was asked for.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Binds and starts listening.</summary>
    public static DataPlaneListener Start(IPEndPoint bindTo, Guid runId, int localRank, DataPlaneOptions? options = null, int backlog = 64)
    {
        var socket = new Socket(bindTo.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            options ??= DataPlaneOptions.Default;
            // Accepted sockets inherit the listener's buffer sizes; setting them before listen() lets the
            // window scale be negotiated for the large buffer.
            DataPlaneConnection.Configure(socket, options);
            socket.Bind(bindTo);
            socket.Listen(backlog);
            return new DataPlaneListener(socket, runId, localRank, options);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Accepts the next connection and runs the server side of the handshake. A peer with the wrong run id
    /// or protocol version is told why and closed, and this call throws <see cref="DataPlaneException"/>;
    /// the listener stays usable, so callers may log and accept again. When the options allow it, the
    /// handshake offers the client a shared-memory channel (see <see cref="DataPlaneOptions.SharedMemoryBytes"/>).
    /// </summary>
    public async Task<DataPlaneConnection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var socket = await _socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            DataPlaneConnection.Configure(socket, _options);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.HandshakeTimeout);
            var handshake = await DataPlaneHandshake.ServerAsync(socket, RunId, LocalRank, _options, timeout.Token).ConfigureAwait(false);
            return new DataPlaneConnection(socket, RunId, LocalRank, handshake);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Dispose() => _socket.Dispose();
}
