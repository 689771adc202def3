using System.Diagnostics;
using System.Net;
using Dnm.Cluster.Coordination;
using Dnm.Cluster.Hosting;
using Dnm.Cluster.Protocol;
using Dnm.Cluster.Transport;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Evaluation;
using Dnm.Core.Runtime;
using Dnm.Core.Som;
using Dnm.Core.Telemetry;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Cluster.Replica;

/// <summary>
/// The coordinator's authoritative replica and its end of the data plane. The replica holds no shard: it
/// applies the reduced statistics of every step (so it has θ, φ, Adam state and W for checkpoints and for
/// joining workers), runs SOM pre-training on its own embeddings of the data, and writes the checkpoints.
/// All torch work runs on one <see cref="TorchThread"/>.
/// </summary>
/// <param name="resumeLatest">Continue from the newest checkpoint of the run directory, if there is one.</param>
/// <param name="telemetry">The coordinator's data-plane bytes go to its metrics; checkpoints and evaluations are spans.</param>
public sealed class ReplicaBackend(DnmConfig requested, Device device, DataPlaneSettings dataPlane, ITrainingObserver observer, bool resumeLatest = true,
    ClusterTelemetry? telemetry = null)
    : ICoordinatorBackend
{
    private readonly ClusterTelemetry telemetry = telemetry ?? ClusterTelemetry.None;
    private StepTracer tracer = StepTracer.Untraced();
    private readonly TorchThread torch = new("dnm-coordinator-replica");
    private readonly CancellationTokenSource disposed = new();
    private readonly Lock gate = new();
    private StepEngine? engine;
    private IImageDataset? train, test;
    // The run's checkpoints, SOM pre-training and evaluations: the same session as a single-process run's. Its smoothed
    // targets (made after autoencoder pre-training) go to every world's workers after the state.
    private RunSession? session;
    // This coordinator's incarnation of the run directory: once a newer one exists it commits no step and writes nothing.
    private RunFence? fence;
    private WorldSockets? open;

    /// <summary>One world's listener, reducer and reusable vectors.</summary>
    private sealed class WorldSockets(long epoch, DataPlaneListener listener, int size, int nodes, int statsLength, bool amongWorkers) : IDisposable
    {
        private readonly CancellationTokenSource cancel = new();
        public long Epoch { get; } = epoch;
        public DataPlaneListener Listener { get; } = listener;
        public int Size { get; } = size;
        /// <summary>The workers sum the statistics among themselves wherever every rank holds one block of the tree.</summary>
        public bool AmongWorkers { get; } = amongWorkers;
        /// <summary>Each rank's <see cref="FrameKind.Finite"/> flag of the step in flight.</summary>
        public float[] Flags { get; } = new float[size];
        public StarReducer? Reducer { get; set; }
        public CancellationToken Token => cancel.Token;
        public float[] SoftCounts { get; } = new float[nodes];
        public float[] Stats { get; } = new float[statsLength];
        /// <summary>Each rank's blocks of the fixed sum tree, as received (grown to the largest seen).</summary>
        public float[][] Received { get; } = Enumerable.Range(0, size).Select(_ => Array.Empty<float>()).ToArray();
        /// <summary>The broadcast of the current step's sum, started as soon as the reduction completed.</summary>
        public Task<(int? Rank, string? Error, TimeSpan Transfer)>? Broadcast { get; set; }
        // The connections' byte counts already recorded as metrics.
        public long SentSeen, ReceivedSeen;

        public void Dispose()
        {
            cancel.Cancel();
            Reducer?.Dispose();
            Listener.Dispose();
        }
    }

    public Task<ReplicaReady> InitializeAsync(Guid runId) => torch.RunAsync(() =>
    {
        tracer = telemetry.Tracer(ClusterTelemetry.CoordinatorRole, runId, 0, 0);
        // First, before the newest checkpoint is read: from here on an older coordinator of this run directory (one cut
        // off by a partition, or not yet told that it was replaced) neither commits a step nor writes a checkpoint.
        fence = RunFence.Acquire(requested.Out, $"{dataPlane.AdvertisedHost} pid {Environment.ProcessId} run {runId} at {DateTime.UtcNow:O}");
        observer.OnMessage($"coordinator incarnation {fence.Incarnation} of run directory {Path.GetFullPath(requested.Out)}");
        // A coordinator always continues the newest checkpoint of its run directory: that is what makes a
        // singleton that moved to another node resume (and roll the workers back) instead of starting over.
        // The newest one that verifies: a corrupt newest checkpoint (a crash, a bad disk) is named and skipped.
        var usable = resumeLatest ? Checkpoint.LatestUsable(Path.Combine(requested.Out, "checkpoints"), observer.OnMessage) : null;
        var (latest, checkpoint) = usable is { } u ? (u.Path, u.Checkpoint) : ((string?)null, (Checkpoint?)null);
        var config = RunSession.Merge(requested, checkpoint).Validated();
        TorchRuntime.SetIntraOpThreads(device, config.Threads);
        train = TrainingRun.OpenTrain(config, null);
        // Before anything uses it: the config the workers receive, the plan and the checkpoints hold the fitted batch size.
        config = TrainingRun.SizedFor(config, train.Count, observer.OnMessage);
        EvaluationSplit split;
        (test, split) = TrainingRun.OpenEvaluation(config, null);
        if (train.Count < config.BatchSize)
            throw new ConfigException($"batch-size {config.BatchSize} is larger than the training set ({train.Count} samples)");
        engine = ReplicaFactory.Create(config, train.Shape, device, config.BatchSize, LabelledSamples.Classes(config, train));
        session = new RunSession(config, new RunDirectory(config.Out), engine, train, test, observer, tracer, split) { Fence = fence };
        var state = checkpoint is null ? session.Start() : session.Resume(checkpoint, latest!);
        return new ReplicaReady(config, state, train.Count, train.Shape, engine.Layout.Length, ReplicaFactory.StateLength(engine),
            engine.Optimizer.Steps, session.Directory.Root, latest, TargetsLength(session.Targets), engine.MicroBatches.MaxSize,
            TrainingRun.TrainDigest(config), session.EvaluationPlan(final: false), session.EvaluationPlan(final: true), session.SomEmbedding);
    });

    public string OpenWorld(long membershipEpoch, Guid worldId, int worldSize, bool amongWorkers)
    {
        var e = Engine;
        lock (gate)
        {
            open?.Dispose();
            open = null;
            // The world id is the data plane's run id: a connection meant for another world is refused in the handshake.
            var listener = DataPlaneListener.Start(new IPEndPoint(dataPlane.BindAddress, dataPlane.Port), worldId, StarReducer.CoordinatorRank,
                SharedMemoryFor(dataPlane.Options, e.MicroBatches, e.MaxLocalBatch, e.Layout.Length, worldSize));
            open = new WorldSockets(membershipEpoch, listener, worldSize, e.Layout.Nodes, e.Layout.Length, amongWorkers);
            return $"{dataPlane.AdvertisedHost}:{listener.LocalEndPoint.Port}";
        }
    }

    /// <summary>
    /// The data-plane options of a world, with shared-memory segments large enough for its largest step payload (a rank's
    /// statistics blocks, or the broadcast sum) where the configured size is smaller: the fully connected model's 13 MB of
    /// statistics otherwise took loopback TCP. Disabled shared memory stays disabled; a larger frame (the state
    /// transfer, once a world) still takes TCP.
    /// </summary>
    internal static DataPlaneOptions SharedMemoryFor(DataPlaneOptions options, MicroBatches micro, int batch, int statsLength, int worldSize)
    {
        var blocks = Enumerable.Range(0, worldSize).Max(rank => micro.Blocks(batch, rank, worldSize).Count);
        return options.WithSharedMemoryFor((long)Math.Max(blocks, 1) * statsLength * sizeof(float));
    }

    public async Task<WorldSynced> SyncWorldAsync(long membershipEpoch, long stateStep, TimeSpan timeout)
    {
        var w = Current(membershipEpoch);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(w.Token);
        deadline.CancelAfter(timeout);
        var accepted = new List<DataPlaneConnection>(w.Size);
        StarReducer reducer;
        try
        {
            // A stray, stale (another world's id) or idle peer is refused on its own; the ranks' handshakes go on beside it.
            await w.Listener.AcceptManyAsync(w.Size, accepted, e => observer.OnMessage($"data plane refused a connection: {e.Message}"),
                deadline.Token).ConfigureAwait(false);
            reducer = new StarReducer(accepted);
            observer.OnMessage($"data plane: {DescribePaths(accepted)}");
        }
        catch (Exception e)
        {
            foreach (var c in accepted) c.Dispose();
            if (e is OperationCanceledException && !w.Token.IsCancellationRequested)
            {
                var missing = Enumerable.Range(0, w.Size).Except(accepted.Select(c => c.RemoteRank)).ToArray();
                throw new RanksMissingException(missing, $"only {accepted.Count} of {w.Size} ranks connected to the data plane within " +
                                                         $"{timeout.TotalSeconds:0}s (missing: {string.Join(", ", missing.Select(r => $"rank {r}"))})");
            }
            throw;
        }
        lock (gate)
        {
            if (open != w)
            {
                reducer.Dispose();
                throw new OperationCanceledException("the world was closed while it formed");
            }
            w.Reducer = reducer;
        }
        var (flat, checksum) = await torch.RunAsync(() => (ReplicaFactory.Flatten(EngineState.Export(Engine)), EngineState.Checksum(Engine))).ConfigureAwait(false);
        await Attributed(reducer, () => reducer.BroadcastAsync(stateStep, FrameKind.State, flat, w.Token).AsTask()).ConfigureAwait(false);
        // The workers' FormWorld announced these (the actor learnt their length with the replica or the SOM phase).
        if (Session.Targets is { } targets)
            await Attributed(reducer, () => reducer.BroadcastAsync(stateStep, FrameKind.Targets, targets.Values, w.Token).AsTask()).ConfigureAwait(false);
        RecordBytes(w);
        return new WorldSynced(membershipEpoch, checksum);
    }

    // "ranks 0, 1 through shared memory; rank 2 over TCP (why)": which payload path each connection negotiated.
    private static string DescribePaths(IEnumerable<DataPlaneConnection> connections) => string.Join("; ", connections
        .OrderBy(c => c.RemoteRank)
        .GroupBy(c => c.SharedMemoryFallback)
        .Select(g => $"{(g.Count() == 1 ? "rank" : "ranks")} {string.Join(", ", g.Select(c => c.RemoteRank))} " +
                     (g.Key is null ? "through shared memory" : $"over TCP ({g.Key})")));

    public async Task<StepReduced> ReduceStepAsync(long membershipEpoch, StartStep step, bool withholdNonFinite, TimeSpan amongWorkersTimeout)
    {
        var w = Current(membershipEpoch);
        var reducer = w.Reducer ?? throw new InvalidOperationException($"membership epoch {membershipEpoch} has not formed");
        var clock = Stopwatch.StartNew();
        var softCountTransfer = TimeSpan.Zero;
        var batch = ShardSampler.GlobalBatchRange(train!.Count, step.StepInEpoch, step.GlobalBatch).Length;
        // The workers' own reduction gives the coordinator one slice of the sum a rank: nothing to broadcast.
        var amongWorkers = w.AmongWorkers && RecursiveHalvingReducer.Applies(Engine.MicroBatches, batch, w.Size);
        int[] nonFinite = [];
        // Some ranks' blocks, not all, held NaN or infinity: the sum goes to no one, and the step is retried without them.
        // When every rank's did, the batch itself (or a diverged run) is the cause: the sum goes out, every replica skips it.
        bool Withhold(int[] ranks) => withholdNonFinite && ranks.Length > 0 && ranks.Length < w.Size;
        var withheld = false;
        await Attributed(reducer, async () =>
        {
            // f is a sum over the whole global batch: every worker needs it before its loss (joint mode only).
            if (step.Mode == StepMode.Joint)
            {
                nonFinite = await GatherSumAsync(w, reducer, step.Step, FrameKind.SoftCounts, batch, w.SoftCounts).ConfigureAwait(false);
                withheld = Withhold(nonFinite);
                if (withheld) return;
                var arrived = Stopwatch.GetTimestamp();
                await reducer.BroadcastAsync(step.Step, FrameKind.SoftCounts, w.SoftCounts, w.Token).ConfigureAwait(false);
                softCountTransfer = Stopwatch.GetElapsedTime(arrived);
            }
            var statistics = amongWorkers
                ? await GatherFlagsAsync(w, reducer, step.Step).ConfigureAwait(false)
                : await GatherSumAsync(w, reducer, step.Step, FrameKind.Gradients, batch, w.Stats).ConfigureAwait(false);
            // A rank's non-finite f makes every rank's statistics non-finite: the soft counts' culprits are the cause.
            if (nonFinite.Length == 0) nonFinite = statistics;
            withheld = Withhold(nonFinite);
            // Withheld, the slices are not waited for: the world closes, and the workers' sum goes nowhere.
            if (amongWorkers && !withheld) await GatherSlicesAsync(w, reducer, step.Step, w.Stats, amongWorkersTimeout).ConfigureAwait(false);
        }).ConfigureAwait(false);
        RecordBytes(w);
        if (withheld) return new StepReduced(membershipEpoch, step.Step, clock.Elapsed, nonFinite, Withheld: true);
        if (amongWorkers)
        {
            // Every worker has (or is gathering from its partners) the same sum: the replica applies it at the commit.
            w.Broadcast = Task.FromResult<(int?, string?, TimeSpan)>((null, null, softCountTransfer));
            return new StepReduced(membershipEpoch, step.Step, clock.Elapsed, nonFinite.Length == 0 ? null : nonFinite);
        }
        // The sum goes back to the workers at once, not after the actor's commit: that round trip through the
        // actor's mailbox was idle time on every worker. It is safe because the replica still applies only what
        // the actor commits: should it abandon the step instead, the next world's state transfer overwrites
        // whatever a worker applied, so no step is applied twice.
        w.Broadcast = BroadcastStatsAsync(w, step.Step, softCountTransfer);
        return new StepReduced(membershipEpoch, step.Step, clock.Elapsed, nonFinite.Length == 0 ? null : nonFinite);
    }

    public TimeSpan?[]? Arrivals(long membershipEpoch)
    {
        lock (gate)
            return open is { } w && w.Epoch == membershipEpoch ? w.Reducer?.Arrivals() : null;
    }

    /// <summary>
    /// Receives every rank's blocks of the fixed sum tree (<see cref="MicroBatches.Blocks"/>) and sums them in that tree
    /// into <paramref name="sum"/>: the same bits as one process summing every micro-batch, whatever the world size.
    /// Returns the ranks whose blocks hold NaN or infinity (where the sum then does, the replicas skip the step).
    /// </summary>
    private async Task<int[]> GatherSumAsync(WorldSockets w, StarReducer reducer, long step, FrameKind kind, int batch, float[] sum)
    {
        var micro = Engine.MicroBatches;
        var destinations = new Memory<float>[w.Size];
        for (var rank = 0; rank < w.Size; rank++)
        {
            var floats = micro.Blocks(batch, rank, w.Size).Count * sum.Length;
            if (w.Received[rank].Length < floats) w.Received[rank] = new float[floats];
            destinations[rank] = w.Received[rank].AsMemory(0, floats);
        }
        await reducer.GatherAsync(step, kind, destinations, w.Token).ConfigureAwait(false);
        // Checked before the sum, which adds each right child into its left one in place: afterwards a bad block's NaN
        // would be in the blocks of the ranks to its left too. One read of what arrived; a sum that overflows from finite
        // blocks is no rank's fault (the replicas skip it all the same).
        int[] nonFinite = [];
        for (var rank = 0; rank < w.Size; rank++)
            if (!NonFiniteSteps.AllFinite(destinations[rank].Span)) nonFinite = [.. nonFinite, rank];
        micro.SumContributions(batch, destinations, sum);
        return nonFinite;
    }

    /// <summary>
    /// The first half of a step whose workers sum the statistics among themselves: every rank's <see cref="FrameKind.Finite"/> flag,
    /// sent before its reduction began (so a straggler is late here, and named). Returns the ranks whose own statistics were not finite.
    /// </summary>
    private static async Task<int[]> GatherFlagsAsync(WorldSockets w, StarReducer reducer, long step)
    {
        var flags = new Memory<float>[w.Size];
        for (var rank = 0; rank < w.Size; rank++) flags[rank] = w.Flags.AsMemory(rank, 1);
        await reducer.GatherAsync(step, FrameKind.Finite, flags, w.Token).ConfigureAwait(false);
        return Enumerable.Range(0, w.Size).Where(rank => w.Flags[rank] != 1f).ToArray();
    }

    /// <summary>
    /// The second half: each rank's slice of the root (<see cref="RecursiveHalvingReducer.SliceOf"/>), received straight into its
    /// place in <paramref name="sum"/>. A rank lost midway fails it at once, naming that rank: the others, whose reduction failed
    /// with it, send nothing. Slices that have not all arrived within <paramref name="timeout"/> of the flags (the reduction began
    /// on every rank, and only the exchange is left) fail it with a <see cref="ReductionAmongWorkersStalledException"/>.
    /// </summary>
    private static async Task GatherSlicesAsync(WorldSockets w, StarReducer reducer, long step, float[] sum, TimeSpan timeout)
    {
        var slices = new Memory<float>[w.Size];
        for (var rank = 0; rank < w.Size; rank++)
        {
            var (start, length) = RecursiveHalvingReducer.SliceOf(rank, w.Size, sum.Length);
            slices[rank] = sum.AsMemory(start, length);
        }
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(w.Token);
        stall.CancelAfter(timeout);
        try
        {
            await reducer.GatherUntilFirstFailureAsync(step, FrameKind.Gradients, slices, stall.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!w.Token.IsCancellationRequested)
        {
            var arrivals = reducer.Arrivals();
            var missing = Enumerable.Range(0, w.Size).Where(rank => arrivals is null || arrivals[rank] is null).ToArray();
            throw new ReductionAmongWorkersStalledException(missing,
                $"the reduction among the workers stalled: every rank began it, but the slices of the sum of {(missing.Length == 1 ? "rank" : "ranks")} " +
                $"{string.Join(", ", missing)} had not arrived after {timeout.TotalSeconds:0.###}s (a link between workers is down or far too slow)");
        }
    }

    public async Task<StepApplied> CommitStepAsync(long membershipEpoch, StartStep step)
    {
        var w = Current(membershipEpoch);
        var batch = ShardSampler.GlobalBatchRange(train!.Count, step.StepInEpoch, step.GlobalBatch).Length;
        // The broadcast (started when the reduction completed) and the replica's own apply run at the same time;
        // both only read the sum.
        var broadcast = w.Broadcast ?? throw new InvalidOperationException($"step {step.Step} is committed before it was reduced");
        w.Broadcast = null;
        fence?.Check($"commit step {step.Step + 1}");
        var (loss, checksum, adamSteps) = await torch.RunAsync(() =>
        {
            observer.OnStepReduced(step.Step + 1, step.Mode == StepMode.Joint ? w.SoftCounts : [], w.Stats);
            // The replica holds no micro-batch: it applies the workers' sum, as every worker does.
            var l = Engine.Apply(w.Stats, batch, step.Mode, new ScheduleValues(step.Sigma, step.Eta));
            return (l, step.VerifyChecksum ? EngineState.Checksum(Engine) : (ulong?)null, Engine.Optimizer.Steps);
        }).ConfigureAwait(false);
        var (failedRank, error, transfer) = await broadcast.ConfigureAwait(false);
        RecordBytes(w);
        return new StepApplied(membershipEpoch, step.Step, loss, checksum, adamSteps, failedRank, error, transfer);
    }

    /// <summary>The bytes the world's connections moved since the last call, as increments of dnm_allreduce_bytes_total.</summary>
    private void RecordBytes(WorldSockets w)
    {
        if (telemetry.Coordinator is not { } metrics || w.Reducer is not { } reducer) return;
        long sent = 0, received = 0;
        foreach (var c in reducer.Workers)
        {
            sent += c.BytesSent;
            received += c.BytesReceived;
        }
        lock (w)
        {
            metrics.RecordAllReduceBytes(sent - w.SentSeen, received - w.ReceivedSeen);
            w.SentSeen = sent;
            w.ReceivedSeen = received;
        }
    }

    /// <summary>
    /// Broadcasts the statistics' sum, started the moment every rank's statistics arrived; returns the rank that could
    /// not be reached, if any, and the step's transfer time: <paramref name="before"/> (the soft counts') plus this broadcast.
    /// </summary>
    private static async Task<(int? Rank, string? Error, TimeSpan Transfer)> BroadcastStatsAsync(WorldSockets w, long step, TimeSpan before)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            await w.Reducer!.BroadcastAsync(step, FrameKind.Gradients, w.Stats, w.Token).ConfigureAwait(false);
            return (null, null, before + Stopwatch.GetElapsedTime(start));
        }
        catch (Exception e)
        {
            var rank = e is DataPlaneException d ? RankOf(w.Reducer!, d) : null;
            return (rank, e.Message, before + Stopwatch.GetElapsedTime(start));
        }
    }

    public void CloseWorld()
    {
        lock (gate)
        {
            open?.Dispose();
            open = null;
        }
    }

    public Task<CheckpointSaved?> SaveCheckpointAsync(RunState state) => torch.RunAsync(() => Session.SaveCheckpoint(state));

    public Task<SomPretrained> PretrainSomAsync(RunState state, EmbeddingGather? embeddings) => torch.RunAsync(() =>
    {
        var joint = Session.PretrainSom(state, embeddings, disposed.Token);
        return new SomPretrained(joint, TargetsLength(Session.Targets));
    });

    public Task<EvaluationReport> ReportEvaluationAsync(RunState state, int epoch, EvaluationTally tally, TimeSpan duration) =>
        torch.RunAsync(() => Session.ReportEvaluation(state, epoch, tally, duration));

    /// <summary>The end of the run on the replica: the final metrics from the workers' tally, the final checkpoint and the pictures.</summary>
    public Task<RunCompleted> FinishAsync(RunState state, EvaluationTally tally, TimeSpan duration) => torch.RunAsync(() =>
    {
        var final = Session.Finish(state, tally, duration);
        return new RunCompleted(state.GlobalStep, EngineState.Checksum(Engine), Session.Directory.Root, Session.Directory.FinalCheckpoint, final);
    });

    private static int TargetsLength(SmoothTargets? targets) => targets?.Values.Length ?? 0;

    private StepEngine Engine => engine ?? throw new InvalidOperationException("the replica is not initialised");
    private RunSession Session => session ?? throw new InvalidOperationException("the replica is not initialised");

    private WorldSockets Current(long membershipEpoch)
    {
        lock (gate)
        {
            return open is { } w && w.Epoch == membershipEpoch
                ? w
                : throw new OperationCanceledException($"membership epoch {membershipEpoch} is closed");
        }
    }

    /// <summary>Runs data-plane work and names the rank whose connection failed, so the actor can drop that worker.</summary>
    private static async Task Attributed(StarReducer reducer, Func<Task> work)
    {
        try
        {
            await work().ConfigureAwait(false);
        }
        catch (DataPlaneException e) when (RankOf(reducer, e) is { } rank)
        {
            throw new RankFailureException(rank, $"rank {rank}: {e.Message}", e);
        }
    }

    private static int? RankOf(StarReducer reducer, DataPlaneException e)
    {
        for (var rank = 0; rank < reducer.Workers.Count; rank++)
            if (reducer.Workers[rank].Peer == e.Peer) return rank;
        return null;
    }

    public void Dispose()
    {
        if (disposed.IsCancellationRequested) return;
        disposed.Cancel();
        CloseWorld();
        _ = torch.RunAsync(() =>
        {
            engine?.Dispose();
            train?.Dispose();
            test?.Dispose();
        });
        torch.Dispose();
    }
}
