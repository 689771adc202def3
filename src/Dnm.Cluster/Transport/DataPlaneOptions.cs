namespace Dnm.Cluster.Transport;

/// <summary>Socket settings of the data plane. Defaults are what the benchmark was measured with.</summary>
public sealed record DataPlaneOptions
{
    public static DataPlaneOptions Default { get; } = new();

    /// <summary>
    /// SO_SNDBUF and SO_RCVBUF in bytes; 0 leaves the OS (autotuning) in charge. 4 MiB lets one 4 MiB
    /// gradient frame sit in the kernel while the receiver is busy summing, without stalling the sender.
    /// Linux caps it at net.core.[rw]mem_max.
    /// </summary>
    public int SocketBufferBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>How long a handshake may take before the socket is dropped (a stray client must not hang accept).</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Payload bytes of each direction's shared-memory segment, offered in the handshake when this side
    /// accepts the connection (a connecting side only needs it above 0 to take an offer); 0 disables the
    /// shared-memory path, so every payload goes over TCP. Peers on one host then move a payload with one
    /// copy in and one out instead of through the kernel's loopback. 8 MiB holds the paper model's
    /// statistics (855 k floats, 3.4 MB) with room to spare; larger payloads take TCP. Each connection
    /// reserves twice this much of the shared-memory directory (tmpfs, i.e. RAM) while it is open.
    /// </summary>
    public int SharedMemoryBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>
    /// Where the segments' files are created and looked for: a tmpfs both peers see only when they share
    /// a host and an IPC namespace. The names are unlinked as soon as both sides have mapped them.
    /// </summary>
    public string SharedMemoryDirectory { get; init; } = "/dev/shm";

    /// <summary>
    /// Mutual TLS on every connection (both sides present a certificate of the cluster's CA, and the session
    /// encrypts and authenticates every byte on the socket); null: plain TCP, as `dnm train --workers` runs over
    /// loopback in one process. A `dnm node` started with --tls-cert, --tls-key and --tls-ca sets it.
    /// </summary>
    public ClusterTls? Tls { get; init; }

    /// <summary>
    /// These options with shared-memory segments of at least <paramref name="payloadBytes"/> (rounded up to whole MiB) where the
    /// configured size is smaller, so the largest frame of a reduction takes shared memory; disabled stays disabled.
    /// </summary>
    public DataPlaneOptions WithSharedMemoryFor(long payloadBytes)
    {
        if (SharedMemoryBytes <= 0) return this;
        const long mebibyte = 1 << 20;
        var needed = Math.Min((payloadBytes + mebibyte - 1) / mebibyte * mebibyte, int.MaxValue / 2);
        return needed > SharedMemoryBytes ? this with { SharedMemoryBytes = (int)needed } : this;
    }
}
