using Akka.Actor;
using Dnm.Cluster.Protocol;
using Dnm.Core.Training;

namespace Dnm.Cluster.Coordination;

// The coordinator's private bookkeeping types: its timers' messages, the worker table and the step in flight.

internal sealed record JoinTimeout
{
    public static readonly JoinTimeout Instance = new();
}

internal sealed record WorldTimeout(long MembershipEpoch);

internal sealed record StepTimeout(long MembershipEpoch, long Step);

/// <summary>
/// Rank <paramref name="Rank"/> reported that its reduction among the workers of step <paramref name="Step"/> failed, and the
/// grace for the coordinator's own link to name a lost rank has passed (<see cref="CoordinatorSettings.AmongWorkersGrace"/>).
/// </summary>
internal sealed record AmongWorkersFailed(long MembershipEpoch, long Step, int Rank, string Reason);

internal sealed record BlocksTimeout(long MembershipEpoch, long Step);

// A backend task failed: one record per operation, so each state lists the failures it can meet.

/// <summary>The replica could not start (data, checkpoint, device).</summary>
internal sealed record InitializeFailed(Exception Error);

/// <summary>Membership epoch <paramref name="MembershipEpoch"/>'s data plane did not form or its state transfer failed.</summary>
internal sealed record WorldSyncFailed(long MembershipEpoch, Exception Error);

/// <summary>Step <paramref name="Step"/>'s reduction failed (a <see cref="RankFailureException"/> names the rank).</summary>
internal sealed record ReduceFailed(long MembershipEpoch, long Step, Exception Error);

/// <summary>The replica failed to apply a committed step.</summary>
internal sealed record ApplyFailed(long MembershipEpoch, long Step, Exception Error);

/// <summary>The replica failed to write the checkpoint of <paramref name="GlobalStep"/>.</summary>
internal sealed record CheckpointFailed(long GlobalStep, Exception Error);
/// <summary>A checkpoint write failed and was reported; the run goes on (a fault follows only when writes keep failing).</summary>
internal sealed record CheckpointSkipped(long GlobalStep);

/// <summary>A periodic evaluation failed.</summary>
internal sealed record EvaluateFailed(long GlobalStep, Exception Error);

/// <summary>SOM pre-training (or the smoothed targets before it) failed.</summary>
internal sealed record SomPretrainFailed(Exception Error);

/// <summary>The end of the run (final evaluation, files, pictures) failed.</summary>
internal sealed record FinishFailed(Exception Error);

internal sealed class WorkerEntry(string id, IActorRef worker, long sequence, Guid nonce)
{
    public string Id { get; } = id;
    /// <summary>The nonce of its registration, echoed in every answer to it.</summary>
    public Guid Nonce { get; } = nonce;
    public IActorRef Ref { get; } = worker;
    /// <summary>The address of its actor system: what the cluster's reachability events and a restarted node's registration name.</summary>
    public Address Node => Ref.Path.Address;
    /// <summary>Registration order: ranks are handed out in it, so they do not depend on dictionary order.</summary>
    public long Sequence { get; } = sequence;
    public bool Ready { get; set; }
    /// <summary>Where the other workers of a world reach it for the reduction among workers (<see cref="WorkerReady.PeerEndpoint"/>).</summary>
    public string? PeerEndpoint { get; set; }
    public override string ToString() => Id;
}

/// <summary>
/// Workers whose reduction among themselves failed while each reached the coordinator (a link between workers is down): their
/// worlds sum the statistics through the coordinator until the members change. <paramref name="Reason"/>: why, for the log.
/// </summary>
internal sealed record StarOnly(HashSet<WorkerEntry> Members, string Reason);

/// <summary>
/// One membership epoch: the workers in rank order, and the data-plane world they share. <paramref name="AmongWorkers"/>: its
/// statistics are summed among the workers wherever that keeps the fixed tree (<see cref="StatisticsReduction.Workers"/>).
/// </summary>
internal sealed record World(long Epoch, Guid Id, WorkerEntry[] Members, bool AmongWorkers = false)
{
    public int Size => Members.Length;
    public int RankOf(WorkerEntry entry) => Array.IndexOf(Members, entry);
}

/// <summary>The step in flight. It commits when the reduced statistics are handed to the replica (Reduced).</summary>
internal sealed class StepRound(PlannedStep plan, StartStep start, Dnm.Core.Telemetry.StepTrace trace)
{
    public PlannedStep Plan { get; } = plan;
    public StartStep Start { get; } = start;
    /// <summary>The coordinator's span of the step (ended when the step completes or is abandoned).</summary>
    public Dnm.Core.Telemetry.StepTrace Trace { get; } = trace;
    public System.Diagnostics.Stopwatch Clock { get; } = System.Diagnostics.Stopwatch.StartNew();
    public Dictionary<int, ulong?> Acks { get; } = new();
    /// <summary>Ranks that left after the step committed: nothing more is awaited from them.</summary>
    public HashSet<int> Lost { get; } = new();
    public bool Reduced { get; set; }
    /// <summary>Ranks whose contribution to the step held NaN or infinity (<see cref="StepReduced.NonFiniteRanks"/>).</summary>
    public IReadOnlyList<int>? NonFiniteRanks { get; set; }
    /// <summary>The mean over ranks of the time each spent in the step's all-reduces.</summary>
    public TimeSpan ReduceTime => Acks.Count == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(reduceSeconds / Acks.Count);
    private double reduceSeconds;
    public void AddReduceTime(double seconds) => reduceSeconds += seconds;
    public StepApplied? Applied { get; set; }
}

/// <summary>
/// Stop the run on request (SIGTERM): finish the step in flight if it has committed, abandon it if not, write the
/// checkpoint of the last complete step, and end with a <see cref="Dnm.Core.Training.RunStoppedException"/>. Sent by the
/// node's host to the singleton on its own node.
/// </summary>
internal sealed record SuspendRun
{
    public static readonly SuspendRun Instance = new();
}

/// <summary>The checkpoint of a stop on request was written (null: its write failed and was reported).</summary>
internal sealed record SuspendCheckpointed(RunState State, CheckpointSaved? Saved);

internal sealed record SuspendCheckpointFailed(RunState State, Exception Error);
