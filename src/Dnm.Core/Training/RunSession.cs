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
    [property: JsonPropertyName("accuracy")] double? Accuracy,
    [property: JsonPropertyName("qe")] double Qe,
    [property: JsonPropertyName("te")] double Te,
    [property: JsonPropertyName("recon_mse")] double ReconMse,
    [property: JsonPropertyName("split")] string Split,
    [property: JsonPropertyName("samples")] int Samples)
{
    public static FinalMetrics Of(MapQuality q, EvaluationSplit split, int samples) =>
        new(q.Purity, q.Nmi, q.Accuracy, q.Qe, q.Te, q.ReconMse, KebabEnum.Name(split), samples);
}

public sealed record MetricsRow(string Phase, int Epoch, long GlobalStep, double? Purity, double? Nmi, double? Accuracy, double Qe, double Te,
    double ReconMse, int Samples, double Seconds)
{
    public static MetricsRow Of(string phase, int epoch, long globalStep, MapQuality q, int samples, TimeSpan duration) =>
        new(phase, epoch, globalStep, q.Purity, q.Nmi, q.Accuracy, q.Qe, q.Te, q.ReconMse, samples, duration.TotalSeconds);
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
    // Semi-supervised training: the samples whose labels train, and label the classifier; null: unsupervised (all label it).
    private readonly LabelledSamples? labelled;
    // The training samples SOM pre-training fits (all, or a seeded subset of a large set).
    private readonly IImageDataset somSet;

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
        labelled = LabelledSamples.For(config, train);
        somSet = SomFitSet.For(config, train);
        if (labelled is not null) observer.OnMessage($"semi-supervised: {labelled.Description}");
        if (config.Denoise.Enabled) observer.OnMessage($"denoising autoencoder: inputs corrupted by {config.Denoise}");
        run.WriteConfig(config);
    }

    public DnmConfig Config { get; }
    /// <summary>Whether the evaluation samples are held out, or (no test split exists) the training samples.</summary>
    public EvaluationSplit Split { get; }
    public RunDirectory Directory { get; }
    public StepEngine Engine { get; }
    public CheckpointPolicy Checkpoints { get; }

    /// <summary>
    /// The coordinator incarnation that owns the run directory, where one does: once a newer incarnation exists, this
    /// session writes no checkpoint, evaluation row or final file (<see cref="RunFencedException"/>). None in one process.
    /// </summary>
    public RunFence? Fence { get; init; }

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
    // Consecutive evaluations whose metrics.jsonl line could not be written (Evaluate).
    private int failedMetricsWrites;
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
        var path = Path.Combine(Directory.Checkpoints, Checkpoint.FileName(state));
        Fence?.Check($"write checkpoint {Path.GetFileName(path)}");
        // A failed write, too, waits for the next planned point or interval: a disk that is full now is full a step later.
        Checkpoints.Saved(state);
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

    /// <summary>
    /// A stop on request at <paramref name="state"/> (a complete step): its checkpoint is written unless it already is, so
    /// the same command resumes exactly there. Returns the exception that says so, for the caller to throw.
    /// </summary>
    public RunStoppedException Stopped(RunState state)
    {
        var path = Path.Combine(Directory.Checkpoints, Checkpoint.FileName(state));
        var saved = Checkpoints.Due(state, planned: true) || !File.Exists(path) ? SaveCheckpoint(state)?.Path : path;
        return new RunStoppedException(saved is null
                ? $"stopped at global step {state.GlobalStep}; its checkpoint could not be written, the last good one is {lastGood ?? "none"}"
                : $"stopped at global step {state.GlobalStep}; checkpoint {saved}", state.GlobalStep, saved ?? lastGood);
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
    /// The embeddings <see cref="PretrainSom"/> needs, of <see cref="SomFitSet.For"/>: null when it needs none (the
    /// smoothed targets were resumed and no labelled sample is placed). A cluster's workers embed its blocks.
    /// </summary>
    public EmbeddingBlocks? SomEmbedding => Targets is not null && labelled is null ? null : Embeddings.Plan(Engine, somSet, Config.BatchSize);

    /// <summary>
    /// SOM pre-training on <paramref name="embeddings"/> (of <see cref="SomEmbedding"/>; null: this replica embeds every block
    /// itself, as one process does), or on the smoothed targets, made from them first when smoothing is on; then the labelled
    /// samples' first class counts and the move to the joint phase, checkpointed (the baseline evaluation follows where the
    /// plan says: <see cref="RunPlan.EvaluatesAfterSomPretraining"/>).
    /// </summary>
    public RunState PretrainSom(RunState state, EmbeddingGather? embeddings, CancellationToken cancel)
    {
        if (embeddings is null && SomEmbedding is { } plan) embeddings = Embeddings.All(Engine, somSet, plan, cancel);
        using var z = embeddings?.ToTensor(Engine.Device);
        if (Config.SmoothWeight > 0 && Targets is null) Targets = SmoothTargets.Make(Config, z!, train, observer, cancel);
        using (var targets = Targets?.ToTensor(Engine.Device))
            new SomPretrainer(Config, Engine, targets ?? z!, somSchedule, observer).Run(ref state, s => MaybeCheckpoint(s, planned: false), cancel);
        if (Engine.Classes is { } classes && labelled is not null) LearnInitialClasses(classes, labelled, z!);
        state = state with { Phase = TrainingPhase.Joint, Epoch = 0, StepInEpoch = 0, PhaseStep = 0 };
        SaveCheckpoint(state);
        return state;
    }

    /// <summary>
    /// The nodes' first class counts: every labelled sample of the fitted set, placed by its embedding on the map SOM
    /// pre-training left, counted by BMU and class (a fitted subset of a large set holds a uniform sample of the labelled
    /// ones). The joint phase then moves them with each step's reduced counts; on a cluster they reach the workers with
    /// the world's state.
    /// </summary>
    private void LearnInitialClasses(NodeClasses classes, LabelledSamples samples, TorchSharp.torch.Tensor embeddings)
    {
        // Row of each labelled sample in the fitted set (the whole training split, or a sorted subset of it).
        var rowOf = somSet is DatasetView view ? view.Indices.Select((index, row) => (index, row)).ToDictionary(p => p.index, p => p.row) : null;
        var rows = new List<int>(samples.Count);
        var labels = new List<int>(samples.Count);
        foreach (var index in samples.Indices)
        {
            var row = index;
            if (rowOf is not null && !rowOf.TryGetValue(index, out row)) continue;
            rows.Add(row);
            labels.Add(train.Label(index));
        }
        if (rows.Count == 0) return;
        var dim = Engine.Som.Dim;
        var w = MapEvaluator.Prototypes(Engine.Model);
        var z = new float[rows.Count * dim];
        using (var scope = TorchSharp.torch.NewDisposeScope())
        {
            var picked = embeddings.index_select(0, TorchSharp.torch.tensor(rows.Select(r => (long)r).ToArray(), device: embeddings.device)).cpu();
            picked.data<float>().CopyTo(z);
        }
        var (bmu, _, _) = MapMetrics.BestMatches(z, rows.Count, w, Engine.Som.Nodes, dim);
        classes.Set(NodeClasses.Histogram(bmu, labels.ToArray(), classes.Nodes, classes.Classes));
    }

    /// <summary>
    /// A periodic evaluation into metrics.jsonl: nodes labelled from eval-limit training samples, quality on eval-limit
    /// test samples (epoch 0: the map SOM pre-training left). This process tallies every block.
    /// </summary>
    public EvaluationReport Evaluate(RunState state, int epoch, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        EvaluationTally tally;
        using (tracer.Span("dnm.evaluate", state.GlobalStep))
            tally = Tally(EvaluationPlan(final: false), cancel);
        return ReportEvaluation(state, epoch, tally, clock.Elapsed);
    }

    /// <summary>
    /// How an evaluation is cut into blocks: a periodic one (<paramref name="final"/> false) measures eval-limit samples of
    /// each set, the final one all of them. A cluster hands every N-th block to each worker.
    /// </summary>
    public EvaluationBlocks EvaluationPlan(bool final) =>
        MapEvaluator.Plan(Engine, train, test, Config.BatchSize, final ? null : Config.EvalLimit);

    /// <summary>Tallies every block of <paramref name="plan"/> on this replica.</summary>
    public EvaluationTally Tally(EvaluationBlocks plan, CancellationToken cancel) =>
        MapEvaluator.Tally(Engine, train, test, plan, Enumerable.Range(0, plan.Count), cancel, labelled is null ? null : labelled.IsLabelled);

    /// <summary>A periodic evaluation's metrics row from its complete tally (this process's, or the workers' merged).</summary>
    public EvaluationReport ReportEvaluation(RunState state, int epoch, EvaluationTally tally, TimeSpan duration)
    {
        var quality = Quality(tally);
        var samples = tally.Blocks.EvaluatedSamples;
        Fence?.Check($"append the evaluation at global step {state.GlobalStep} to metrics.jsonl");
        var phase = epoch == 0 ? TrainingPhase.SomPretrain : TrainingPhase.Joint;
        AppendMetricsRow(MetricsRow.Of(phase.Name(), epoch, state.GlobalStep, quality, samples, duration));
        var report = new EvaluationReport(state.Phase, epoch, state.GlobalStep, quality, samples, duration);
        observer.OnEvaluation(report);
        return report;
    }

    /// <summary>
    /// Appends a periodic evaluation's row to metrics.jsonl. A write that fails with an I/O error (a full disk) leaves no half
    /// line, is reported, and training goes on (the observer still gets the evaluation); <see cref="MaxFailedWrites"/>
    /// failures in a row fail the run with one <see cref="CheckpointException"/>, as checkpoint writes do.
    /// </summary>
    private void AppendMetricsRow(MetricsRow row)
    {
        try
        {
            Directory.AppendMetrics(row);
            failedMetricsWrites = 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            failedMetricsWrites++;
            if (failedMetricsWrites >= MaxFailedWrites)
                throw new CheckpointException($"writes to {Directory.MetricsJsonl} failed {failedMetricsWrites} times in a row: {e.Message}. " +
                                              $"Free space in {Directory.Root} (or repair the disk) and resume");
            observer.OnMessage($"warning: the evaluation of step {row.GlobalStep} could not be added to {Path.GetFileName(Directory.MetricsJsonl)} ({e.Message}); " +
                               $"training goes on (failure {failedMetricsWrites} of {MaxFailedWrites} in a row)");
        }
    }

    /// <summary>
    /// The end of a run: the final evaluation (node labels from the whole training set, quality on the whole test split),
    /// its metrics row, final-metrics.json, final.ckpt and the pictures (the hit map counts the training samples).
    /// </summary>
    public MapQuality Finish(RunState state, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        EvaluationTally tally;
        using (tracer.Span("dnm.evaluate", state.GlobalStep))
            tally = Tally(EvaluationPlan(final: true), cancel);
        return Finish(state, tally, clock.Elapsed);
    }

    /// <summary><see cref="Finish(RunState, CancellationToken)"/> from the final evaluation's complete tally.</summary>
    public MapQuality Finish(RunState state, EvaluationTally tally, TimeSpan duration)
    {
        var quality = Quality(tally);
        var samples = tally.Blocks.EvaluatedSamples;
        observer.OnEvaluation(new EvaluationReport(TrainingPhase.Done, Config.Epochs, state.GlobalStep, quality, samples, duration));
        // The final checkpoint first: it is the run's result, and what --resume needs to write the rest.
        Fence?.Check("write the final evaluation, final-metrics.json and final.ckpt");
        try
        {
            Save(ToCheckpoint(state), state, Directory.FinalCheckpoint);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"the final checkpoint {Directory.FinalCheckpoint} could not be written: {e.Message}. " +
                                          "Free space (or repair the disk) and run the same command with --resume to write it");
        }
        try
        {
            Directory.AppendMetrics(MetricsRow.Of("final", Config.Epochs, state.GlobalStep, quality, samples, duration));
            Directory.WriteFinalMetrics(FinalMetrics.Of(quality, Split, samples));
            MapEvaluator.RenderPictures(Engine.Model, Directory.Root, tally.LabelMap(train.HasLabels), train.ClassNames, tally.Hits());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"the run's final files could not be written in {Directory.Root}: {e.Message}. Free space (or repair the disk) " +
                                          $"and evaluate again; the final checkpoint {Directory.FinalCheckpoint} was written (dnm eval and dnm map read it)");
        }
        return quality;
    }

    private MapQuality Quality(EvaluationTally tally)
    {
        if (tally.Blocks.EvaluatedSamples == 0)
            throw new InvalidOperationException("the evaluation set is empty");
        // The classifier knows only the labelled samples' labels, as training did: a semi-supervised map and the same map
        // trained unsupervised (label-weight 0) are classified alike.
        return tally.Quality(train.HasLabels, test.HasLabels, test.Shape.Pixels, MapEvaluator.Prototypes(Engine.Model), Engine.Som.Dim);
    }
}
