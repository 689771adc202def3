using Dnm.Core.Training;

namespace Dnm.Cluster.Protocol;

// The step conversation. Per global step the coordinator sends StartStep to the members of the current
// world; each worker computes its shard, takes part in the data-plane reductions (soft counts in joint
// mode, then the step statistics), applies the reduced statistics and acknowledges with StepCompleted.

/// <summary>
/// Run global step <paramref name="Step"/> (the run's GlobalStep before the step). The worker computes its micro-batches
/// (<c>MicroBatches.SampleRange</c>) of <c>ShardSampler.GlobalBatch(EpochOrder(count, seed, DataEpoch), StepInEpoch, GlobalBatch)</c>;
/// <paramref name="DataEpoch"/> already includes the Trainer's offsets. <paramref name="Sigma"/> and
/// <paramref name="Eta"/> are the schedule values (used in joint mode). With <paramref name="VerifyChecksum"/>
/// the worker reports its replica checksum after applying. <paramref name="TraceParent"/> is the W3C traceparent of
/// the coordinator's step span (null when it is not traced): the worker's step and phase spans become its children,
/// so one trace shows the step on every node.
/// </summary>
public sealed record StartStep(
    Guid RunId,
    long Step,
    TrainingPhase Phase,
    int Epoch,
    int StepInEpoch,
    StepMode Mode,
    double Sigma,
    double Eta,
    int GlobalBatch,
    long MembershipEpoch,
    int DataEpoch,
    bool VerifyChecksum,
    string? TraceParent = null);

/// <summary>
/// The worker applied step <paramref name="Step"/>; <paramref name="Checksum"/> is set when it was asked for.
/// <paramref name="ReduceSeconds"/> is the time the worker spent in the step's all-reduces (sending, waiting for
/// the slowest rank, receiving the sum): the step's communication and synchronisation cost.
/// </summary>
public sealed record StepCompleted(Guid RunId, long MembershipEpoch, long Step, int Rank, ulong? Checksum, double ReduceSeconds);

/// <summary>
/// The worker's step failed (a data-plane error, a torch error); it has aborted the step. <paramref name="AmongWorkers"/>: its
/// reduction among the workers failed, which another rank's loss causes as well as its own (a failing rank closes all its
/// partner connections, so the failure spreads through the world): it names no culprit.
/// </summary>
public sealed record StepFailed(Guid RunId, long MembershipEpoch, long Step, int Rank, string Reason, bool AmongWorkers = false);
