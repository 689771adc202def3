using System.Diagnostics;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Som;
using Dnm.Core.Telemetry;
using TorchSharp;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// The single-process trainer: a thin loop over one <see cref="StepEngine"/> whose "reduction" is the
/// identity. It is the reference that distributed training must equal. Phases: autoencoder
/// pre-training, SOM pre-training on the embeddings, joint training; then the final evaluation.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly DnmConfig config;
    private readonly IImageDataset train;
    private readonly RunDirectory run;
    private readonly ITrainingObserver observer;
    private readonly StepTracer tracer;
    private readonly SomSchedule somSchedule;
    private readonly BatchBuffer batch;
    private readonly float[] batchTargets;
    private SmoothTargets? smoothTargets; // ẑ, once made (they are part of checkpoints)
    private readonly ImageAugmenter augmenter;
    private readonly float[] softCounts;
    private readonly float[] stats;
    private RunState state = new();

    /// <param name="tracer">Times (and, where traced, spans) each step's phases; untraced timing when null.</param>
    public Trainer(DnmConfig config, IImageDataset train, Device device, RunDirectory run, ITrainingObserver observer, StepTracer? tracer = null)
    {
        this.config = config;
        this.train = train;
        this.run = run;
        this.observer = observer;
        this.tracer = tracer ?? StepTracer.Untraced();
        Engine = new StepEngine(config, train.Shape, device, config.BatchSize);
        somSchedule = new SomSchedule(config.Sigma0Resolved, config.Eta0, config.Alpha, config.SigmaFloor);
        batch = new BatchBuffer(train.Shape, config.BatchSize);
        batchTargets = new float[config.SmoothWeight > 0 ? config.BatchSize * config.Latent : 0];
        augmenter = ImageAugmenter.For(config, train.Shape);
        softCounts = new float[Engine.Layout.Nodes];
        stats = new float[Engine.Layout.Length];
    }

    public StepEngine Engine { get; }
    public RunState State => state;

    /// <summary>Continues from a checkpoint of the same model (the config may differ in run-length keys only).</summary>
    public void Resume(Checkpoint checkpoint)
    {
        if (checkpoint.Shape != train.Shape)
            throw new CheckpointException($"checkpoint images are {checkpoint.Shape} but the dataset's are {train.Shape}");
        EngineState.Import(Engine, checkpoint.Tensors, checkpoint.AdamSteps);
        state = checkpoint.State;
        smoothTargets = SmoothTargets.FromCheckpoint(checkpoint, config, train.Count, "the checkpoint");
        observer.OnMessage($"resumed at phase {state.Phase}, epoch {state.Epoch}, step {state.StepInEpoch} (global step {state.GlobalStep})");
    }

    /// <summary>Runs every remaining phase. <paramref name="evaluate"/> is called at the end of each joint epoch that should be evaluated.</summary>
    public void Run(Action<Trainer, int>? evaluate, CancellationToken cancel)
    {
        if (state.Phase == TrainingPhase.Pretrain)
        {
            RunEpochs(TrainingPhase.Pretrain, config.PretrainEpochs, StepMode.Autoencoder, null, cancel);
            state = state with { Phase = TrainingPhase.SomPretrain, Epoch = 0, StepInEpoch = 0, PhaseStep = 0 };
        }
        if (state.Phase == TrainingPhase.SomPretrain)
        {
            if (config.SmoothWeight > 0 && smoothTargets is null) smoothTargets = SmoothTargets.Make(config, Engine, train, observer, cancel);
            using var targets = smoothTargets?.ToTensor(Engine.Device);
            new SomPretrainer(config, Engine, train, somSchedule, observer, targets).Run(ref state, SaveCheckpoint, cancel);
            state = state with { Phase = TrainingPhase.Joint, Epoch = 0, StepInEpoch = 0, PhaseStep = 0 };
            SaveCheckpoint();
            // The map as pre-training leaves it: the baseline the joint phase should improve on.
            if (evaluate is not null && config.EvalEvery > 0) evaluate(this, 0);
        }
        if (state.Phase == TrainingPhase.Joint)
        {
            RunEpochs(TrainingPhase.Joint, config.Epochs, StepMode.Joint, evaluate, cancel);
            state = state with { Phase = TrainingPhase.Done, Epoch = 0, StepInEpoch = 0 };
        }
    }

    private void RunEpochs(TrainingPhase phase, int epochs, StepMode mode, Action<Trainer, int>? evaluate, CancellationToken cancel)
    {
        var stepsPerEpoch = ShardSampler.StepsPerEpoch(train.Count, config.BatchSize);
        observer.OnPhaseStarted(phase, epochs, stepsPerEpoch);
        // Joint epochs continue the data order after the pre-training epochs, so no epoch repeats one.
        var dataEpochOffset = phase == TrainingPhase.Joint ? config.PretrainEpochs : 0;
        for (; state.Epoch < epochs; state = state with { Epoch = state.Epoch + 1, StepInEpoch = 0 })
        {
            var dataEpoch = state.Epoch + dataEpochOffset;
            var order = ShardSampler.EpochOrder(train.Count, config.Seed, dataEpoch);
            while (state.StepInEpoch < stepsPerEpoch)
            {
                cancel.ThrowIfCancellationRequested();
                Step(phase, mode, epochs, stepsPerEpoch, order, dataEpoch);
                if (state.GlobalStep % config.CheckpointEvery == 0 && state.StepInEpoch < stepsPerEpoch) SaveCheckpoint();
            }
            // The epoch is complete: checkpoint it as such, so a resume starts the next one.
            state = state with { Epoch = state.Epoch + 1, StepInEpoch = 0 };
            SaveCheckpoint();
            if (evaluate is not null && config.EvalEvery > 0 && state.Epoch % config.EvalEvery == 0 && state.Epoch < epochs)
                evaluate(this, state.Epoch);
            state = state with { Epoch = state.Epoch - 1 }; // the for-increment adds it back
        }
    }

    /// <summary>One optimisation step. It is reported inside its span, so log lines written for it carry its trace id.</summary>
    private void Step(TrainingPhase phase, StepMode mode, int epochs, int stepsPerEpoch, int[] order, int dataEpoch)
    {
        var sw = Stopwatch.StartNew();
        using var trace = tracer.Begin(state.GlobalStep + 1, phase.Name());
        var indices = ShardSampler.GlobalBatch(order, state.StepInEpoch, config.BatchSize);
        var n = batch.Fill(train, indices);
        augmenter.Apply(batch.FilledPixels, indices, dataEpoch);
        var counter = config.ScheduleCounter switch
        {
            "epoch" => state.Epoch,                             // the paper's pseudo-code
            "continue" => config.SomIterations + state.PhaseStep, // SOM pre-training's decay goes on
            _ => state.PhaseStep,                               // restart at σ0 for the joint phase
        };
        var schedule = new ScheduleValues(somSchedule.Sigma(counter), somSchedule.Eta(counter));
        StepLoss loss;
        // Everything a step allocates on the native side is released when the step ends.
        // One replica: its soft counts and statistics already are the global sums, so the two
        // reduce phases are empty here (their timings stay zero).
        using (NewDisposeScope())
        {
            var targets = ReadOnlySpan<float>.Empty;
            if (mode == StepMode.Joint && smoothTargets is not null && config.SmoothWeight > 0)
                targets = smoothTargets.Gather(indices[..n], batchTargets);
            using (trace.Phase(StepPhase.Encode)) Engine.Forward(batch.FilledPixels, targets, n, mode, softCounts);
            using (trace.Phase(StepPhase.Backward)) Engine.Backward(softCounts, n, stats);
            observer.OnStepReduced(state.GlobalStep + 1, mode == StepMode.Joint ? softCounts : [], stats);
            loss = Engine.Apply(stats, n, schedule, trace);
        }
        state = state with { StepInEpoch = state.StepInEpoch + 1, PhaseStep = state.PhaseStep + 1, GlobalStep = state.GlobalStep + 1 };
        observer.OnStep(new StepReport(phase, state.Epoch, epochs, state.StepInEpoch, stepsPerEpoch, state.GlobalStep, n, loss,
            mode == StepMode.Joint ? schedule.Sigma : double.NaN, mode == StepMode.Joint ? schedule.Eta : double.NaN, sw.Elapsed, trace.Timings));
    }

    public Checkpoint ToCheckpoint()
    {
        var tensors = EngineState.Export(Engine);
        if (smoothTargets is not null)
            tensors = [.. tensors, smoothTargets.ToNamedArray()];
        return new(config, state, train.Shape, Engine.Optimizer.Steps, tensors);
    }

    public void SaveCheckpoint() => SaveCheckpoint(Path.Combine(run.Checkpoints, Checkpoint.FileName(state.GlobalStep)));

    public void SaveCheckpoint(string path)
    {
        using var span = tracer.Span("dnm.checkpoint", state.GlobalStep);
        var sw = Stopwatch.StartNew();
        ToCheckpoint().Save(path);
        run.PruneCheckpoints(keep: 3);
        observer.OnCheckpoint(path, new FileInfo(path).Length, sw.Elapsed);
    }

    public void Dispose() => Engine.Dispose();
}
