namespace Dnm.Cluster;

/// <summary>What a finished cluster run produced (on the node whose coordinator finished it).</summary>
/// <param name="TimedSteps">Distributed steps this coordinator ran (SOM pre-training excluded).</param>
/// <param name="MeanStep">Mean wall time of a step, StartStep to the last acknowledgement.</param>
/// <param name="MeanReduce">Mean time of a step's data-plane reductions as the coordinator saw them (soft counts and statistics).</param>
/// <param name="Final">The final evaluation (null on nodes other than the coordinator's).</param>
/// <param name="MeanTransfer">Mean time of a step's communication after the slowest rank's contribution arrived
/// (see <see cref="Coordination.StepApplied.Transfer"/>): the part of <paramref name="MeanReduce"/> that is not waiting.</param>
public sealed record ClusterRunResult(long GlobalSteps, ulong Checksum, string RunDirectory, string? FinalCheckpoint, TimeSpan Duration,
    int TimedSteps, TimeSpan MeanStep, TimeSpan MeanReduce, Dnm.Core.Evaluation.MapQuality? Final = null, TimeSpan MeanTransfer = default);

/// <summary>A cluster run stopped on an error that retrying cannot fix; the message says which node or rank and why.</summary>
public sealed class ClusterRunException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The local end of a run, shared by this node's actors and the hosting code that waits for it: the first
/// actor to learn the run's outcome (the coordinator, a worker told RunFinished, the node monitor) sets it.
/// </summary>
public sealed class RunCompletion
{
    private readonly TaskCompletionSource<ClusterRunResult> done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<string> rejoin = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<ClusterRunResult> Task => done.Task;

    /// <summary>
    /// Completes (with the reason) when this node should leave its cluster and join the seeds again with a fresh actor
    /// system: it lost its coordinator for good (<see cref="NodeMonitor"/>), or the split-brain resolver removed it.
    /// </summary>
    public Task<string> RejoinRequested => rejoin.Task;

    public void Succeed(ClusterRunResult result) => done.TrySetResult(result);

    public void Fail(Exception error) => done.TrySetException(error);

    /// <summary>The run stopped on request, checkpointed (<see cref="Dnm.Core.Training.RunStoppedException"/>).</summary>
    public void Stopped(Dnm.Core.Training.RunStoppedException stopped) => done.TrySetException(stopped);

    public void RequestRejoin(string reason) => rejoin.TrySetResult(reason);
}
