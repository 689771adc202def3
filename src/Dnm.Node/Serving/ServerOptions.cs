using System.Globalization;
using System.Net;
using Dnm.Core.Config;

namespace Dnm.Node.Serving;

/// <summary>
/// The limits and address of the map server (`dnm serve`, `dnm explore`). Every request is bounded: its body
/// (<see cref="MaxBodyBytes"/>), the images in it (<see cref="MaxBatch"/>), each image's declared pixels
/// (<see cref="MaxImagePixels"/>), and how many placements run or wait at once (<see cref="MaxConcurrency"/>,
/// <see cref="MaxQueue"/>; beyond them a request gets 503 at once), so memory is bounded by
/// (concurrency + queue) × body.
/// </summary>
public sealed record ServerOptions
{
    public const int DefaultPort = 8080;

    /// <summary>Addresses to bind; empty for every interface.</summary>
    public IReadOnlyList<IPAddress> Addresses { get; init; } = [];
    /// <summary>TCP port; 0 picks a free one (tests).</summary>
    public int Port { get; init; } = DefaultPort;
    public long MaxBodyBytes { get; init; } = 16L << 20;
    public int MaxBatch { get; init; } = 256;
    public long MaxImagePixels { get; init; } = 16_000_000;
    /// <summary>Placements computed at once (each holds one model replica).</summary>
    public int MaxConcurrency { get; init; } = 2;
    /// <summary>Placements allowed to wait for a turn; the next one is refused with 503.</summary>
    public int MaxQueue { get; init; } = 8;
    /// <summary>Model replicas (0: one per core, at most <see cref="MaxConcurrency"/>).</summary>
    public int Replicas { get; init; }

    public int ResolvedReplicas => Replicas > 0 ? Replicas : Math.Clamp(Environment.ProcessorCount, 1, MaxConcurrency);

    public ServerOptions Validated()
    {
        var p = new List<string>();
        if (Port is < 0 or > 65535) p.Add($"port must be 0..65535, got {Port}");
        if (MaxBodyBytes < 1024) p.Add($"max-body must be at least 1KB, got {MaxBodyBytes} bytes");
        if (MaxBatch < 1) p.Add($"max-batch must be positive, got {MaxBatch}");
        if (MaxImagePixels < 1) p.Add($"max-image-pixels must be positive, got {MaxImagePixels}");
        if (MaxConcurrency < 1) p.Add($"max-concurrency must be positive, got {MaxConcurrency}");
        if (MaxQueue < 0) p.Add($"max-queue must not be negative, got {MaxQueue}");
        if (Replicas < 0) p.Add($"replicas must not be negative, got {Replicas}");
        if (p.Count > 0) throw new ConfigException(string.Join("; ", p));
        return this;
    }

    /// <summary>Parses a size such as 16MB, 512KB, 1GB or a plain byte count (binary units: 1KB = 1024 bytes).</summary>
    public static long ParseSize(string text, string flag)
    {
        var t = text.Trim().ToUpperInvariant();
        long unit = 1;
        foreach (var (suffix, factor) in new[] { ("GB", 1L << 30), ("MB", 1L << 20), ("KB", 1L << 10), ("G", 1L << 30), ("M", 1L << 20), ("K", 1L << 10), ("B", 1L) })
        {
            if (!t.EndsWith(suffix, StringComparison.Ordinal)) continue;
            unit = factor;
            t = t[..^suffix.Length];
            break;
        }
        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n <= 0 || n > long.MaxValue / unit)
            throw new ConfigException($"{flag} must be a size such as 16MB, 512KB or 1048576, got '{text}'");
        return n * unit;
    }
}
