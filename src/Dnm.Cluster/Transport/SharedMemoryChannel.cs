using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Dnm.Cluster.Transport;

/// <summary>
/// The shared-memory fast path of one data-plane connection: a segment per direction, mapped by both
/// processes. Large payloads are copied through it while their headers still go over TCP, which keeps the
/// frame order, the checks and the failure detection of the socket. Negotiated in the handshake
/// (<see cref="SharedMemoryOffer"/>); a connection without one sends every payload over TCP.
/// </summary>
internal sealed class SharedMemoryChannel(SharedMemorySegment outgoing, SharedMemorySegment incoming) : IDisposable
{
    /// <summary>This side writes, the peer reads.</summary>
    public SharedMemorySegment Outgoing { get; } = outgoing;

    /// <summary>The peer writes, this side reads.</summary>
    public SharedMemorySegment Incoming { get; } = incoming;

    /// <summary>The largest payload that can travel through the channel (both directions are the same size).</summary>
    public int Capacity => Math.Min(Outgoing.Capacity, Incoming.Capacity);

    public void Dispose()
    {
        Outgoing.Dispose();
        Incoming.Dispose();
    }

    /// <summary>
    /// Client side: maps the segments of the server's offer (the Welcome payload) and unlinks them. Returns
    /// null and why when this side cannot: disabled, another host or IPC namespace (no such file), a stale
    /// or foreign file (nonce), a malformed offer. Never throws: TCP always works.
    /// </summary>
    public static SharedMemoryChannel? TryAttach(ReadOnlySpan<byte> offer, DataPlaneOptions options, out string? problem)
    {
        if (options.SharedMemoryBytes <= 0)
        {
            problem = "shared memory is disabled on the client (SharedMemoryBytes = 0)";
            return null;
        }
        if (!SharedMemoryOffer.TryParse(offer, out var capacity, out var nonce, out var clientToServer, out var serverToClient))
        {
            problem = "the server's shared-memory offer is malformed";
            return null;
        }
        SharedMemorySegment? outgoing = null;
        try
        {
            outgoing = SharedMemorySegment.Open(Path.Combine(options.SharedMemoryDirectory, clientToServer), capacity, nonce);
            var incoming = SharedMemorySegment.Open(Path.Combine(options.SharedMemoryDirectory, serverToClient), capacity, nonce);
            // Both sides have mapped both files now; the names are no longer needed (the server unlinks too).
            outgoing.Unlink();
            incoming.Unlink();
            problem = null;
            return new SharedMemoryChannel(outgoing, incoming);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException or NotSupportedException)
        {
            outgoing?.Dispose();
            problem = $"cannot map the server's shared-memory segment (another host or IPC namespace?): {ex.Message}";
            return null;
        }
    }
}

/// <summary>
/// Server side of the shared-memory negotiation: the two segments it created for one client, named with
/// the run id, both ranks and a random token, and stamped with a random nonce. The Welcome frame carries
/// <see cref="Encode"/>d names, capacity and nonce; the client answers whether it mapped them. Disposing
/// the offer unlinks both files whatever happened, and unmaps them unless <see cref="Accept"/> took them.
/// </summary>
internal sealed class SharedMemoryOffer : IDisposable
{
    private const string Prefix = "dnm-dp-";

    private readonly byte[] _nonce;
    private SharedMemorySegment? _clientToServer;
    private SharedMemorySegment? _serverToClient;

    private SharedMemoryOffer(SharedMemorySegment clientToServer, SharedMemorySegment serverToClient, byte[] nonce)
    {
        _clientToServer = clientToServer;
        _serverToClient = serverToClient;
        _nonce = nonce;
    }

    /// <summary>Creates both segments, or returns null and why (disabled, no directory, no space).</summary>
    public static SharedMemoryOffer? TryCreate(DataPlaneOptions options, Guid runId, int serverRank, int clientRank, out string? problem)
    {
        if (options.SharedMemoryBytes <= 0)
        {
            problem = "shared memory is disabled on the server (SharedMemoryBytes = 0)";
            return null;
        }
        if (!Directory.Exists(options.SharedMemoryDirectory))
        {
            problem = $"the server has no {options.SharedMemoryDirectory}";
            return null;
        }
        var nonce = RandomNumberGenerator.GetBytes(SharedMemorySegment.NonceBytes);
        var stem = Path.Combine(options.SharedMemoryDirectory,
            FormattableString.Invariant($"{Prefix}{runId:N}-s{serverRank}-c{clientRank}-{RandomNumberGenerator.GetHexString(16, lowercase: true)}"));
        SharedMemorySegment? clientToServer = null;
        try
        {
            clientToServer = SharedMemorySegment.Create(stem + ".c2s", options.SharedMemoryBytes, nonce);
            var serverToClient = SharedMemorySegment.Create(stem + ".s2c", options.SharedMemoryBytes, nonce);
            problem = null;
            return new SharedMemoryOffer(clientToServer, serverToClient, nonce);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            if (clientToServer is not null)
            {
                clientToServer.Unlink();
                clientToServer.Dispose();
            }
            problem = $"the server cannot create a shared-memory segment: {ex.Message}";
            return null;
        }
    }

    /// <summary>The Welcome payload, UTF-8: "capacity\nnonce (32 hex digits)\nclient-to-server name\nserver-to-client name".</summary>
    public byte[] Encode()
    {
        var (c2s, s2c) = Segments();
        return Encoding.UTF8.GetBytes(string.Join('\n',
            c2s.Capacity.ToString(CultureInfo.InvariantCulture), Convert.ToHexString(_nonce), Path.GetFileName(c2s.Path), Path.GetFileName(s2c.Path)));
    }

    internal static bool TryParse(ReadOnlySpan<byte> offer, out int capacity, out byte[] nonce, out string clientToServer, out string serverToClient)
    {
        capacity = 0;
        nonce = [];
        clientToServer = serverToClient = "";
        var parts = Encoding.UTF8.GetString(offer).Split('\n');
        if (parts.Length != 4 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out capacity) || capacity <= 0
            || parts[1].Length != 2 * SharedMemorySegment.NonceBytes || !IsFileName(parts[2]) || !IsFileName(parts[3]))
            return false;
        try
        {
            nonce = Convert.FromHexString(parts[1]);
        }
        catch (FormatException)
        {
            return false;
        }
        (clientToServer, serverToClient) = (parts[2], parts[3]);
        return true;
    }

    // A bare name inside the client's own shared-memory directory: the server never chooses a path.
    private static bool IsFileName(string name)
        => name.StartsWith(Prefix, StringComparison.Ordinal) && name.IndexOfAny(['/', '\\', '\0']) < 0 && !name.Contains("..", StringComparison.Ordinal);

    /// <summary>The client mapped both segments: the server's channel (it writes server-to-client).</summary>
    public SharedMemoryChannel Accept()
    {
        var (c2s, s2c) = Segments();
        _clientToServer = _serverToClient = null;
        c2s.Unlink();
        s2c.Unlink();
        return new SharedMemoryChannel(outgoing: s2c, incoming: c2s);
    }

    private (SharedMemorySegment ClientToServer, SharedMemorySegment ServerToClient) Segments()
        => (_clientToServer ?? throw new ObjectDisposedException(nameof(SharedMemoryOffer)),
            _serverToClient ?? throw new ObjectDisposedException(nameof(SharedMemoryOffer)));

    public void Dispose()
    {
        foreach (var segment in new[] { _clientToServer, _serverToClient })
        {
            if (segment is null)
                continue;
            segment.Unlink();
            segment.Dispose();
        }
        _clientToServer = _serverToClient = null;
    }
}
