using System.Globalization;
using Dnm.Cluster.Transport;

namespace Dnm.Bench;

/// <summary>
/// `Dnm.Bench scaling`: the communication time of one joint step as a function of the number of workers N, for
/// today's star reduction (<see cref="StarReducer"/>: the coordinator receives N payloads, sums them and sends N)
/// and for a ring all-reduce (reduce-scatter then all-gather: 2(N−1) rounds, each moving 1/N of the payload per
/// link). Pure arithmetic from a link bandwidth β and a per-message latency α (docs/BENCHMARKS.md, Cluster: which
/// constants were measured and which assumed); it prints markdown tables, so the numbers in the docs are not typed by hand.
/// Per step a worker all-reduces its soft counts (K floats) and then its statistics (F floats).
/// <code>
/// star(N, b) = 2·N·(b + H)/β + 2α            (N frames into the coordinator's link, then N out)
/// ring(N, b) = 2(N−1)·((b/N + H)/β + α)        (0 for N = 1)
/// </code>
/// </summary>
internal static class ScalingModel
{
    public sealed record Link(string Name, double BytesPerSecond, double LatencySeconds);

    public static double Star(int n, double bytes, Link link) =>
        2.0 * n * (bytes + FrameHeader.Size) / link.BytesPerSecond + 2 * link.LatencySeconds;

    public static double Ring(int n, double bytes, Link link) =>
        n == 1 ? 0 : 2.0 * (n - 1) * ((bytes / n + FrameHeader.Size) / link.BytesPerSecond + link.LatencySeconds);

    /// <summary>The payload above which a ring beats the star for N workers (headers neglected).</summary>
    public static double CrossoverBytes(int n, Link link) =>
        (n - 1) * link.LatencySeconds * link.BytesPerSecond / (n - (n - 1.0) / n);

    public static int Run(string[] args)
    {
        string? Option(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        double Number(string name, double fallback) => Option(name) is { } v ? double.Parse(v, CultureInfo.InvariantCulture) : fallback;
        var floats = Number("--floats", 855_000);
        var softCounts = Number("--soft-counts", 600);
        var workers = (Option("--workers") ?? "1,2,4,8,16,32,64").Split(',').Select(w => int.Parse(w, CultureInfo.InvariantCulture)).ToArray();
        Link[] links =
        [
            // Assumed: a 25 Gbit/s link at line rate, 50 µs per message (one-way latency plus send/receive software).
            new($"{Number("--gbit", 25):0.#} Gbit/s, α {Number("--latency-us", 50):0} µs (assumed)", Number("--gbit", 25) * 1e9 / 8, Number("--latency-us", 50) * 1e-6),
            // Measured (Data plane section): framed throughput 1088–1487 MB/s and 600-float RTT p50 42–74 µs on loopback.
            new($"loopback, measured: {Number("--loop-mbs", 1300):0} MB/s, α {Number("--loop-latency-us", 30):0} µs", Number("--loop-mbs", 1300) * 1e6, Number("--loop-latency-us", 30) * 1e-6),
        ];
        var b = floats * sizeof(float);
        var k = softCounts * sizeof(float);
        Console.WriteLine($"payload: statistics {floats:N0} floats = {b / 1e6:F2} MB, soft counts {softCounts:N0} floats = {k:N0} B; frame header {FrameHeader.Size} B");
        foreach (var link in links)
        {
            Console.WriteLine();
            Console.WriteLine($"**{link.Name}** (ms of communication per joint step)");
            Console.WriteLine();
            Console.WriteLine("| N | star | ring | star soft counts + ring statistics | coordinator's link per step (star) | per link per step (ring) |");
            Console.WriteLine("|---|---|---|---|---|---|");
            foreach (var n in workers)
            {
                var star = Star(n, k, link) + Star(n, b, link);
                var ring = Ring(n, k, link) + Ring(n, b, link);
                var hybrid = Star(n, k, link) + Ring(n, b, link);
                var ringLink = n == 1 ? 0 : 2.0 * (n - 1) / n * (b + k);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {n} | {star * 1e3:F2} | {ring * 1e3:F2} | {hybrid * 1e3:F2} | {n * (b + k) / 1e6:F1} MB in + out | {ringLink / 1e6:F2} MB each way |"));
            }
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ring beats star above {CrossoverBytes(2, link) / 1e3:F0} kB (N = 2) to {CrossoverBytes(64, link) / 1e3:F0} kB (N = 64): " +
                $"the statistics ({b / 1e6:F1} MB) from N = 2 on, the soft counts ({k / 1e3:F1} kB) never"));
        }
        return 0;
    }
}
