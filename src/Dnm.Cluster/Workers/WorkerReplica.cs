using System.Diagnostics;
using Dnm.Cluster.Protocol;
using Dnm.Cluster.Replica;
using Dnm.Cluster.Transport;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Som;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Cluster.Workers;

/// <summary>
/// A worker's replica: its data, its <see cref="StepEngine"/>, its data-plane connection and the dedicated
/// thread on which every torch call of a step runs (Forward opens the step's dispose scope, Apply or Abort
/// closes it, and TorchSharp's scopes belong to one thread).
/// </summary>
public sealed class WorkerReplica(string name, Device device, DataPlaneOptions? options = null) : IWorkerBackend
{
    private readonly TorchThread torch = new($"dnm-{name}");
    private string? configJson;
    private DnmConfig? config;
    private IImageDataset? train;
    private StepEngine? engine;
    private IReadOnlyList<NamedArray>? template;
    private BatchBuffer? batch;
    private float[] softCounts = [];
    private float[] stats = [];
    private (int DataEpoch, int[] Order)? order;
    // Replaced as a whole on every world (actor side); a step captures the link it started with (torch side).
    private WorldLink? link;

    private sealed record WorldLink(long Epoch, int Rank, int Size, StarReduceClient Client);

    public Task<WorkerPrepared> PrepareAsync(RegistrationAccepted accepted) => torch.RunAsync(() =>
    {
        if (engine is null || configJson != accepted.ConfigJson)
        {
            engine?.Dispose();
            train?.Dispose();
            engine = null;
            config = DnmConfig.FromJson(accepted.ConfigJson, "the coordinator's run config");
            if (config.Threads > 0) TorchSharp.torch.set_num_threads(config.Threads);
            train = TrainingRun.OpenSplit(config, "train", config.Limit, null);
            // The largest shard is the whole global batch (a world of one).
            engine = ReplicaFactory.Create(config, train.Shape, device, config.BatchSize);
            template = EngineState.Export(engine);
            batch = new BatchBuffer(train.Shape, config.BatchSize);
            softCounts = new float[engine.Layout.Nodes];
            stats = new float[engine.Layout.Length];
            order = null;
            configJson = accepted.ConfigJson;
        }
        return new WorkerPrepared(train!.Count, train.Shape, engine.Layout.Length);
    });

    public async Task<ulong> JoinWorldAsync(FormWorld world)
    {
        LeaveWorld();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var endpoint = await DataPlaneSettings.ResolveAsync(world.DataPlaneEndpoint, deadline.Token).ConfigureAwait(false);
        var client = await StarReduceClient.ConnectAsync(endpoint, world.WorldId, world.Rank, options, deadline.Token).ConfigureAwait(false);
        Volatile.Write(ref link, new WorldLink(world.MembershipEpoch, world.Rank, world.WorldSize, client));
        var state = new float[world.StateLength];
        await client.ReceiveBroadcastAsync(world.StateStep, FrameKind.State, state, deadline.Token).ConfigureAwait(false);
        return await torch.RunAsync(() =>
        {
            EngineState.Import(Engine, ReplicaFactory.Unflatten(state, template!), world.AdamSteps);
            return EngineState.Checksum(Engine);
        }).ConfigureAwait(false);
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
        var e = Engine;
        var count = train!.Count;
        if (order?.DataEpoch != step.DataEpoch) order = (step.DataEpoch, ShardSampler.EpochOrder(count, config!.Seed, step.DataEpoch));
        var shard = ShardSampler.Shard(order.Value.Order, step.StepInEpoch, step.GlobalBatch, world.Rank, world.Size);
        var n = batch!.Fill(train, shard);
        // Loss and gradients are divided by the whole batch's B, so the ranks' statistics sum to the global ones.
        var globalBatch = ShardSampler.GlobalBatchRange(count, step.StepInEpoch, step.GlobalBatch).Length;
        var reduce = new Stopwatch();
        using (NewDisposeScope())
        {
            e.Forward(batch.FilledPixels, n, step.Mode, softCounts);
            try
            {
                if (step.Mode == StepMode.Joint)
                    AllReduce(world.Client, step.Step, FrameKind.SoftCounts, softCounts, reduce);
                e.Backward(softCounts, globalBatch, stats);
                AllReduce(world.Client, step.Step, FrameKind.Gradients, stats, reduce);
                e.Apply(stats, globalBatch, new ScheduleValues(step.Sigma, step.Eta));
            }
            catch
            {
                // Same thread as Forward: the step's scope closes here and nothing of the step is applied.
                e.Abort();
                throw;
            }
        }
        return new WorkerStepResult(step.VerifyChecksum ? EngineState.Checksum(e) : null, reduce.Elapsed);
    }

    private static void AllReduce(StarReduceClient client, long step, FrameKind kind, float[] data, Stopwatch clock)
    {
        clock.Start();
        // Blocking is deliberate: this is the replica's own thread, and the step cannot go on without the sum.
        client.AllReduceAsync(step, kind, data).AsTask().GetAwaiter().GetResult();
        clock.Stop();
    }

    public void LeaveWorld() => Interlocked.Exchange(ref link, null)?.Client.Dispose();

    private StepEngine Engine => engine ?? throw new InvalidOperationException("the replica is not prepared");

    public void Dispose()
    {
        LeaveWorld();
        _ = torch.RunAsync(() =>
        {
            engine?.Dispose();
            train?.Dispose();
        });
        torch.Dispose();
    }
}
