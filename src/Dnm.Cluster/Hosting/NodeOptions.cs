using Dnm.Cluster.Transport;
using Dnm.Core.Config;

namespace Dnm.Cluster.Hosting;

/// <summary>Which parts of a run a node takes on; one process may hold both.</summary>
[Flags]
public enum NodeRoles
{
    None = 0,
    Coordinator = 1,
    Worker = 2,
    Both = Coordinator | Worker,
}

/// <summary>
/// How one `dnm node` process joins a cluster. Flags and environment variables (<see cref="NodeEnvironment"/>)
/// fill it; the training config (DnmConfig) is separate and only the coordinator's counts.
/// </summary>
public sealed record NodeOptions
{
    public NodeRoles Roles { get; init; } = NodeRoles.Both;

    /// <summary>Seed nodes as host:port (DNS names work). Empty on a coordinator: it founds the cluster by joining itself.</summary>
    public IReadOnlyList<string> Seeds { get; init; } = [];

    /// <summary>
    /// The name other nodes reach this one by, advertised for Akka and the data plane. A seed's Host must be
    /// spelled exactly as in the others' seed lists (Akka compares addresses as text): on Kubernetes, the pod's
    /// stable DNS name.
    /// </summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The local address to listen on (Akka and the data plane).</summary>
    public string BindHost { get; init; } = "0.0.0.0";

    /// <summary>Akka remoting port; 0 takes an ephemeral one (embedded runs, tests).</summary>
    public int Port { get; init; } = 4053;

    /// <summary>The coordinator's data-plane port; 0 takes an ephemeral one per membership epoch.</summary>
    public int DataPlanePort { get; init; }

    /// <summary>
    /// Data-plane socket and shared-memory settings of this node's coordinator and workers (API only, no flag:
    /// the defaults suit every deployment, and benchmarks use it to compare the shared-memory path with TCP).
    /// </summary>
    public DataPlaneOptions DataPlane { get; init; } = DataPlaneOptions.Default;

    /// <summary>
    /// Faults the local workers inject into their own contributions, by local worker index (API only, no flag): specs use
    /// it to make one rank a straggler or send NaN through the real data plane. Empty by default.
    /// </summary>
    public IReadOnlyDictionary<int, Workers.WorkerFaults> WorkerFaults { get; init; } = new Dictionary<int, Workers.WorkerFaults>();

    /// <summary>Workers this process runs (each with its own replica and thread). Ignored without the worker role.</summary>
    public int LocalWorkers { get; init; } = 1;

    /// <summary>Torch devices for the local workers, used round-robin (cpu, cuda:0, ...). Empty: the run config's device.</summary>
    public IReadOnlyList<string> Devices { get; init; } = [];

    /// <summary>Workers the coordinator waits for before the first step.</summary>
    public int MinWorkers { get; init; } = 1;

    /// <summary>How long to wait for the cluster (seeds) and, on the coordinator, for min-workers.</summary>
    public TimeSpan JoinTimeout { get; init; } = TimeSpan.FromSeconds(60);

    public TimeSpan StepTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Compare replica checksums every this many steps.</summary>
    public int ChecksumEvery { get; init; } = 50;

    /// <summary>
    /// How the coordinator has a world's statistics summed: among the workers where that keeps the fixed tree's bits (a
    /// power-of-two world, one block a rank), else through itself; or always through itself (the star); auto (default):
    /// among the workers from 256 KiB of statistics. The soft counts always take the star (they are small: latency, not
    /// bandwidth, is their cost).
    /// </summary>
    public Coordination.StatisticsReduction Reduction { get; init; } = Coordination.StatisticsReduction.Auto;

    /// <summary>
    /// How long the coordinator waits for the slices of a reduction among the workers once every rank has begun it (API only,
    /// no flag). Past it a link between workers is taken to be down: the step is retried, through the coordinator.
    /// </summary>
    public TimeSpan AmongWorkersTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The Akka system name; every node of one cluster must use the same.</summary>
    public string ClusterName { get; init; } = "dnm";

    /// <summary>Split-brain resolver: how long a partition must be stable before the minority side is downed.</summary>
    public TimeSpan DownAfter { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a node that lost its coordinator waits, rejoining the seeds, for the cluster to take it back (a restarted
    /// coordinator pod may take minutes to come up). After it the node exits with an error, for its pod to be restarted.
    /// </summary>
    public TimeSpan RejoinTimeout { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// How long a coordinator stopped on request (SIGTERM) may take to finish or abandon its step and write the checkpoint
    /// before the node leaves the cluster regardless: within Kubernetes' default grace period of 30 s, with time to leave.
    /// </summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// The coordinator continues from the newest checkpoint in the run directory. On for cluster nodes: that is
    /// how a coordinator that takes over after a failover resumes. `dnm train --workers` turns it on with --resume only.
    /// </summary>
    public bool ResumeFromCheckpoint { get; init; } = true;

    /// <summary>
    /// The exit status of a node that SIGTERM stopped cleanly (its coordinator checkpointed the last complete step). 0 by
    /// default: a requested stop is not a failure. Under a Kubernetes Job an exit 0 would count as the run's completion,
    /// so the manifests set 143 (128 + SIGTERM) and their pod failure policy replaces such a pod without counting it.
    /// </summary>
    public int StopExitCode { get; init; }

    /// <summary>
    /// The coordinator appends one line per committed step to commits.log in the run directory
    /// (<see cref="Coordination.CoordinatorSettings.CommitLog"/>). Off by default; the churn check (scripts/churn.sh) turns it on.
    /// </summary>
    public bool CommitLog { get; init; }

    /// <summary>Akka's own log level (DEBUG, INFO, WARNING, ERROR).</summary>
    public string AkkaLogLevel { get; init; } = "WARNING";

    /// <summary>
    /// PEM files of this node's certificate and private key (a Kubernetes TLS Secret's tls.crt and tls.key) and of the
    /// cluster's CA (ca.crt). All three turn on mutual TLS for Akka.Remote and the data plane
    /// (<see cref="ClusterCertificates"/>); none: both run in plain TCP.
    /// </summary>
    public string? TlsCert { get; init; }

    /// <inheritdoc cref="TlsCert"/>
    public string? TlsKey { get; init; }

    /// <inheritdoc cref="TlsCert"/>
    public string? TlsCa { get; init; }

    /// <summary>True when the options name TLS files (all three, once <see cref="Problems"/> is empty).</summary>
    public bool UsesTls => TlsCert is not null || TlsKey is not null || TlsCa is not null;

    public bool IsCoordinator => Roles.HasFlag(NodeRoles.Coordinator);
    public bool IsWorker => Roles.HasFlag(NodeRoles.Worker) && LocalWorkers > 0;

    /// <summary>Every problem, phrased for the user; empty when the options are usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        if (Roles == NodeRoles.None) p.Add("role must be coordinator, worker or both");
        if (!IsCoordinator && Seeds.Count == 0) p.Add("a worker needs --seeds (DNM_SEEDS): host:port of a coordinator node");
        foreach (var s in Seeds)
        {
            var colon = s.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(s.AsSpan(colon + 1), out var port) || port is < 1 or > 65535)
                p.Add($"seed '{s}' is not host:port");
        }
        if (string.IsNullOrWhiteSpace(Host)) p.Add("host must name this node");
        if (Port is < 0 or > 65535) p.Add($"port must be 0..65535, got {Port}");
        if (DataPlanePort is < 0 or > 65535) p.Add($"data-plane-port must be 0..65535, got {DataPlanePort}");
        if (Roles.HasFlag(NodeRoles.Worker) && LocalWorkers < 1) p.Add($"local-workers must be at least 1 on a worker, got {LocalWorkers}");
        if (StopExitCode is < 0 or > 255) p.Add($"stop-exit-code must be 0..255, got {StopExitCode}");
        if (MinWorkers < 1) p.Add($"min-workers must be at least 1, got {MinWorkers}");
        if (JoinTimeout <= TimeSpan.Zero || StepTimeout <= TimeSpan.Zero) p.Add("join-timeout and step-timeout must be positive");
        if (AmongWorkersTimeout <= TimeSpan.Zero) p.Add("the among-workers timeout must be positive");
        if (ChecksumEvery < 0) p.Add($"checksum-every must be >= 0, got {ChecksumEvery}");
        if (UsesTls && (TlsCert is null || TlsKey is null || TlsCa is null))
            p.Add("--tls-cert, --tls-key and --tls-ca (DNM_TLS_CERT, DNM_TLS_KEY, DNM_TLS_CA) go together: " +
                  $"{string.Join(" and ", new[] { (Flag: "--tls-cert", File: TlsCert), (Flag: "--tls-key", File: TlsKey), (Flag: "--tls-ca", File: TlsCa) }.Where(f => f.File is null).Select(f => f.Flag))} " +
                  $"missing (in the dnm-tls Secret: tls.crt, tls.key and ca.crt)");
        foreach (var d in Devices)
        {
            try { DeviceSpec.Parse(d); }
            catch (ConfigException e) { p.Add(e.Message); }
        }
        return p;
    }

    public NodeOptions Validated()
    {
        var p = Problems();
        return p.Count == 0 ? this : throw new ConfigException(string.Join("; ", p));
    }
}
