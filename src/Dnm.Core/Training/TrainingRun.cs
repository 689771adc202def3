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
        OnBadFile = c.OnBadImage,
    };

    public static IImageDataset OpenSplit(DnmConfig c, string split, int? limit, IProgress<FetchProgress>? progress) =>
        DatasetCatalog.Open(c.Dataset, split, c.DataDir ?? DatasetCatalog.DefaultDataDir(), limit, FolderOptionsOf(c), progress);

    /// <param name="resumeFrom">A checkpoint to continue from; its config wins, except device, threads and out.</param>
    /// <param name="tracer">Traces steps, evaluations and checkpoints; timing only when null.</param>
    /// <param name="resumePath">The file <paramref name="resumeFrom"/> was read from, if any.</param>
    public static TrainingResult Execute(DnmConfig config, Device device, Checkpoint? resumeFrom, ITrainingObserver observer,
        IProgress<FetchProgress>? fetchProgress, CancellationToken cancel, StepTracer? tracer = null, string? resumePath = null)
    {
        var wall = Stopwatch.StartNew();
        config = RunSession.Merge(config, resumeFrom).Validated();
        // Open the data first: a missing or corrupt dataset must not leave an empty run directory behind.
        using var train = OpenSplit(config, "train", config.Limit, fetchProgress);
        using var test = OpenSplit(config, "test", null, fetchProgress);
        observer.OnMessage($"data: {train.Name} ({train.Count} samples, {train.Shape}), evaluation on {test.Name} ({test.Count} samples)");
        if (train.Count < config.BatchSize)
            throw new ConfigException($"batch-size {config.BatchSize} is larger than the training set ({train.Count} samples); lower --batch-size or raise --limit");

        using var trainer = new Trainer(config, train, test, device, new RunDirectory(config.Out), observer, tracer);
        if (resumeFrom is not null) trainer.Resume(resumeFrom, resumePath ?? "the checkpoint");
        trainer.Run(cancel);
        var final = trainer.Session.Finish(trainer.State, cancel);
        return new TrainingResult(trainer.Session.Directory.Root, final, trainer.State.GlobalStep, wall.Elapsed);
    }
}
