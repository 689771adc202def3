using Dnm.Cluster.Protocol;
using Dnm.Core.Data;

namespace Dnm.Cluster.Workers;

/// <summary>What the worker actor asks of its replica: <see cref="WorkerReplica"/> is the real one, specs may fake it.</summary>
public interface IWorkerBackend : IDisposable
{
    /// <summary>Opens the data named by the run's config and builds the replica (kept when the config is unchanged).</summary>
    Task<WorkerPrepared> PrepareAsync(RegistrationAccepted accepted);

    /// <summary>Connects to the world's data plane as its rank, receives the full state and imports it; returns the replica checksum.</summary>
    Task<ulong> JoinWorldAsync(FormWorld world);

    /// <summary>Runs one step on the replica's thread: shard, Forward, all-reduce f, Backward, all-reduce statistics, Apply.</summary>
    Task<WorkerStepResult> RunStepAsync(StartStep step);

    /// <summary>
    /// Tallies the evaluation blocks the coordinator sent on the replica's thread, after every step queued before it (so on
    /// the model of the step it names); returns <see cref="Dnm.Core.Evaluation.EvaluationTally.ToBytes"/>.
    /// </summary>
    Task<byte[]> EvaluateAsync(EvaluateBlocks request);

    /// <summary>
    /// Embeds the blocks of SOM pre-training's fitted set the coordinator sent, on the replica's thread after every step
    /// queued before it; hands each block to <paramref name="emit"/> (<see cref="Dnm.Core.Training.EmbeddingGather.Encode"/>)
    /// as soon as it is made. The task ends after the last.
    /// </summary>
    Task EmbedAsync(EmbedBlocks request, Action<int, byte[]> emit);

    /// <summary>Closes the data-plane connection; a step blocked in a reduction fails and aborts.</summary>
    void LeaveWorld();
}

/// <param name="Dataset">The digest of the training files the worker read (<see cref="DatasetDigest"/>).</param>
/// <param name="PeerEndpoint">host:port of the worker's listener for the reduction among workers (null: it has none).</param>
public sealed record WorkerPrepared(int SampleCount, ImageShape Shape, int StatsLength, DatasetDigest? Dataset = null, string? PeerEndpoint = null);

/// <summary>
/// A step's reduction among the workers failed. Every rank of the world sees this when one rank is lost (each failing rank
/// closes its partner connections), so it names no culprit: the worker reports it as such (<see cref="Protocol.StepFailed.AmongWorkers"/>).
/// </summary>
public sealed class ReductionAmongWorkersException(string message, Exception inner) : IOException(message, inner);

public sealed record WorkerStepResult(ulong? Checksum, TimeSpan ReduceTime);
