using System.Collections.Concurrent;
using Dnm.Cluster.Coordination;
using Dnm.Cluster.Protocol;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Training;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// A coordinator backend without torch or sockets: every operation succeeds at once, except reductions
/// when <see cref="HoldReductions"/> is set (the spec then decides when, or whether, they finish).
/// 8 samples, batch 4: 2 steps per epoch; 1 pre-training and 1 joint epoch make a 4-step run.
/// </summary>
internal sealed class ScriptedBackend : ICoordinatorBackend
{
    public const ulong ReplicaChecksum = 42;
    public const int StatsLength = 10;
    public static readonly ImageShape Shape = new(1, 4, 4);
    public static readonly DnmConfig Config = new() { BatchSize = 4, PretrainEpochs = 1, Epochs = 1, SomIterations = 2, Map = "2x2", CheckpointEvery = 100, EvalEvery = 0 };

    /// <summary>The final evaluation: 8 reference and 6 evaluated samples in blocks of 4 (2 + 2 blocks).</summary>
    public static readonly Core.Evaluation.EvaluationBlocks FinalEvaluation = new(8, 6, 4);

    public bool HoldReductions { get; init; }
    /// <summary>The digest of the replica's training files (null: none, as before digests existed).</summary>
    public DatasetDigest? Dataset { get; init; }
    /// <summary>Floats of smoothed targets the replica reports: from its checkpoint (at start) and after SOM pre-training.</summary>
    public int TargetsAtStart { get; init; }
    public int TargetsAfterSom { get; init; }
    /// <summary>The blocks of SOM pre-training's embeddings the replica asks of the workers (null: it needs none).</summary>
    public EmbeddingBlocks? SomEmbedding { get; init; }
    /// <summary>The workers' embeddings SOM pre-training was handed, per call (null: none).</summary>
    public ConcurrentQueue<float[]?> SomEmbeddings { get; } = new();
    /// <summary>SOM pre-training fails with this message (null: it succeeds).</summary>
    public string? SomFailure { get; init; }
    public ConcurrentDictionary<(long Epoch, long Step), TaskCompletionSource<StepReduced>> Held { get; } = new();
    public ConcurrentQueue<long> Committed { get; } = new();
    public int WorldsClosed;

    public Task<ReplicaReady> InitializeAsync(Guid runId) =>
        Task.FromResult(new ReplicaReady(Config, new RunState(), 8, Shape, StatsLength, StatsLength, 0, "run", null, TargetsAtStart, Dataset: Dataset,
            FinalEvaluation: FinalEvaluation, SomEmbedding: SomEmbedding));

    public string OpenWorld(long membershipEpoch, Guid worldId, int worldSize, bool amongWorkers)
    {
        this.worldSize = worldSize;
        return $"127.0.0.1:{9000 + membershipEpoch}";
    }

    public TimeSpan?[]? Arrivals(long membershipEpoch) => ArrivalsOf is { } script ? script(worldSize) : new TimeSpan?[worldSize];

    public Task<WorldSynced> SyncWorldAsync(long membershipEpoch, long stateStep, TimeSpan timeout) =>
        MissingOf?.Invoke(worldSize) is { Count: > 0 } missing
            ? Task.FromException<WorldSynced>(new RanksMissingException(missing, $"only {worldSize - missing.Count} of {worldSize} ranks connected"))
            : Task.FromResult(new WorldSynced(membershipEpoch, ReplicaChecksum));

    /// <summary>The ranks of a world of n that never connect to its data plane (default: none).</summary>
    public Func<int, IReadOnlyList<int>?>? MissingOf { get; init; }

    /// <summary>What <see cref="Arrivals"/> reports for a world of n ranks (default: nothing arrived while a reduction is held).</summary>
    public Func<int, TimeSpan?[]?>? ArrivalsOf { get; init; }
    /// <summary>The withholdNonFinite argument of every reduction, in order.</summary>
    public ConcurrentQueue<bool> Withholding { get; } = new();
    private int worldSize;

    public Task<StepReduced> ReduceStepAsync(long membershipEpoch, StartStep step, bool withholdNonFinite, TimeSpan amongWorkersTimeout)
    {
        Withholding.Enqueue(withholdNonFinite);
        if (!HoldReductions) return Task.FromResult(new StepReduced(membershipEpoch, step.Step, TimeSpan.Zero));
        var held = new TaskCompletionSource<StepReduced>(TaskCreationOptions.RunContinuationsAsynchronously);
        Held[(membershipEpoch, step.Step)] = held;
        return held.Task;
    }

    public void Release(long membershipEpoch, long step) =>
        Held[(membershipEpoch, step)].TrySetResult(new StepReduced(membershipEpoch, step, TimeSpan.Zero));

    /// <summary>Ends a held reduction as the real backend does when only <paramref name="ranks"/>' contributions were non-finite.</summary>
    public void Withhold(long membershipEpoch, long step, params int[] ranks) =>
        Held[(membershipEpoch, step)].TrySetResult(new StepReduced(membershipEpoch, step, TimeSpan.Zero, ranks, Withheld: true));

    public Task<StepApplied> CommitStepAsync(long membershipEpoch, StartStep step)
    {
        Committed.Enqueue(step.Step);
        return Task.FromResult(new StepApplied(membershipEpoch, step.Step, default, step.VerifyChecksum ? ReplicaChecksum : null, step.Step + 1, null, null));
    }

    public void CloseWorld() => Interlocked.Increment(ref WorldsClosed);

    /// <summary>The states whose checkpoints were written, in order.</summary>
    public ConcurrentQueue<RunState> Saved { get; } = new();

    public Task<CheckpointSaved?> SaveCheckpointAsync(RunState state)
    {
        Saved.Enqueue(state);
        return Task.FromResult<CheckpointSaved?>(new CheckpointSaved($"step-{state.GlobalStep}.ckpt", 0, TimeSpan.Zero));
    }

    public Task<EvaluationReport> ReportEvaluationAsync(RunState state, int epoch, Core.Evaluation.EvaluationTally tally, TimeSpan duration) =>
        Task.FromResult(new EvaluationReport(state.Phase, epoch, state.GlobalStep, tally.Quality(true, true, Shape.Pixels), 0, duration));

    public Task<SomPretrained> PretrainSomAsync(RunState state, EmbeddingGather? embeddings)
    {
        if (embeddings is not null)
        {
            using var z = embeddings.ToTensor(TorchSharp.torch.CPU);
            SomEmbeddings.Enqueue(z.data<float>().ToArray());
        }
        else SomEmbeddings.Enqueue(null);
        return SomFailure is { } failure
            ? Task.FromException<SomPretrained>(new InvalidOperationException(failure))
            : Task.FromResult(new SomPretrained(state with { Phase = TrainingPhase.Joint, Epoch = 0, StepInEpoch = 0, PhaseStep = 0 }, TargetsAfterSom));
    }

    /// <summary>The final quality is the merged tally's, so specs see what the workers reported.</summary>
    public Task<RunCompleted> FinishAsync(RunState state, Core.Evaluation.EvaluationTally tally, TimeSpan duration) =>
        Task.FromResult(new RunCompleted(state.GlobalStep, ReplicaChecksum, "run", "final.ckpt", tally.Quality(true, true, Shape.Pixels)));

    public void Dispose() { }
}
