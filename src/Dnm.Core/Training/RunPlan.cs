using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Som;

namespace Dnm.Core.Training;

/// <summary>What the coordinator does next.</summary>
public abstract record PlannedAction;

/// <summary>One global step: the batch at <paramref name="StepInEpoch"/> of data epoch <paramref name="DataEpoch"/>.</summary>
public sealed record PlannedStep(TrainingPhase Phase, StepMode Mode, int Epoch, int Epochs, int StepInEpoch, int DataEpoch,
    int BatchLength, ScheduleValues Schedule) : PlannedAction;

/// <summary>Move to the next phase without a step (the state changes, nothing is trained).</summary>
public sealed record EnterPhase(RunState State) : PlannedAction;

/// <summary>Fit the SOM on the embeddings of the whole training set (in a cluster, on the coordinator's replica).</summary>
public sealed record PretrainSom : PlannedAction
{
    public static readonly PretrainSom Instance = new();
}

/// <summary>Every phase is done.</summary>
public sealed record PlanFinished : PlannedAction
{
    public static readonly PlanFinished Instance = new();
}

/// <summary>
/// The run's phases as a pure function of <see cref="RunState"/>: which step comes next, on which global batch, with
/// which schedule values, and where to checkpoint and evaluate. The one phase loop of every run: the single-process
/// <see cref="Trainer"/> and the cluster's coordinator both follow it, so a world of N takes the same steps as one process.
/// </summary>
public sealed class RunPlan
{
    private readonly DnmConfig config;
    private readonly SomSchedule schedule;

    public RunPlan(DnmConfig config, int sampleCount)
    {
        this.config = config;
        SampleCount = sampleCount;
        StepsPerEpoch = ShardSampler.StepsPerEpoch(sampleCount, config.BatchSize);
        schedule = new SomSchedule(config.Sigma0Resolved, config.Eta0, config.Alpha, config.SigmaFloor);
    }

    public int SampleCount { get; }
    public int StepsPerEpoch { get; }

    /// <summary>Whether the map SOM pre-training leaves is evaluated (epoch 0): the baseline the joint phase should improve on.</summary>
    public bool EvaluatesAfterSomPretraining => config.EvalEvery > 0;

    public PlannedAction Next(RunState s) => s.Phase switch
    {
        TrainingPhase.Pretrain when s.Epoch < config.PretrainEpochs => Step(s, StepMode.Autoencoder, config.PretrainEpochs, 0),
        TrainingPhase.Pretrain => new EnterPhase(s with { Phase = TrainingPhase.SomPretrain, Epoch = 0, StepInEpoch = 0, PhaseStep = 0 }),
        TrainingPhase.SomPretrain => PretrainSom.Instance,
        // Joint epochs continue the data order after the pre-training epochs, so no epoch repeats one.
        TrainingPhase.Joint when s.Epoch < config.Epochs => Step(s, StepMode.Joint, config.Epochs, config.PretrainEpochs),
        TrainingPhase.Joint => new EnterPhase(s with { Phase = TrainingPhase.Done, Epoch = 0, StepInEpoch = 0 }),
        _ => PlanFinished.Instance,
    };

    /// <summary>
    /// The state after a completed step, whether a checkpoint is due by step count (every checkpoint-every steps;
    /// <see cref="CheckpointPolicy"/> adds the wall-time ones), and whether to evaluate the map (at the end of every
    /// eval-every-th joint epoch but the last, which the final evaluation covers).
    /// </summary>
    public (RunState State, bool Checkpoint, bool Evaluate) AfterStep(RunState s)
    {
        s = s with { StepInEpoch = s.StepInEpoch + 1, PhaseStep = s.PhaseStep + 1, GlobalStep = s.GlobalStep + 1 };
        var checkpoint = s.GlobalStep % config.CheckpointEvery == 0;
        if (s.StepInEpoch < StepsPerEpoch) return (s, checkpoint, false);
        // The epoch is complete: a checkpoint written now resumes at the next one.
        s = s with { Epoch = s.Epoch + 1, StepInEpoch = 0 };
        var evaluate = s.Phase == TrainingPhase.Joint && config.EvalEvery > 0 && s.Epoch % config.EvalEvery == 0 && s.Epoch < config.Epochs;
        return (s, checkpoint, evaluate);
    }

    /// <summary>
    /// The report of <paramref name="p"/> once done, the run at <paramref name="globalStep"/>: σ and η only where the
    /// Kohonen rule ran (joint steps). The Trainer and the coordinator report their steps with it.
    /// </summary>
    public StepReport Report(PlannedStep p, long globalStep, StepLoss loss, TimeSpan duration, Telemetry.StepTimings? timings = null)
    {
        var joint = p.Mode == StepMode.Joint;
        return new StepReport(p.Phase, p.Epoch, p.Epochs, p.StepInEpoch + 1, StepsPerEpoch, globalStep, p.BatchLength, loss,
            joint ? p.Schedule.Sigma : double.NaN, joint ? p.Schedule.Eta : double.NaN, duration, timings);
    }

    private PlannedStep Step(RunState s, StepMode mode, int epochs, int dataEpochOffset)
    {
        var counter = config.ScheduleCounter switch
        {
            ScheduleCounter.Epoch => s.Epoch,                              // the paper's pseudo-code
            ScheduleCounter.Continue => config.SomIterations + s.PhaseStep, // SOM pre-training's decay goes on
            _ => s.PhaseStep,                                              // Step: restart at σ0 for the joint phase
        };
        var length = ShardSampler.GlobalBatchRange(SampleCount, s.StepInEpoch, config.BatchSize).Length;
        return new PlannedStep(s.Phase, mode, s.Epoch, epochs, s.StepInEpoch, s.Epoch + dataEpochOffset, length,
            new ScheduleValues(schedule.Sigma(counter), schedule.Eta(counter)));
    }
}
