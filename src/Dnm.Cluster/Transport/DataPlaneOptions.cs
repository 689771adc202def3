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
}
