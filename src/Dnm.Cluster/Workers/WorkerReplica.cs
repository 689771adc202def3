using System.Diagnostics;
using System.Net;
using Dnm.Cluster.Hosting;
using Dnm.Cluster.Protocol;
using Dnm.Cluster.Replica;
using Dnm.Cluster.Transport;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Evaluation;
using Dnm.Core.Runtime;
using Dnm.Core.Som;
using Dnm.Core.Telemetry;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Cluster.Workers;

/// <summary>
/// A worker's replica: its data, its <see cref="StepEngine"/>, its data-plane connection and the dedicated
/// thread on which every torch call of a step runs (Forward opens the step's dispose scope, Apply or Abort
/// closes it, and TorchSharp's scopes belong to one thread). Each step is timed by phase and, where traced, spanned
/// under the coordinator's step span; <paramref name="telemetry"/> gets the worker's metrics (labelled with its rank).
/// </summary>
/// <param name="faults">Faults this worker injects into its contributions (specs only; null: none).</param>
/// <param name="peerPlane">
/// Where this worker listens for the other workers of its worlds (bind address, advertised host, port: 0 for an ephemeral one),
/// for the statistics' reduction among workers; null: it takes part in none, and its worlds reduce through the coordinator.
/// </param>
public sealed class WorkerReplica(string name, Device device, DataPlaneOptions? options = null, ClusterTelemetry? telemetry = null, WorkerFaults? faults = null,
    DataPlaneSettings? peerPlane = null)
    : IWorkerBackend
{
    private readonly FaultInjector? faults = faults is null ? null : new FaultInjector(faults);
    private readonly ClusterTelemetry telemetry = telemetry ?? ClusterTelemetry.None;
    private readonly TorchThread torch = new($"dnm-{name}");
    private string? configJson;
    private DnmConfig? config;
    private IImageDataset? train;
    // The evaluation samples: opened at the first evaluation, as the single process opens them.
    private IImageDataset? test;
    // The run's labelled samples (null inside when it trains unsupervised), found at the first evaluation.
    private Lazy<LabelledSamples?>? labelled;
    // The training samples SOM pre-training fits (made at the first embedding request).
    private IImageDataset? somSet;
    private DatasetDigest? dataset;
    private StepEngine? engine;
    private IReadOnlyList<NamedArray>? template;
    // The one step of every world size; its smoothed targets ẑ (smooth-weight > 0, once made) arrive with each world's state.
    private StepRunner? runner;
    // Replaced as a whole on every world (actor side); a step captures the link it started with (torch side).
    private WorldLink? link;
    // Where the other workers of a world connect to this one (with peerPlane): one listener for every world, made with the
    // replica (its shared-memory segments fit the statistics' halves), and the host:port it is reached at.
    private DataPlaneListener? peerListener;
    private string? peerEndpoint;

    private sealed record WorldLink(long Epoch, int Rank, int Size, StarReduceClient Client, StepTracer Tracer, FaultInjector? Faults) : IStepReducer
    {
        // The connections' byte counts already recorded as metrics (read and written on the torch thread).
        public long SentSeen, ReceivedSeen;
        private readonly float[] flag = new float[1];

        /// <summary>Cancelled when the worker leaves the world: ends the partner connections' setup.</summary>
        public CancellationTokenSource Left { get; } = new();

        /// <summary>The partner connections of a world that sums its statistics among the workers (set while joining).</summary>
        public RecursiveHalvingReducer? Ring { get; set; }

        /// <summary>Whether the step in flight sums its statistics among the workers (torch thread; set before each step).</summary>
        public bool AmongWorkers { get; set; }

        public bool Communicates => true;

        /// <summary>
        /// Sends this rank's blocks of the fixed sum tree to the coordinator, which sums every rank's in that tree, and
        /// receives the root; or, for statistics summed among the workers, takes part in that (<see cref="ReduceAmongWorkers"/>).
        /// Blocking is deliberate: this is the replica's own thread, and the step cannot go on without the sum.
        /// </summary>
        public ReadOnlyMemory<float> Reduce(long step, ReducedVector vector, ReadOnlyMemory<float> contribution, Memory<float> sum)
        {
            var kind = vector == ReducedVector.SoftCounts ? FrameKind.SoftCounts : FrameKind.Gradients;
            if (Faults is not null) contribution = Faults.Apply(step, vector, contribution);
            if (vector == ReducedVector.Statistics && AmongWorkers)
            {
                ReduceAmongWorkers(step, contribution, sum);
                return sum;
            }
            if (Faults?.Disconnects(step, vector) == true) Disconnect();
            // Straight from the runner's buffers, no copies (for the fully connected model 13 MB each way a step); on this thread,
            // which waits for the sum anyway.
            Client.Contribute(step, kind, contribution);
            Client.ReceiveBroadcast(step, kind, sum);
            return sum;
        }

        /// <summary>
        /// The statistics summed among the workers: this rank's flag (were its own statistics finite?) to the coordinator first,
        /// then recursive halving with its partners, its slice of the root to the coordinator, and recursive doubling for the rest.
        /// The coordinator checks and commits what it assembles from the slices; this rank applies the same bits at once.
        /// </summary>
        private void ReduceAmongWorkers(long step, ReadOnlyMemory<float> contribution, Memory<float> sum)
        {
            if (contribution.Length != sum.Length)
                throw new InvalidOperationException($"rank {Rank} holds {contribution.Length / Math.Max(sum.Length, 1)} blocks of the sum tree, not one: the statistics cannot be summed among the workers");
            flag[0] = NonFiniteSteps.AllFinite(contribution.Span) ? 1f : 0f;
            Client.Contribute(step, FrameKind.Finite, flag);
            if (Faults?.Disconnects(step, ReducedVector.Statistics) == true) Disconnect();
            if (Faults?.DisconnectsPartners(step) == true) Ring?.Dispose();
            if (Faults?.Stalls(step) == true)
            {
                // Until the worker leaves this world (the next world's join ends it), as a hung link would hold it.
                Left.Token.WaitHandle.WaitOne();
                throw new ReductionAmongWorkersException($"the reduction among the workers stalled at step {step} (an injected fault)", new OperationCanceledException(Left.Token));
            }
            var ring = Ring!;
            // Straight from the runner's block: its halves are sent and summed from where they lie, not copied into the sum first.
            AmongWorkersOrFail(() => ring.ReduceScatter(step, FrameKind.Gradients, contribution, sum));
            // One checksum of the slice for both of its frames: to the coordinator and to the first partner of the all-gather.
            var (slice, checksum) = ring.ChecksummedSlice(sum);
            // The slice goes to the coordinator while the rest comes from the partners: the all-gather only reads the slice.
            var toCoordinator = Client.ContributeAsync(step, FrameKind.Gradients, slice, checksum).AsTask();
            try
            {
                AmongWorkersOrFail(() => ring.AllGather(step, FrameKind.Gradients, sum, checksum));
            }
            finally
            {
                // Awaited either way, so no send is left running on the connection; its own failure is the coordinator link's.
                if (!toCoordinator.IsCompleted) ((IAsyncResult)toCoordinator).AsyncWaitHandle.WaitOne();
            }
            toCoordinator.GetAwaiter().GetResult();
        }

        /// <summary>A fault (specs): every data-plane connection of this world closes, as a killed worker's do.</summary>
        private void Disconnect()
        {
            Ring?.Dispose();
            Client.Dispose();
        }

        /// <summary>An exchange among the workers, on this thread (it waits for it anyway: <see cref="RecursiveHalvingReducer.ReduceScatter"/>).</summary>
        private static void AmongWorkersOrFail(Action exchange)
        {
            try
            {
                exchange();
            }
            catch (Exception e)
            {
                throw new ReductionAmongWorkersException($"the reduction among the workers failed: {e.Message}", e);
            }
        }
    }

    public Task<WorkerPrepared> PrepareAsync(RegistrationAccepted accepted) => torch.RunAsync(() =>
    {
        if (engine is null || configJson != accepted.ConfigJson)
        {
            runner?.Dispose();
            engine?.Dispose();
            train?.Dispose();
            test?.Dispose();
            test = null;
            labelled = null;
            somSet = null;
            engine = null;
            config = DnmConfig.FromJson(accepted.ConfigJson, "the coordinator's run config");
            TorchRuntime.SetIntraOpThreads(device, config.Threads);
            train = TrainingRun.OpenTrain(config, null);
            // Once per config: the coordinator refuses a worker whose files differ from its own.
            dataset = TrainingRun.TrainDigest(config);
            // The largest part is the whole global batch (a world of one).
            engine = ReplicaFactory.Create(config, train.Shape, device, config.BatchSize, LabelledSamples.Classes(config, train));
            template = EngineState.Export(engine);
            runner = new StepRunner(config, engine, train, reducedObserver: null);
            configJson = accepted.ConfigJson;
            OpenPeerListener(engine.Layout.Length);
        }
        return new WorkerPrepared(train!.Count, train.Shape, engine.Layout.Length, dataset, peerEndpoint);
    });

    /// <summary>
    /// Opens the listener the other workers of a world connect to (with peerPlane).
    /// </summary>
    private void OpenPeerListener(int statsLength)
    {
        peerListener?.Dispose();
        peerListener = null;
        peerEndpoint = null;
        if (peerPlane is null) return;
        var at = new IPEndPoint(peerPlane.BindAddress, peerPlane.Port);
        try
        {
            // Its own run id and rank are never used: each world's accepts expect that world's id and this worker's rank in it.
            peerListener = DataPlaneListener.Start(at, Guid.Empty, 0, PartnerOptions(statsLength));
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new InvalidOperationException($"worker {name} cannot listen for the other workers on {at}: {e.Message}; free that port, or give " +
                                                "the node another --data-plane-port (DNM_DATA_PLANE_PORT; 0 takes an ephemeral one)", e);
        }
        peerEndpoint = $"{peerPlane.AdvertisedHost}:{peerListener.LocalEndPoint.Port}";
    }

    public async Task<ulong> JoinWorldAsync(FormWorld world)
    {
        LeaveWorld();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var endpoint = await DataPlaneSettings.ResolveAsync(world.DataPlaneEndpoint, deadline.Token).ConfigureAwait(false);
        var client = await StarReduceClient.ConnectAsync(endpoint, world.WorldId, world.Rank, options, deadline.Token).ConfigureAwait(false);
        var joined = new WorldLink(world.MembershipEpoch, world.Rank, world.WorldSize, client,
            telemetry.Tracer(ClusterTelemetry.WorkerRole, world.RunId, world.Rank, world.WorldSize), faults);
        Volatile.Write(ref link, joined);
        // The partners connect while the state arrives: every rank of the world is joining now.
        var ring = world.PeerEndpoints is { } peers ? ConnectPartnersAsync(world, peers, joined, deadline.Token) : null;
        var state = new float[world.StateLength];
        float[]? targets = null;
        try
        {
            await client.ReceiveBroadcastAsync(world.StateStep, FrameKind.State, state, deadline.Token).ConfigureAwait(false);
            if (world.TargetsLength > 0)
            {
                // A fresh array, not the current targets': a step of the old world may still read those on the torch thread.
                targets = new float[world.TargetsLength];
                await client.ReceiveBroadcastAsync(world.StateStep, FrameKind.Targets, targets, deadline.Token).ConfigureAwait(false);
            }
        }
        catch when (ring is not null)
        {
            // The state's failure is the join's; the partners' setup is stopped and awaited, so it leaves no connection behind.
            await deadline.CancelAsync().ConfigureAwait(false);
            await ring.ContinueWith(static _ => { }, TaskScheduler.Default).ConfigureAwait(false);
            throw;
        }
        if (ring is not null) await ring.ConfigureAwait(false);
        var checksum = await torch.RunAsync(() =>
        {
            EngineState.Import(Engine, ReplicaFactory.Unflatten(state, template!), world.AdamSteps);
            runner!.Targets = targets is null ? null : SmoothTargets.From(targets, train!.Count, config!.Latent, "the coordinator's world state");
            if (Metrics(joined) is { } m)
            {
                m.SetWorkers(joined.Size);
                RecordBytes(joined, m);
            }
            return EngineState.Checksum(Engine);
        }).ConfigureAwait(false);
        telemetry.WorkerJoined();
        return checksum;
    }

    /// <summary>The data-plane options between workers: shared-memory segments that hold the reduction's largest frame, half the statistics.</summary>
    private DataPlaneOptions PartnerOptions(int statsLength) => (options ?? DataPlaneOptions.Default).WithSharedMemoryFor((statsLength + 1L) / 2 * sizeof(float));

    /// <summary>
    /// Connects this rank to its partners of the world's reduction among workers (through the listener every worker opened with
    /// its replica) and hands them to <paramref name="joined"/>; a world this worker has left by then gets none.
    /// </summary>
    private async Task ConnectPartnersAsync(FormWorld world, string[] peers, WorldLink joined, CancellationToken deadline)
    {
        var listener = peerListener ?? throw new InvalidOperationException("the world sums its statistics among the workers, but this worker has no listener for them");
        if (peers.Length != world.WorldSize)
            throw new InvalidOperationException($"membership epoch {world.MembershipEpoch} names {peers.Length} worker endpoints for {world.WorldSize} ranks");
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(deadline, joined.Left.Token);
        var endpoints = new EndPoint[peers.Length];
        for (var rank = 0; rank < peers.Length; rank++)
            endpoints[rank] = await DataPlaneSettings.ResolveAsync(peers[rank], cancel.Token).ConfigureAwait(false);
        var ring = await RecursiveHalvingReducer.ConnectAsync(listener, world.WorldId, world.Rank, endpoints, PartnerOptions(Engine.Layout.Length),
            // A refused peer is told why in the handshake, and its own join fails naming it.
            _ => { }, cancel.Token).ConfigureAwait(false);
        lock (joined)
        {
            if (!joined.Left.IsCancellationRequested)
            {
                joined.Ring = ring;
                return;
            }
        }
        ring.Dispose();
        throw new OperationCanceledException($"left membership epoch {world.MembershipEpoch} while connecting to the other workers");
    }

    public Task<WorkerStepResult> RunStepAsync(StartStep step)
    {
        var current = Volatile.Read(ref link);
        if (current is null || current.Epoch != step.MembershipEpoch)
            return Task.FromException<WorkerStepResult>(new InvalidOperationException($"not in membership epoch {step.MembershipEpoch}"));
        return torch.RunAsync(() => RunStep(step, current));
    }

    private WorkerStepResult RunStep(StartStep step, WorldLink world)
    {
        var clock = Stopwatch.StartNew();
        // The coordinator's step span is the parent: one trace holds the step on every node.
        using var trace = world.Tracer.Begin(step.Step + 1, step.Phase.Name(), StepTracer.ParseTraceParent(step.TraceParent));
        // The coordinator makes the same decision from the same numbers (ReplicaBackend.ReduceStepAsync).
        world.AmongWorkers = world.Ring is not null && RecursiveHalvingReducer.Applies(Engine.MicroBatches,
            ShardSampler.GlobalBatchRange(train!.Count, step.StepInEpoch, step.GlobalBatch).Length, world.Size);
        var outcome = runner!.Run(new StepInput(step.Step, step.Mode, step.DataEpoch, step.StepInEpoch, new ScheduleValues(step.Sigma, step.Eta),
            world.Rank, world.Size), world, trace);
        var checksum = step.VerifyChecksum ? EngineState.Checksum(Engine) : (ulong?)null;
        if (Metrics(world) is { } m)
        {
            m.RecordSamples(outcome.LocalSamples);
            m.RecordStep(clock.Elapsed, trace.Timings);
            m.SetLoss(outcome.Loss);
            if (step.Mode == StepMode.Joint) m.SetSchedule(step.Sigma, step.Eta);
            m.SetWorkers(world.Size);
            RecordBytes(world, m);
        }
        return new WorkerStepResult(checksum, trace.Timings.Communication);
    }

    public Task<byte[]> EvaluateAsync(EvaluateBlocks request) => torch.RunAsync(() =>
    {
        // The worker's part of the run's evaluation, spanned under its run id like its steps.
        using var span = Volatile.Read(ref link)?.Tracer.Span("dnm.evaluate", request.Step);
        test ??= TrainingRun.OpenEvaluation(config!, null).Data;
        // The accuracy's classifier learns from the run's labelled samples only, as on the coordinator and in one process.
        labelled ??= new Lazy<LabelledSamples?>(() => LabelledSamples.For(config!, train!));
        var isLabelled = labelled.Value is { } l ? l.IsLabelled : (Func<int, bool>?)null;
        var bytes = MapEvaluator.Tally(Engine, train!, test, request.Plan, request.Blocks, CancellationToken.None, isLabelled).ToBytes();
        return bytes.Length <= EvaluationProtocol.MaxTallyBytes ? bytes
            : throw new InvalidOperationException($"its evaluation tally is {bytes.Length} bytes, more than the {EvaluationProtocol.MaxTallyBytes} a message holds " +
                                                  "(a map this large with this many classes): lower eval-limit or evaluate with dnm eval");
    });

    public Task EmbedAsync(EmbedBlocks request, Action<int, byte[]> emit) => torch.RunAsync(() =>
    {
        using var span = Volatile.Read(ref link)?.Tracer.Span("dnm.embed", request.Step);
        // The same fitted set the coordinator's replica planned: a pure function of the run's config and dataset.
        somSet ??= SomFitSet.For(config!, train!);
        Embeddings.Blocks(Engine, somSet, request.Plan, request.Blocks, (block, rows) => emit(block, EmbeddingGather.Encode(rows)), CancellationToken.None);
    });

    private DnmMetrics? Metrics(WorldLink world) => telemetry.Worker(world.Rank, device.ToString());

    /// <summary>The data-plane bytes this world's connection moved since the last call, as counter increments.</summary>
    private static void RecordBytes(WorldLink world, DnmMetrics metrics)
    {
        var c = world.Client.Connection;
        long sent = c.BytesSent, received = c.BytesReceived;
        foreach (var peer in world.Ring?.Peers ?? [])
        {
            sent += peer.BytesSent;
            received += peer.BytesReceived;
        }
        metrics.RecordAllReduceBytes(sent - world.SentSeen, received - world.ReceivedSeen);
        world.SentSeen = sent;
        world.ReceivedSeen = received;
    }

    public void LeaveWorld()
    {
        if (Interlocked.Exchange(ref link, null) is not { } left) return;
        lock (left)
        {
            left.Left.Cancel();
            left.Ring?.Dispose();
        }
        left.Client.Dispose();
    }

    private StepEngine Engine => engine ?? throw new InvalidOperationException("the replica is not prepared");

    public void Dispose()
    {
        LeaveWorld();
        peerListener?.Dispose();
        _ = torch.RunAsync(() =>
        {
            runner?.Dispose();
            engine?.Dispose();
            train?.Dispose();
            test?.Dispose();
        });
        torch.Dispose();
    }
}
