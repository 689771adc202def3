using Dnm.Cluster.Protocol;

namespace Dnm.Cluster.Coordination;

/// <summary>How the coordinator waits, retries and verifies. Defaults suit a real cluster; tests shorten the timeouts.</summary>
public sealed record CoordinatorSettings
{
    /// <summary>Workers that must be ready before the first step. After that the run goes on with any number ≥ 1.</summary>
    public int MinWorkers { get; init; } = 1;

    /// <summary>How long to wait for enough workers (at the start, or when every worker has gone).</summary>
    public TimeSpan JoinTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long forming a world may take: every rank connects and receives the full state.</summary>
    public TimeSpan WorldTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long one step may take before it is abandoned and retried.</summary>
    public TimeSpan StepTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Compare every replica's checksum with the coordinator's every this many steps (0: never).</summary>
    public int ChecksumEvery { get; init; } = 50;

    /// <summary>Consecutive failures (of one step or one world) not explained by a lost worker before the run fails.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>The build a worker must run (compared in RegisterWorker).</summary>
    public string DnmVersion { get; init; } = ClusterProtocol.DnmVersion;

    /// <summary>Tell every cluster member's node monitor when the run ends (off in actor specs, which have no cluster).</summary>
    public bool AnnounceToCluster { get; init; }
}
