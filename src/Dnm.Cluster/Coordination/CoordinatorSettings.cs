using Dnm.Cluster.Hosting;
using Dnm.Cluster.Protocol;

namespace Dnm.Cluster.Coordination;

/// <summary>How the step statistics of a world of several workers are summed (docs/cluster.md, "Scaling model").</summary>
public enum StatisticsReduction
{
    /// <summary>
    /// Among the workers by recursive halving, where the world is a power of two whose ranks each hold one aligned block of
    /// the fixed tree (the same bits as the star); the coordinator receives one slice of the sum from each. Elsewhere the star.
    /// </summary>
    AmongWorkers,

    /// <summary>Every worker sends its blocks to the coordinator, which sums them and sends the sum back to each.</summary>
    Star,
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

    /// <summary>The build a worker must run (compared in RegisterWorker).</summary>
    public string DnmVersion { get; init; } = ClusterProtocol.DnmVersion;

    /// <summary>Tell every cluster member's node monitor when the run ends (off in actor specs, which have no cluster).</summary>
    public bool AnnounceToCluster { get; init; }
}
