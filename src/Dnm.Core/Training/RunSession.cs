using System.Text.Json.Serialization;
using System.Diagnostics;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Evaluation;
using Dnm.Core.Export;
using Dnm.Core.Som;
using Dnm.Core.Telemetry;

namespace Dnm.Core.Training;

/// <summary>A checkpoint written by <see cref="RunSession.SaveCheckpoint"/>.</summary>
public sealed record CheckpointSaved(string Path, long Bytes, TimeSpan Duration);

/// <summary>One line of metrics.jsonl: an evaluation of the map (<paramref name="Phase"/>: som-pretrain, joint or final).</summary>
/// <summary>final-metrics.json: the final evaluation, which samples it was made on, and how many.</summary>
public sealed record FinalMetrics(
    [property: JsonPropertyName("purity")] double? Purity,
    [property: JsonPropertyName("nmi")] double? Nmi,
    [property: JsonPropertyName("qe")] double Qe,
    [property: JsonPropertyName("te")] double Te,
    [property: JsonPropertyName("recon_mse")] double ReconMse,
    [property: JsonPropertyName("split")] string Split,
    [property: JsonPropertyName("samples")] int Samples)
{
    public static FinalMetrics Of(MapQuality q, EvaluationSplit split, int samples) =>
        new(q.Purity, q.Nmi, q.Qe, q.Te, q.ReconMse, KebabEnum.Name(split), samples);
}

public sealed record MetricsRow(string Phase, int Epoch, long GlobalStep, double? Purity, double? Nmi, double Qe, double Te, double ReconMse,
    int Samples, double Seconds)
{
    public static MetricsRow Of(string phase, int epoch, long globalStep, MapQuality q, int samples, TimeSpan duration) =>
        new(phase, epoch, globalStep, q.Purity, q.Nmi, q.Qe, q.Te, q.ReconMse, samples, duration.TotalSeconds);
}

/// <summary>
/// Everything of a run but its steps, for every world size: the run directory, resume, checkpoints (with
/// <see cref="CheckpointPolicy"/>), SOM pre-training, the periodic and final evaluations with their metrics rows,
/// final-metrics.json, final.ckpt and the pictures. It works on the run's authoritative replica: the single process's
/// engine, or the cluster coordinator's. <see cref="TrainingRun"/> and the coordinator's replica both use it; the
/// phase loop is <see cref="RunPlan"/>'s and the step <see cref="StepRunner"/>'s.
/// </summary>
public sealed class RunSession
{
    private readonly IImageDataset train;
    private readonly IImageDataset test;
    private readonly ITrainingObserver observer;
    private readonly StepTracer tracer;
    private readonly SomSchedule somSchedule;

    /// <param name="config">The run's config, already merged with a resumed checkpoint's (<see cref="Merge"/>) and validated.</param>
    public RunSession(DnmConfig config, RunDirectory run, StepEngine engine, IImageDataset train, IImageDataset test, ITrainingObserver observer,
        StepTracer? tracer = null, EvaluationSplit split = EvaluationSplit.Test)
    {
        Split = split;
        Config = config;
        // Said once, where both the single process and the coordinator's replica start the run's session.
        if (split == EvaluationSplit.Train)
            observer.OnMessage($"warning: {config.Dataset} has no test split, so the map is evaluated on its training samples (final-metrics.json says \"split\": \"train\"); name one with --test-dataset or hold one out with --test-fraction");
        Directory = run;
        Engine = engine;
        this.train = train;
        this.test = test;
        this.observer = observer;
        this.tracer = tracer ?? StepTracer.Untraced();
        Checkpoints = new CheckpointPolicy(config);
        somSchedule = new SomSchedule(config.Sigma0Resolved, config.Eta0, config.Alpha, config.SigmaFloor);
        run.WriteConfig(config);
    }

    public DnmConfig Config { get; }
    /// <summary>Whether the evaluation samples are held out, or (no test split exists) the training samples.</summary>
    public EvaluationSplit Split { get; }
    public RunDirectory Directory { get; }
    public StepEngine Engine { get; }
    public CheckpointPolicy Checkpoints { get; }

    /// <summary>The smoothed targets ẑ (smooth-weight &gt; 0), once made or resumed; part of every checkpoint.</summary>
    public SmoothTargets? Targets { get; private set; }

    /// <summary>
    /// The config a run continues with: a resumed checkpoint's, except the keys that describe this process rather than
    /// the run (device, threads, out).
    /// </summary>
    public static DnmConfig Merge(DnmConfig requested, Checkpoint? resumeFrom) =>
        resumeFrom is null ? requested : resumeFrom.Config with { Device = requested.Device, Threads = requested.Threads, Out = requested.Out };

    /// <summary>
    /// The state of a new run. With <see cref="DnmConfig.InitFrom"/> the replica first takes the exported model's weights,
    /// prototypes or both (<see cref="WarmStart"/>); otherwise it keeps the seed's.
    /// </summary>
    public RunState Start()
    {
        if (Config.InitFrom is { } path)
        {
            WarmStart.Apply(Engine.Model, Config, ExportedModel.Read(path), Config.InitParts, path);
            observer.OnMessage($"warm start: {KebabEnum.Name(Config.InitParts)} from {path}");
        }
        return new RunState();
    }

    /// <summary>Consecutive failed checkpoint writes after which the run fails (<see cref="SaveCheckpoint"/>).</summary>
    public const int MaxFailedWrites = 3;

    private int failedWrites;
    // The newest step checkpoint known to be good: written (or resumed from) with a matching checksum and finite tensors.
    private string? lastGood;

    /// <summary>
    /// Loads <paramref name="checkpoint"/> (named <paramref name="source"/> in errors; its path when it is a file) into the
    /// replica; returns its state.
    /// </summary>
    public RunState Resume(Checkpoint checkpoint, string source)
    {
        if (checkpoint.Shape != train.Shape)
            throw new CheckpointException($"checkpoint images are {checkpoint.Shape} but the dataset's are {train.Shape}");
        EngineState.Import(Engine, checkpoint.Tensors, checkpoint.AdamSteps);
        Targets = SmoothTargets.FromCheckpoint(checkpoint, Config, train.Count, source);
        var state = checkpoint.State;
        if (File.Exists(source) && checkpoint.NonFiniteTensor() is null) lastGood = Path.GetFullPath(source);
        Checkpoints.Saved(state);
        observer.OnMessage($"resumed at phase {state.Phase}, epoch {state.Epoch}, step {state.StepInEpoch} (global step {state.GlobalStep})");
        return state;
    }

    /// <summary>The replica's state as a checkpoint.</summary>
    public Checkpoint ToCheckpoint(RunState state)
    {
        var tensors = EngineState.Export(Engine);
        if (Targets is { } targets) tensors = [.. tensors, targets.ToNamedArray()];
        return new Checkpoint(Config, state, train.Shape, Engine.Optimizer.Steps, tensors);
    }

    /// <summary>Writes <paramref name="state"/>'s checkpoint if the policy says it is due (<paramref name="planned"/>: the plan asks for one).</summary>
    public CheckpointSaved? MaybeCheckpoint(RunState state, bool planned) =>
        Checkpoints.Due(state, planned) ? SaveCheckpoint(state) : null;

    /// <summary>
    /// Writes <paramref name="state"/>'s step checkpoint (atomically) and keeps the newest three, and the last good one.
    /// A write that fails with an I/O error (a full disk, EIO) is reported to the observer, leaves no temporary file, and
    /// returns null: training goes on, and the policy's next point tries again. <see cref="MaxFailedWrites"/> failures in a
    /// row fail the run with one <see cref="CheckpointException"/>.
    /// </summary>
    public CheckpointSaved? SaveCheckpoint(RunState state)
    {
        // A failed write, too, waits for the next planned point or interval: a disk that is full now is full a step later.
        Checkpoints.Saved(state);
        var path = Path.Combine(Directory.Checkpoints, Checkpoint.FileName(state));
        var checkpoint = ToCheckpoint(state);
        CheckpointSaved saved;
        try
        {
            saved = Save(checkpoint, state, path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            failedWrites++;
            var lastGoodText = lastGood is null ? "there is no earlier good checkpoint" : $"the last good checkpoint is {Path.GetFileName(lastGood)}";
            if (failedWrites >= MaxFailedWrites)
                throw new CheckpointException($"checkpoint writes failed {failedWrites} times in a row, the last {path}: {e.Message}. " +
                                              $"Free space in {Directory.Checkpoints} (or repair the disk) and resume; {lastGoodText}");
            observer.OnMessage($"warning: checkpoint {Path.GetFileName(path)} could not be written ({e.Message}); training goes on, " +
                               $"{lastGoodText} (failure {failedWrites} of {MaxFailedWrites} in a row)");
            return null;
        }
        failedWrites = 0;
        var problem = checkpoint.NonFiniteTensor() is { } tensor ? $"holds NaN or infinity (tensor {tensor})"
            : Checkpoint.Verifies(path) ? null : "does not verify when read back";
        if (problem is null) lastGood = path;
        else observer.OnMessage($"warning: checkpoint {Path.GetFileName(path)} {problem}; pruning keeps {(lastGood is null ? "every older one" : Path.GetFileName(lastGood))}");
        // Without a checkpoint known to be good, a bad one prunes nothing: the older ones may be the only good ones left.
        if (problem is null || lastGood is not null) Directory.PruneCheckpoints(keep: 3, lastGood);
        return saved;
    }

    private CheckpointSaved Save(Checkpoint checkpoint, RunState state, string path)
    {
        using var span = tracer.Span("dnm.checkpoint", state.GlobalStep);
        var clock = Stopwatch.StartNew();
        checkpoint.Save(path, Directory.CheckpointStream);
        var bytes = new FileInfo(path).Length;
        observer.OnCheckpoint(path, bytes, clock.Elapsed);
        return new CheckpointSaved(path, bytes, clock.Elapsed);
    }

    /// <summary>
    /// SOM pre-training on the replica's embeddings of the whole training set (or on the smoothed targets, made first
    /// when smoothing is on), then the move to the joint phase, checkpointed, and the baseline evaluation.
    /// </summary>
    public RunState PretrainSom(RunState state, CancellationToken cancel)
    {
        if (Config.SmoothWeight > 0 && Targets is null) Targets = SmoothTargets.Make(Config, Engine, train, observer, cancel);
        using (var targets = Targets?.ToTensor(Engine.Device))
            new SomPretrainer(Config, Engine, train, somSchedule, observer, targets).Run(ref state, s => MaybeCheckpoint(s, planned: false), cancel);
        state = state with { Phase = TrainingPhase.Joint, Epoch = 0, StepInEpoch = 0, PhaseStep = 0 };
        SaveCheckpoint(state);
        // The map as pre-training leaves it: the baseline the joint phase should improve on.
        if (Config.EvalEvery > 0) Evaluate(state, 0, cancel);
        return state;
    }

    /// <summary>
    /// A periodic evaluation into metrics.jsonl: nodes labelled from eval-limit training samples, quality on eval-limit
    /// test samples (epoch 0: the map SOM pre-training left).
    /// </summary>
    public EvaluationReport Evaluate(RunState state, int epoch, CancellationToken cancel)
    {
        using var span = tracer.Span("dnm.evaluate", state.GlobalStep);
        var (quality, samples, duration, _, _) = Measure(Config.EvalLimit, cancel);
        var phase = epoch == 0 ? TrainingPhase.SomPretrain : TrainingPhase.Joint;
        Directory.AppendMetrics(MetricsRow.Of(phase.Name(), epoch, state.GlobalStep, quality, samples, duration));
        var report = new EvaluationReport(state.Phase, epoch, state.GlobalStep, quality, samples, duration);
        observer.OnEvaluation(report);
        return report;
    }

    /// <summary>
    /// The end of a run: the final evaluation (node labels from the whole training set, quality on the whole test split),
    /// its metrics row, final-metrics.json, final.ckpt and the pictures (the hit map counts the training samples).
    /// </summary>
    public MapQuality Finish(RunState state, CancellationToken cancel)
    {
        (MapQuality Quality, int Samples, TimeSpan Duration, int[]? LabelMap, Placement Reference) final;
        using (tracer.Span("dnm.evaluate", state.GlobalStep))
            final = Measure(null, cancel);
        Directory.AppendMetrics(MetricsRow.Of("final", Config.Epochs, state.GlobalStep, final.Quality, final.Samples, final.Duration));
        observer.OnEvaluation(new EvaluationReport(TrainingPhase.Done, Config.Epochs, state.GlobalStep, final.Quality, final.Samples, final.Duration));
        Directory.WriteFinalMetrics(FinalMetrics.Of(final.Quality, Split, final.Samples));
        try
        {
            Save(ToCheckpoint(state), state, Directory.FinalCheckpoint);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"the final checkpoint {Directory.FinalCheckpoint} could not be written: {e.Message}. " +
                                          "Free space (or repair the disk) and run the same command with --resume to write it");
        }
        MapEvaluator.RenderPictures(Engine.Model, Directory.Root, final.LabelMap, train.ClassNames, final.Reference.Bmu);
        return final.Quality;
    }

    private (MapQuality Quality, int Samples, TimeSpan Duration, int[]? LabelMap, Placement Reference) Measure(int? limit, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        var reference = MapEvaluator.Place(Engine, train, Config.BatchSize, limit, cancel);
        var labelMap = MapEvaluator.LabelMap(reference, train, Engine.Som.Nodes);
        var placed = MapEvaluator.Place(Engine, test, Config.BatchSize, limit, cancel);
        var quality = MapEvaluator.Quality(placed, labelMap, test.HasLabels, Engine.Som.Grid);
        return (quality, placed.Bmu.Length, clock.Elapsed, labelMap, reference);
    }
}
