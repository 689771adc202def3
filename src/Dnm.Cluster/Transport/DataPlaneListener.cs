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
    /// Accepts the next connection and runs the server side of the handshake (inside a TLS session first, with
    /// <see cref="DataPlaneOptions.Tls"/>: a peer without a certificate of the cluster's CA is refused before it
    /// may say anything). A peer with the wrong run id or protocol version is told why and closed, and a peer that completes no handshake within
    /// <see cref="DataPlaneOptions.HandshakeTimeout"/> is closed: either way this call throws <see cref="DataPlaneException"/>;
    /// the listener stays usable, so callers may log and accept again. When the options allow it, the
    /// handshake offers the client a shared-memory channel (see <see cref="DataPlaneOptions.SharedMemoryBytes"/>).
    /// </summary>
    public async Task<DataPlaneConnection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var socket = await _socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
        return await HandshakeAsync(socket, (RunId, LocalRank), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Accepts connections into <paramref name="accepted"/> until it holds <paramref name="count"/>. Every handshake runs on
    /// its own, with its own timeout: a peer that connects and says nothing (a port scanner, a health probe, a stray
    /// client) holds up no other, and is refused on its own timeout. Refused peers (that one, a wrong run id, a bad
    /// frame) go to <paramref name="refused"/> and the accepting goes on. The caller owns the connections in
    /// <paramref name="accepted"/>, also when this throws (cancelled: <see cref="OperationCanceledException"/>).
    /// <paramref name="identity"/>, when given, is the run id the handshakes expect and the rank this side announces instead
    /// of the listener's own: a worker's one listener serves every world it joins, with that world's id and its rank in it.
    /// </summary>
    public async Task AcceptManyAsync(int count, ICollection<DataPlaneConnection> accepted, Action<DataPlaneException> refused,
        CancellationToken cancellationToken, (Guid RunId, int Rank)? identity = null)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var handshakes = new List<Task<DataPlaneConnection>>();
        var next = _socket.AcceptAsync(stop.Token).AsTask();
        try
        {
            while (accepted.Count < count)
            {
                var done = await Task.WhenAny(handshakes.Append<Task>(next)).ConfigureAwait(false);
                if (done == next)
                {
                    handshakes.Add(HandshakeAsync(await next.ConfigureAwait(false), identity ?? (RunId, LocalRank), stop.Token));
                    next = _socket.AcceptAsync(stop.Token).AsTask();
                    continue;
                }
                var handshake = (Task<DataPlaneConnection>)done;
                handshakes.Remove(handshake);
                try
                {
                    accepted.Add(await handshake.ConfigureAwait(false));
                }
                catch (DataPlaneException e)
                {
                    refused(e);
                }
            }
        }
        finally
        {
            // Handshakes still under way (a stray beside the last rank) are abandoned: their sockets close.
            await stop.CancelAsync().ConfigureAwait(false);
            foreach (var task in handshakes.Append<Task>(next))
            {
                try
                {
                    await task.ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
                {
                }
                if (task is Task<DataPlaneConnection> { IsCompletedSuccessfully: true } late) late.Result.Dispose();
                if (task is Task<Socket> { IsCompletedSuccessfully: true } socket) socket.Result.Dispose();
            }
        }
    }

    /// <summary>The server side of the handshake on an accepted socket; the socket is closed if it fails.</summary>
    private async Task<DataPlaneConnection> HandshakeAsync(Socket socket, (Guid RunId, int Rank) identity, CancellationToken cancellationToken)
    {
        var peer = socket.RemoteEndPoint?.ToString() ?? "an unknown peer";
        Stream? stream = null;
        try
        {
            DataPlaneConnection.Configure(socket, _options);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.HandshakeTimeout);
            try
            {
                stream = await DataPlaneStreams.ServerAsync(socket, _options, peer, timeout.Token).ConfigureAwait(false);
                var handshake = await DataPlaneHandshake.ServerAsync(stream, socket.RemoteEndPoint, identity.RunId, identity.Rank, _options, timeout.Token).ConfigureAwait(false);
                return new DataPlaneConnection(socket, stream, identity.RunId, identity.Rank, handshake);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new DataPlaneException(peer, "Handshake",
                    $"{peer} connected to the data plane but completed no handshake within {_options.HandshakeTimeout.TotalSeconds:0.#} s; closed it");
            }
            catch (Exception e) when (e is SocketException or IOException and not DataPlaneException)
            {
                throw new DataPlaneException(peer, "Connection", $"{peer} failed during the data-plane handshake: {e.Message}", e);
            }
        }
        catch
        {
            if (stream is not null) await stream.DisposeAsync().ConfigureAwait(false);
            socket.Dispose();
            throw;
        }
    }

    public void Dispose() => _socket.Dispose();
}
