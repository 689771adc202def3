using System.Net;
using System.Text;

namespace Dnm.Cluster.Transport;

/// <summary>What a handshake settled: the peer's rank and, when both sides mapped it, the shared-memory channel.</summary>
/// <param name="RemoteRank">The rank the peer announced.</param>
/// <param name="SharedMemory">The channel for large payloads, or null: every payload goes over TCP.</param>
/// <param name="Fallback">Why there is no channel (disabled, another host, ...); null when there is one.</param>
internal sealed record HandshakeResult(int RemoteRank, SharedMemoryChannel? SharedMemory, string? Fallback);

/// <summary>
/// The first exchange on every data-plane socket: the client sends Hello (its run id, rank and, in the
/// header, the protocol version); the server answers Welcome (its own run id and rank) or Reject with a
/// "field\nreason" payload, so both sides fail with the same clear message. A Welcome with a payload offers
/// shared memory (<see cref="SharedMemoryOffer"/>); the client then answers SharedMemoryReply, empty when it
/// mapped the segments, else with its reason, and both sides use TCP for every payload. The offered files
/// are unlinked before the handshake returns, whatever the outcome. Not a hot path: it allocates.
/// With <see cref="DataPlaneOptions.Tls"/> this exchange runs inside the TLS session that
/// <see cref="DataPlaneStreams"/> opened first, so only a peer holding a certificate of the cluster's CA gets this far.
/// </summary>
internal static class DataPlaneHandshake
{
    private const int MaxReasonBytes = 4096;

    /// <summary>Client side; returns the server's rank and the shared-memory channel, if one was agreed.</summary>
    public static async Task<HandshakeResult> ClientAsync(Stream stream, EndPoint? remote, Guid runId, int localRank, DataPlaneOptions options, CancellationToken cancellationToken)
    {
        var server = $"data-plane server at {remote}";
        var buffer = new byte[FrameHeader.Size];
        new FrameHeader(runId, 0, localRank, FrameKind.Hello, 0, 0).WriteTo(buffer);
        await stream.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);

        await ReceiveExactlyAsync(stream, buffer, server, cancellationToken).ConfigureAwait(false);
        var reply = FrameHeader.ReadFrom(buffer, server);
        switch (reply.Kind)
        {
            case FrameKind.Reject:
                var text = Encoding.UTF8.GetString(await ReceivePayloadAsync(stream, reply, server, cancellationToken).ConfigureAwait(false));
                var split = text.IndexOf('\n', StringComparison.Ordinal);
                var field = split < 0 ? "Handshake" : text[..split];
                throw new DataPlaneException(server, field,
                    $"The {server} rejected the handshake of rank {localRank}: {(split < 0 ? text : text[(split + 1)..])}");
            case FrameKind.Welcome when reply.RunId != runId:
                throw new DataPlaneException(server, nameof(FrameHeader.RunId),
                    $"The {server} belongs to run {reply.RunId}; this node (rank {localRank}) to run {runId}.");
            case FrameKind.Welcome when reply.PayloadBytes == 0:
                return new HandshakeResult(reply.Rank, null, "the server offered no shared memory");
            case FrameKind.Welcome:
                var offer = await ReceivePayloadAsync(stream, reply, server, cancellationToken).ConfigureAwait(false);
                var channel = SharedMemoryChannel.TryAttach(offer, options, out var problem);
                try
                {
                    var answer = Encoding.UTF8.GetBytes(problem ?? "");
                    await SendFrameAsync(stream, new FrameHeader(runId, 0, localRank, FrameKind.SharedMemoryReply, answer.Length, Crc32C.Compute(answer)), answer, cancellationToken)
                        .ConfigureAwait(false);
                    return new HandshakeResult(reply.Rank, channel, problem);
                }
                catch
                {
                    channel?.Dispose();
                    throw;
                }
            default:
                throw new DataPlaneException(server, nameof(FrameHeader.Kind), $"The {server} answered the handshake with {reply.Kind}.");
        }
    }

    /// <summary>Server side; returns the client's rank and channel, or rejects (telling the client why) and throws.</summary>
    public static async Task<HandshakeResult> ServerAsync(Stream stream, EndPoint? remote, Guid runId, int localRank, DataPlaneOptions options, CancellationToken cancellationToken)
    {
        var client = $"data-plane client at {remote}";
        var buffer = new byte[FrameHeader.Size];
        await ReceiveExactlyAsync(stream, buffer, client, cancellationToken).ConfigureAwait(false);
        DataPlaneException? problem;
        FrameHeader hello = default;
        try
        {
            hello = FrameHeader.ReadFrom(buffer, client);
            client = $"data-plane client rank {hello.Rank} at {remote}";
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
            await TrySendRejectAsync(stream, runId, localRank, problem, cancellationToken).ConfigureAwait(false);
            throw problem;
        }

        // Disposing the offer unlinks its files on every path out of here: accepted, declined or failed.
        using var offer = SharedMemoryOffer.TryCreate(options, runId, localRank, hello.Rank, out var unavailable);
        var payload = offer?.Encode() ?? [];
        await SendFrameAsync(stream, new FrameHeader(runId, 0, localRank, FrameKind.Welcome, payload.Length, Crc32C.Compute(payload)), payload, cancellationToken)
            .ConfigureAwait(false);
        if (offer is null)
            return new HandshakeResult(hello.Rank, null, unavailable);

        await ReceiveExactlyAsync(stream, buffer, client, cancellationToken).ConfigureAwait(false);
        var reply = FrameHeader.ReadFrom(buffer, client);
        if (reply.Kind != FrameKind.SharedMemoryReply)
            throw new DataPlaneException(client, nameof(FrameHeader.Kind), $"The {client} answered the shared-memory offer with {reply.Kind}.");
        if (reply.RunId != runId || reply.Rank != hello.Rank)
            throw new DataPlaneException(client, reply.RunId != runId ? nameof(FrameHeader.RunId) : nameof(FrameHeader.Rank),
                $"The {client} answered the shared-memory offer as run {reply.RunId}, rank {reply.Rank}.");
        var declined = await ReceivePayloadAsync(stream, reply, client, cancellationToken).ConfigureAwait(false);
        return declined.Length == 0
            ? new HandshakeResult(hello.Rank, offer.Accept(), null)
            : new HandshakeResult(hello.Rank, null, $"the client declined shared memory: {Encoding.UTF8.GetString(declined)}");
    }

    private static async Task SendFrameAsync(Stream stream, FrameHeader header, byte[] payload, CancellationToken cancellationToken)
    {
        var frame = new byte[FrameHeader.Size + payload.Length];
        header.WriteTo(frame);
        payload.CopyTo(frame, FrameHeader.Size);
        await stream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
    }

    // Handshake payloads are short texts; the checksum is checked like any frame's.
    private static async Task<byte[]> ReceivePayloadAsync(Stream stream, FrameHeader header, string peer, CancellationToken cancellationToken)
    {
        if (header.PayloadBytes > MaxReasonBytes)
            throw new DataPlaneException(peer, nameof(FrameHeader.PayloadBytes),
                $"The {peer} sent a {header.Kind} handshake frame of {header.PayloadBytes} bytes (at most {MaxReasonBytes}).");
        var payload = new byte[header.PayloadBytes];
        await ReceiveExactlyAsync(stream, payload, peer, cancellationToken).ConfigureAwait(false);
        if (Crc32C.Compute(payload) != header.Checksum)
            throw new DataPlaneException(peer, nameof(FrameHeader.Checksum), $"The {peer} sent a {header.Kind} handshake frame with a bad payload checksum.");
        return payload;
    }

    private static async Task TrySendRejectAsync(Stream stream, Guid runId, int localRank, DataPlaneException problem, CancellationToken cancellationToken)
    {
        var reason = Encoding.UTF8.GetBytes($"{problem.Field}\n{problem.Message}");
        if (reason.Length > MaxReasonBytes)
            Array.Resize(ref reason, MaxReasonBytes);
        var frame = new byte[FrameHeader.Size + reason.Length];
        new FrameHeader(runId, 0, localRank, FrameKind.Reject, reason.Length, Crc32C.Compute(reason)).WriteTo(frame);
        reason.CopyTo(frame, FrameHeader.Size);
        try
        {
            await stream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The client may already be gone; the server-side exception still reports the problem.
        }
    }

    private static async Task ReceiveExactlyAsync(Stream stream, Memory<byte> buffer, string peer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            var n = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (n == 0)
                throw new DataPlaneException(peer, "Connection", $"The {peer} closed the connection during the handshake.");
            buffer = buffer[n..];
        }
    }
}
