using System.Diagnostics;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Evaluation;
using Dnm.Core.Telemetry;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>What a finished run produced.</summary>
public sealed record TrainingResult(string RunDirectory, MapQuality Final, long GlobalSteps, TimeSpan Duration);

/// <summary>
/// `dnm train` in one process: opens the data, trains (or resumes), evaluates periodically into
/// metrics.jsonl, and writes final-metrics.json, the final checkpoint and the three pictures.
/// </summary>
public static class TrainingRun
{
    public static FolderOptions FolderOptionsOf(DnmConfig c) => new()
    {
        Channels = c.ImageChannels, Height = c.ImageSize, Width = c.ImageSize,
        OnBadFile = c.OnBadImage == "skip" ? BadFilePolicy.Skip : BadFilePolicy.Fail,
    };

    public static IImageDataset OpenSplit(DnmConfig c, string split, int? limit, IProgress<FetchProgress>? progress) =>
        DatasetCatalog.Open(c.Dataset, split, c.DataDir ?? DatasetCatalog.DefaultDataDir(), limit, FolderOptionsOf(c), progress);

    /// <param name="resumeFrom">A checkpoint to continue from; its config wins, except device, threads and out.</param>
    /// <param name="tracer">Traces steps, evaluations and checkpoints; timing only when null.</param>
    public static TrainingResult Execute(DnmConfig config, Device device, Checkpoint? resumeFrom, ITrainingObserver observer,
        IProgress<FetchProgress>? fetchProgress, CancellationToken cancel, StepTracer? tracer = null)
    {
        tracer ??= StepTracer.Untraced();
        var wall = Stopwatch.StartNew();
        if (resumeFrom is not null)
            config = resumeFrom.Config with { Device = config.Device, Threads = config.Threads, Out = config.Out };
        config.Validated();
        // Open the data first: a missing or corrupt dataset must not leave an empty run directory behind.
        using var train = OpenSplit(config, "train", config.Limit, fetchProgress);
        using var test = OpenSplit(config, "test", null, fetchProgress);
        var run = new RunDirectory(config.Out);
        run.WriteConfig(config);
        observer.OnMessage($"data: {train.Name} ({train.Count} samples, {train.Shape}), evaluation on {test.Name} ({test.Count} samples)");
        if (train.Count < config.BatchSize)
            throw new ConfigException($"batch-size {config.BatchSize} is larger than the training set ({train.Count} samples); lower --batch-size or raise --limit");

        using var trainer = new Trainer(config, train, device, run, observer, tracer);
        if (resumeFrom is not null) trainer.Resume(resumeFrom);

        void Evaluate(Trainer t, int epoch)
        {
            using var span = tracer.Span("dnm.evaluate", t.State.GlobalStep);
            var q = EvaluateNow(t.Engine, config, train, test, config.EvalLimit, cancel, out _);
            var report = new EvaluationReport(t.State.Phase, epoch, t.State.GlobalStep, q.Quality, q.Samples, q.Duration);
            run.AppendMetrics(new { phase = epoch == 0 ? "som-pretrain" : "joint", epoch, global_step = t.State.GlobalStep, q.Quality.Purity, q.Quality.Nmi, q.Quality.Qe, q.Quality.Te, recon_mse = q.Quality.ReconMse, samples = q.Samples, seconds = q.Duration.TotalSeconds });
            observer.OnEvaluation(report);
        }

        trainer.Run(Evaluate, cancel);

        // The final evaluation uses the whole training set for node labels and the whole test split.
        Evaluated final;
        int[]? labelMap;
        using (tracer.Span("dnm.evaluate", trainer.State.GlobalStep))
            final = EvaluateNow(trainer.Engine, config, train, test, null, cancel, out labelMap);
        run.AppendMetrics(new { phase = "final", epoch = config.Epochs, global_step = trainer.State.GlobalStep, final.Quality.Purity, final.Quality.Nmi, final.Quality.Qe, final.Quality.Te, recon_mse = final.Quality.ReconMse, samples = final.Samples, seconds = final.Duration.TotalSeconds });
        observer.OnEvaluation(new EvaluationReport(TrainingPhase.Done, config.Epochs, trainer.State.GlobalStep, final.Quality, final.Samples, final.Duration));
        run.WriteFinalMetrics(final.Quality);
        trainer.SaveCheckpoint(run.FinalCheckpoint);
        MapEvaluator.RenderPictures(trainer.Engine, labelMap, train.ClassNames, run.PrototypesPng, run.LabelMapPng, run.UMatrixPng);
        return new TrainingResult(run.Root, final.Quality, trainer.State.GlobalStep, wall.Elapsed);
    }

    private sealed record Evaluated(MapQuality Quality, int Samples, TimeSpan Duration);

    private static Evaluated EvaluateNow(StepEngine engine, DnmConfig config, IImageDataset train, IImageDataset test, int? limit,
        CancellationToken cancel, out int[]? labelMap)
    {
        var sw = Stopwatch.StartNew();
        var reference = MapEvaluator.Place(engine, train, config.BatchSize, limit, cancel);
        labelMap = MapEvaluator.LabelMap(reference, train, engine.Som.Nodes);
        var placed = MapEvaluator.Place(engine, test, config.BatchSize, limit, cancel);
        var quality = MapEvaluator.Quality(placed, labelMap, test.HasLabels, engine.Som.Rows, engine.Som.Cols);
        return new Evaluated(quality, placed.Bmu.Length, sw.Elapsed);
    }
}
