using System.Net.Sockets;
using System.Text;

namespace Dnm.Cluster.Transport;

/// <summary>
/// The first exchange on every data-plane socket: the client sends Hello (its run id, rank and, in the
/// header, the protocol version); the server answers Welcome (its own run id and rank) or Reject with a
/// "field\nreason" payload, so both sides fail with the same clear message. Not a hot path: it allocates.
/// </summary>
internal static class DataPlaneHandshake
{
    private const int MaxReasonBytes = 4096;

    /// <summary>Client side; returns the server's rank.</summary>
    public static async Task<int> ClientAsync(Socket socket, Guid runId, int localRank, CancellationToken cancellationToken)
    {
        var server = $"data-plane server at {socket.RemoteEndPoint}";
        var buffer = new byte[FrameHeader.Size];
        new FrameHeader(runId, 0, localRank, FrameKind.Hello, 0, 0).WriteTo(buffer);
        await socket.SendAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);

        await ReceiveExactlyAsync(socket, buffer, server, cancellationToken).ConfigureAwait(false);
        var reply = FrameHeader.ReadFrom(buffer, server);
        switch (reply.Kind)
        {
            case FrameKind.Reject:
                var reason = new byte[Math.Clamp(reply.PayloadBytes, 0, MaxReasonBytes)];
                await ReceiveExactlyAsync(socket, reason, server, cancellationToken).ConfigureAwait(false);
                var text = Encoding.UTF8.GetString(reason);
                var split = text.IndexOf('\n', StringComparison.Ordinal);
                var field = split < 0 ? "Handshake" : text[..split];
                throw new DataPlaneException(server, field,
                    $"The {server} rejected the handshake of rank {localRank}: {(split < 0 ? text : text[(split + 1)..])}");
            case FrameKind.Welcome when reply.RunId != runId:
                throw new DataPlaneException(server, nameof(FrameHeader.RunId),
                    $"The {server} belongs to run {reply.RunId}; this node (rank {localRank}) to run {runId}.");
            case FrameKind.Welcome:
                return reply.Rank;
            default:
                throw new DataPlaneException(server, nameof(FrameHeader.Kind), $"The {server} answered the handshake with {reply.Kind}.");
        }
    }

    /// <summary>Server side; returns the client's rank, or rejects (telling the client why) and throws.</summary>
    public static async Task<int> ServerAsync(Socket socket, Guid runId, int localRank, CancellationToken cancellationToken)
    {
        var client = $"data-plane client at {socket.RemoteEndPoint}";
        var buffer = new byte[FrameHeader.Size];
        await ReceiveExactlyAsync(socket, buffer, client, cancellationToken).ConfigureAwait(false);
        DataPlaneException? problem;
        FrameHeader hello = default;
        try
        {
            hello = FrameHeader.ReadFrom(buffer, client);
            client = $"data-plane client rank {hello.Rank} at {socket.RemoteEndPoint}";
            problem = hello switch
            {
                { Kind: not FrameKind.Hello } => new(client, nameof(FrameHeader.Kind), $"The {client} opened with {hello.Kind} instead of Hello."),
                { PayloadBytes: not 0 } => new(client, nameof(FrameHeader.PayloadBytes), $"The {client} sent a Hello with {hello.PayloadBytes} payload bytes."),
                _ when hello.RunId != runId => new(client, nameof(FrameHeader.RunId), $"Run id mismatch: the {client} is in run {hello.RunId}, this server (rank {localRank}) in run {runId}."),
                _ => null,
            };
        }
        catch (DataPlaneException ex)
        {
            problem = ex;
        }

        if (problem is not null)
        {
            await TrySendRejectAsync(socket, runId, localRank, problem, cancellationToken).ConfigureAwait(false);
            throw problem;
        }

        new FrameHeader(runId, 0, localRank, FrameKind.Welcome, 0, 0).WriteTo(buffer);
        await socket.SendAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        return hello.Rank;
    }

    private static async Task TrySendRejectAsync(Socket socket, Guid runId, int localRank, DataPlaneException problem, CancellationToken cancellationToken)
    {
        var reason = Encoding.UTF8.GetBytes($"{problem.Field}\n{problem.Message}");
        if (reason.Length > MaxReasonBytes)
            Array.Resize(ref reason, MaxReasonBytes);
        var frame = new byte[FrameHeader.Size + reason.Length];
        new FrameHeader(runId, 0, localRank, FrameKind.Reject, reason.Length, Crc32C.Compute(reason)).WriteTo(frame);
        reason.CopyTo(frame, FrameHeader.Size);
        try
        {
            await socket.SendAsync(frame, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            // The client may already be gone; the server-side exception still reports the problem.
        }
    }

    private static async Task ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, string peer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
                throw new DataPlaneException(peer, "Connection", $"The {peer} closed the connection during the handshake.");
            buffer = buffer[n..];
        }
    }
}
