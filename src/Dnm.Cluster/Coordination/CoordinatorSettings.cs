using Dnm.Cluster.Hosting;
using Dnm.Cluster.Protocol;

namespace Dnm.Cluster.Coordination;

/// <summary>How the step statistics of a world of several workers are summed (docs/cluster.md, "Scaling model").</summary>
public enum StatisticsReduction
{
    /// <summary>
    /// <see cref="Workers"/> for statistics of at least <see cref="StatisticsReductionThreshold.MinBytes"/> bytes, <see cref="Star"/> for smaller ones:
    /// below that the star's 2 latencies beat the exchange's 2·log2 N (docs/cluster.md, "Scaling model"; a model with a few
    /// thousand parameters stepped in 48 ms among 2 workers against 17 ms through the star).
    /// </summary>
    Auto,

    /// <summary>
    /// Among the workers by recursive halving, where the world is a power of two whose ranks each hold one aligned block of
    /// the fixed tree (the same bits as the star); the coordinator receives one slice of the sum from each. Elsewhere the star.
    /// </summary>
    Workers,

    /// <summary>Every worker sends its blocks to the coordinator, which sums them and sends the sum back to each.</summary>
    Star,
}

/// <summary>Where <see cref="StatisticsReduction.Auto"/> switches from the star to the workers.</summary>
public static class StatisticsReductionThreshold
{
    /// <summary>The statistics size from which <see cref="StatisticsReduction.Auto"/> sums among the workers: 256 KiB (the ring beats the star above ~100–160 kB at 25 Gbit/s and 50 µs).</summary>
    public const long MinBytes = 256 * 1024;

    /// <summary>Whether statistics of <paramref name="floats"/> floats are summed among the workers under <paramref name="reduction"/>.</summary>
    public static bool AmongWorkers(StatisticsReduction reduction, long floats) =>
        reduction == StatisticsReduction.Workers || (reduction == StatisticsReduction.Auto && floats * sizeof(float) >= MinBytes);
}

/// <summary>
/// How the coordinator waits, retries and verifies. Its defaults are the node's (<see cref="NodeOptions"/>), stated once
/// there; tests shorten the timeouts.
/// </summary>
public sealed record CoordinatorSettings
{
    private static readonly NodeOptions Node = new();

    /// <summary>Workers that must be ready before the first step. After that the run goes on with any number ≥ 1.</summary>
    public int MinWorkers { get; init; } = Node.MinWorkers;

    /// <summary>How long to wait for enough workers (at the start, or when every worker has gone).</summary>
    public TimeSpan JoinTimeout { get; init; } = Node.JoinTimeout;

    /// <summary>How long forming a world may take: every rank connects and receives the full state.</summary>
    public TimeSpan WorldTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long one step may take before it is abandoned and retried.</summary>
    public TimeSpan StepTimeout { get; init; } = Node.StepTimeout;

    /// <summary>Compare every replica's checksum with the coordinator's every this many steps (0: never).</summary>
    public int ChecksumEvery { get; init; } = Node.ChecksumEvery;

    /// <summary>Consecutive failures (of one step or one world) not explained by a lost worker before the run fails.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>
    /// Times a step is computed again without the ranks whose contributions held NaN or infinity; after that (or when every
    /// rank's did) the batch is skipped by every replica alike (<see cref="Core.Training.NonFiniteSteps"/>).
    /// </summary>
    public int NonFiniteRetries { get; init; } = 2;

    /// <summary>
    /// A file the coordinator appends one line to per step its replica applied: "step=S epoch=E world=N adam=A" (the global
    /// step after it, the membership epoch and world size it was computed in, the replica's Adam step count). A step applied
    /// twice would show as a repeated S. Null (the default): none is written.
    /// </summary>
    public string? CommitLog { get; init; }

    /// <summary>How a world sums its workers' statistics (<see cref="NodeOptions.Reduction"/>).</summary>
    public StatisticsReduction Reduction { get; init; } = Node.Reduction;

    /// <summary>
    /// How long the slices of a reduction among the workers may take once every rank's flag has arrived (<see cref="NodeOptions.AmongWorkersTimeout"/>).
    /// Past it the link between some workers is taken to be down: the step is retried, and the statistics go through the
    /// coordinator for as long as the world's members stay the same.
    /// </summary>
    public TimeSpan AmongWorkersTimeout { get; init; } = Node.AmongWorkersTimeout;

    /// <summary>
    /// After a worker reports that its reduction among the workers failed, how long the coordinator waits for its own link to
    /// name a lost rank (a killed worker fails its partners' reductions too) before it takes the link between workers to be
    /// down, retries the step and sends the statistics through itself.
    /// </summary>
    public TimeSpan AmongWorkersGrace { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The build a worker must run (compared in RegisterWorker).</summary>
    public string DnmVersion { get; init; } = ClusterProtocol.DnmVersion;

    /// <summary>Tell every cluster member's node monitor when the run ends (off in actor specs, which have no cluster).</summary>
    public bool AnnounceToCluster { get; init; }
}
