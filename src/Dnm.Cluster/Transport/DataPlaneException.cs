namespace Dnm.Cluster.Transport;

/// <summary>
/// A data-plane failure that names the peer and the frame field at fault ("Checksum", "RunId", "Magic",
/// "Version", "Rank", "Kind", "Step", "PayloadBytes", "SharedMemory", "Connection", ...), so a log line alone says which
/// worker misbehaved and how. The connection that raised it is faulted and closed.
/// </summary>
public sealed class DataPlaneException : IOException
{
    public DataPlaneException(string peer, string field, string message, Exception? inner = null)
        : base(message, inner)
    {
        Peer = peer;
        Field = field;
    }

    /// <summary>The remote side, e.g. "rank 2 at 10.0.0.7:41000".</summary>
    public string Peer { get; }

    /// <summary>The header field (or "Connection") that failed validation.</summary>
    public string Field { get; }
}
