using Dnm.Cluster.Protocol;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Evaluation;
using Dnm.Core.Training;

namespace Dnm.Cluster.Coordination;

/// <summary>
/// What the coordinator actor asks of its authoritative replica and the coordinator end of the data plane.
/// The actor decides (membership, retries, commits); the backend does the long-running work and reports
/// back through tasks that the actor pipes to itself. <see cref="ReplicaBackend"/> is the real one; actor
/// specs use a scripted fake.
/// </summary>
public interface ICoordinatorBackend : IDisposable
{
    /// <summary>
    /// Opens the data, builds the replica and continues from the newest checkpoint of the run directory, if any.
    /// <paramref name="runId"/> is the coordinator's run id (the replica's checkpoint and evaluation spans carry it).
    /// </summary>
    Task<ReplicaReady> InitializeAsync(Guid runId);

    /// <summary>
    /// Starts the data-plane listener of a new world (closing any previous one); returns the host:port to advertise. With
    /// <paramref name="amongWorkers"/> the workers sum the statistics among themselves wherever every rank holds one block of the
    /// tree, and each sends only its flag and its slice of the sum (<see cref="Transport.RecursiveHalvingReducer"/>).
    /// </summary>
    string OpenWorld(long membershipEpoch, Guid worldId, int worldSize, bool amongWorkers);

    /// <summary>
    /// Accepts every rank of the open world, then broadcasts the replica's full state to all of them. Ranks that have not
    /// connected within <paramref name="timeout"/> fail it with a <see cref="RanksMissingException"/> naming them.
    /// </summary>
    Task<WorldSynced> SyncWorldAsync(long membershipEpoch, long stateStep, TimeSpan timeout);

    /// <summary>
    /// Sums the soft counts (joint mode, broadcast back at once) and the step statistics, and starts broadcasting
    /// the statistics' sum. Applies nothing to the replica: if the actor abandons the step instead of committing it,
    /// the next world's state transfer overwrites what the workers applied. With <paramref name="withholdNonFinite"/>, a
    /// sum made non-finite by some ranks but not all is not broadcast: the result is <see cref="StepReduced.Withheld"/>, naming
    /// them, and the actor retries the step without them. Where the workers sum the statistics among themselves, the slices of
    /// the sum must arrive within <paramref name="amongWorkersTimeout"/> of the ranks' flags, else it fails with a
    /// <see cref="ReductionAmongWorkersStalledException"/>.
    /// </summary>
    Task<StepReduced> ReduceStepAsync(long membershipEpoch, StartStep step, bool withholdNonFinite, TimeSpan amongWorkersTimeout);

    /// <summary>
    /// For the step's latest gather (of soft counts or statistics) in <paramref name="membershipEpoch"/>: how long after it
    /// began each rank's contribution arrived, null for a rank whose contribution has not. Null when no gather has begun.
    /// </summary>
    TimeSpan?[]? Arrivals(long membershipEpoch);

    /// <summary>
    /// The actor has committed the reduced step: finish broadcasting the sum to the workers and apply it to the replica.
    /// A failed broadcast is reported in the result (the replica applies regardless); a failed apply faults the task.
    /// </summary>
    Task<StepApplied> CommitStepAsync(long membershipEpoch, StartStep step);

    /// <summary>Closes the world's connections; any reduction in flight fails, which aborts it on every worker.</summary>
    void CloseWorld();

    /// <summary>
    /// Writes the replica's checkpoint of <paramref name="state"/> (the actor's <see cref="CheckpointPolicy"/> found it due).
    /// Null: the write failed and was reported, and the run goes on (<see cref="RunSession.SaveCheckpoint"/>); a fault: it
    /// failed too often in a row.
    /// </summary>
    Task<CheckpointSaved?> SaveCheckpointAsync(RunState state);

    /// <summary>
    /// A periodic evaluation's metrics row (nodes labelled from eval-limit training samples, eval-limit test samples) from
    /// the workers' merged tally, as the Trainer's run writes it after an epoch.
    /// </summary>
    Task<EvaluationReport> ReportEvaluationAsync(RunState state, int epoch, EvaluationTally tally, TimeSpan duration);

    /// <summary>
    /// SOM pre-training on the replica, from the workers' <paramref name="embeddings"/> of <see cref="ReplicaReady.SomEmbedding"/>
    /// (null where that is null), then the Trainer's transition to the joint phase (and its checkpoint).
    /// </summary>
    Task<SomPretrained> PretrainSomAsync(RunState state, EmbeddingGather? embeddings);

    /// <summary>The final metrics from the workers' merged tally, the final checkpoint and the pictures (as TrainingRun writes them).</summary>
    Task<RunCompleted> FinishAsync(RunState state, EvaluationTally tally, TimeSpan duration);
}

/// <summary>
/// The replica is built; <paramref name="ResumedFrom"/> names the checkpoint it continues from. <paramref name="MicroBatch"/>
/// is the most samples of one micro-batch (<see cref="MicroBatches"/>), for the idle-rank warning. <paramref name="Dataset"/> is
/// the digest of the training files the replica read: every worker's must equal it. <paramref name="PeriodicEvaluation"/> and
/// <paramref name="FinalEvaluation"/> cut the evaluations into the blocks the workers tally (null: the run has no evaluation samples).
/// <paramref name="SomEmbedding"/> cuts SOM pre-training's embeddings into the blocks the workers embed (null: it needs none,
/// <see cref="RunSession.SomEmbedding"/>).
/// </summary>
public sealed record ReplicaReady(DnmConfig Config, RunState State, int SampleCount, ImageShape Shape, int StatsLength,
    int StateLength, long AdamSteps, string RunDirectory, string? ResumedFrom, int TargetsLength = 0, int MicroBatch = MicroBatches.AutoMaxSize,
    DatasetDigest? Dataset = null, EvaluationBlocks? PeriodicEvaluation = null, EvaluationBlocks? FinalEvaluation = null,
    EmbeddingBlocks? SomEmbedding = null);

public sealed record WorldSynced(long MembershipEpoch, ulong Checksum);

/// <param name="NonFiniteRanks">
/// Where the reduced sum holds NaN or infinity, the ranks whose blocks did (their soft counts, else their statistics): the
/// replicas skip the step (<see cref="NonFiniteSteps"/>) and the coordinator names them. Null while the sums are finite.
/// </param>
/// <param name="Withheld">
/// The sum was not broadcast, because only some ranks' contributions held NaN or infinity (<c>withholdNonFinite</c>): nothing
/// can commit; the actor retries the step without <paramref name="NonFiniteRanks"/>.
/// </param>
public sealed record StepReduced(long MembershipEpoch, long Step, TimeSpan ReduceTime, IReadOnlyList<int>? NonFiniteRanks = null, bool Withheld = false);

/// <param name="BroadcastFailedRank">A rank the reduced statistics could not be sent to (it must be dropped).</param>
/// <param name="Transfer">
/// The step's communication after the slowest rank's contribution arrived: for each all-reduce, from the moment the
/// coordinator held every rank's vector to the end of its broadcast (the last sum and the copies out). Unlike the
/// workers' all-reduce time it holds no waiting for a slower rank's compute.
/// </param>
public sealed record StepApplied(long MembershipEpoch, long Step, StepLoss Loss, ulong? Checksum, long AdamSteps,
    int? BroadcastFailedRank, string? BroadcastError, TimeSpan Transfer = default);

public sealed record SomPretrained(RunState State, int TargetsLength = 0);

public sealed record RunCompleted(long GlobalStep, ulong Checksum, string RunDirectory, string FinalCheckpoint, MapQuality? Final);

/// <summary>A data-plane failure that one rank caused (its connection broke or it sent a bad frame).</summary>
public sealed class RankFailureException(int rank, string message, Exception? inner = null) : Exception(message, inner)
{
    public int Rank { get; } = rank;
}

/// <summary>
/// A reduction among the workers that stalled: every rank's flag arrived, so each had finished its part of the step, but the
/// slices of the sum of <see cref="Ranks"/> had not within the timeout. Nothing is left to compute, so a link between workers is
/// down (or far too slow) while each still reaches the coordinator.
/// </summary>
public sealed class ReductionAmongWorkersStalledException(IReadOnlyList<int> ranks, string message) : TimeoutException(message)
{
    public IReadOnlyList<int> Ranks { get; } = ranks;
}

/// <summary>Ranks that never connected to a world's data plane within its timeout; the others did.</summary>
public sealed class RanksMissingException(IReadOnlyList<int> ranks, string message) : TimeoutException(message)
{
    public IReadOnlyList<int> Ranks { get; } = ranks;
}
