using System.Diagnostics;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Telemetry;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// The single-process run: a cluster of one. It follows the one <see cref="RunPlan"/>, runs each step with the one
/// <see cref="StepRunner"/> and the <see cref="LocalReducer"/>, and leaves checkpoints, SOM pre-training and evaluations
/// to the one <see cref="RunSession"/>, exactly as the cluster's coordinator and workers do with the data plane.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly RunPlan plan;
    private readonly ITrainingObserver observer;
    private readonly StepTracer tracer;
    private readonly StepRunner runner;
    private readonly NonFiniteSteps nonFinite = new();
    private RunState state = new();
    // Resumed, or started (warm-started where the config says so): Run starts a new run only once.
    private bool begun;

    /// <param name="tracer">Times (and, where traced, spans) each step's phases; untraced timing when null.</param>
    public Trainer(DnmConfig config, IImageDataset train, IImageDataset test, Device device, RunDirectory run, ITrainingObserver observer,
        StepTracer? tracer = null, EvaluationSplit split = EvaluationSplit.Test)
    {
        this.observer = observer;
        this.tracer = tracer ?? StepTracer.Untraced();
        Engine = new StepEngine(config, train.Shape, device, config.BatchSize, LabelledSamples.Classes(config, train));
        Session = new RunSession(config, run, Engine, train, test, observer, this.tracer, split);
        plan = new RunPlan(config, train.Count);
        runner = new StepRunner(config, Engine, train, observer);
    }

    public StepEngine Engine { get; }
    public RunSession Session { get; }
    public RunState State => state;

    /// <summary>Continues from a checkpoint of the same model (the config may differ in run-length keys only).</summary>
    /// <param name="source">The checkpoint's file, when it came from one (errors name it; pruning keeps it as the last good one).</param>
    public void Resume(Checkpoint checkpoint, string source = "the checkpoint")
    {
        state = Session.Resume(checkpoint, source);
        begun = true;
    }

    /// <summary>Runs every remaining phase; returns at the end of the plan (<see cref="TrainingPhase.Done"/>).</summary>
    public void Run(CancellationToken cancel)
    {
        if (!begun)
        {
            state = Session.Start();
            begun = true;
        }
        TrainingPhase? reported = null;
        while (true)
        {
            // Between steps the replica holds exactly `state`: a stop on request (SIGTERM, Ctrl+C) checkpoints it, so the
            // same command resumes at this step. (SOM pre-training stops at once; its last checkpoint stays.)
            if (cancel.IsCancellationRequested) throw Session.Stopped(state);
            switch (plan.Next(state))
            {
                case EnterPhase e:
                    state = e.State;
                    break;
                case PretrainSom:
                    state = Session.PretrainSom(state, embeddings: null, cancel);
                    if (plan.EvaluatesAfterSomPretraining) Session.Evaluate(state, 0, cancel);
                    break;
                case PlannedStep p:
                    if (reported != p.Phase)
                    {
                        observer.OnPhaseStarted(p.Phase, p.Epochs, plan.StepsPerEpoch);
                        reported = p.Phase;
                    }
                    Step(p, cancel);
                    break;
                default:
                    return;
            }
        }
    }

    /// <summary>One optimisation step. It is reported inside its span, so log lines written for it carry its trace id.</summary>
    private void Step(PlannedStep p, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        StepOutcome outcome;
        var (next, checkpoint, evaluate) = plan.AfterStep(state);
        using (var trace = tracer.Begin(state.GlobalStep + 1, p.Phase.Name()))
        {
            runner.Targets = Session.Targets;
            outcome = runner.Run(new StepInput(state.GlobalStep, p.Mode, p.DataEpoch, p.StepInEpoch, p.Schedule), LocalReducer.Instance, trace);
            state = next;
            observer.OnStep(plan.Report(p, state.GlobalStep, outcome.Loss, clock.Elapsed, trace.Timings));
        }
        if (nonFinite.Record(state.GlobalStep, outcome.Loss) is { } skipped)
        {
            if (nonFinite.Failed) throw new NonFiniteStepException(skipped);
            observer.OnMessage(skipped);
        }
        Session.MaybeCheckpoint(state, checkpoint);
        if (!evaluate) return;
        try
        {
            Session.Evaluate(state, state.Epoch, cancel);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            // The step is complete: stop with its checkpoint (metrics.jsonl lacks this one evaluation).
            throw Session.Stopped(state);
        }
    }

    /// <summary>The run as it stands, as a checkpoint.</summary>
    public Checkpoint ToCheckpoint() => Session.ToCheckpoint(state);

    public void Dispose()
    {
        runner.Dispose();
        Engine.Dispose();
    }
}
