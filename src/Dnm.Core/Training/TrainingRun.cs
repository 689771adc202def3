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
/// metrics.jsonl, and writes final-metrics.json, the final checkpoint and the pictures.
/// </summary>
public static class TrainingRun
{
    public static FolderOptions FolderOptionsOf(DnmConfig c) => new()
    {
        Channels = c.ImageChannels, Height = c.ImageSize, Width = c.ImageSize,
        OnBadFile = c.OnBadImage, MaxImagePixels = c.MaxImagePixels,
    };

    private static string DataDirOf(DnmConfig c) => c.DataDir ?? DatasetCatalog.DefaultDataDir();

    /// <summary>
    /// The samples a run trains on, the same on every node: the dataset's training split, less the part a
    /// <c>test-fraction</c> holds out, then a <c>limit</c>-sized random subset seeded by the run's seed.
    /// </summary>
    /// <summary>The digest of the training files <paramref name="c"/> reads (<see cref="OpenTrain"/> first: they must exist).</summary>
    public static DatasetDigest TrainDigest(DnmConfig c) => DatasetDigest.Of(c.Dataset, "train", DataDirOf(c));

    public static IImageDataset OpenTrain(DnmConfig c, IProgress<FetchProgress>? progress)
    {
        var data = DatasetCatalog.Open(c.Dataset, "train", DataDirOf(c), null, FolderOptionsOf(c), progress);
        try
        {
            if (c.TestFraction is { } f) data = DatasetView.KeySplit(data, f, EvaluationSplit.Train);
            return c.Limit is { } n ? DatasetView.Subset(data, n, c.Seed) : data;
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The samples a run evaluates on: <c>test-dataset</c> (its test split where it has one), else the part
    /// <c>test-fraction</c> holds out, else the dataset's own test split, else, where none exists, the training samples:
    /// then <see cref="EvaluationSplit.Train"/>, which final-metrics.json records.
    /// </summary>
    public static (IImageDataset Data, EvaluationSplit Split) OpenEvaluation(DnmConfig c, IProgress<FetchProgress>? progress)
    {
        var folder = FolderOptionsOf(c);
        if (c.TestDataset is { } spec)
            return (DatasetCatalog.TryOpen(spec, "test", DataDirOf(c), null, folder, progress)
                    ?? DatasetCatalog.Open(spec, "train", DataDirOf(c), null, folder, progress), EvaluationSplit.Test);
        if (c.TestFraction is { } f)
            return (DatasetView.KeySplit(DatasetCatalog.Open(c.Dataset, "train", DataDirOf(c), null, folder, progress), f, EvaluationSplit.Test), EvaluationSplit.Test);
        var test = DatasetCatalog.TryOpen(c.Dataset, "test", DataDirOf(c), null, folder, progress);
        return test is not null ? (test, EvaluationSplit.Test) : (OpenTrain(c, progress), EvaluationSplit.Train);
    }

    /// <summary>
    /// <paramref name="c"/> with its batch size and smoothing weight fitted to a training set of <paramref name="samples"/>
    /// (<see cref="DnmConfig.ForTrainingSet"/>), said once through <paramref name="say"/> where that changed it. Every run
    /// does this once, when it has opened its data and before anything else uses the config.
    /// </summary>
    public static DnmConfig SizedFor(DnmConfig c, int samples, Action<string> say)
    {
        var sized = c.ForTrainingSet(samples);
        if (sized.BatchSize != c.BatchSize)
            say($"batch-size {sized.BatchSize}: the default for {samples} training samples (an epoch of at least {DnmConfig.MinStepsPerEpoch} steps; --batch-size chooses another)");
        if (!c.SmoothWeightChosen)
            say(sized.SmoothWeight > 0
                ? $"smooth-weight {sized.SmoothWeight}: the default up to {DnmConfig.MaxDefaultSmoothedSamples} training samples (--smooth-weight 0 turns it off)"
                : $"smooth-weight 0: the default above {DnmConfig.MaxDefaultSmoothedSamples} training samples, whose neighbour graph would cost the square of the set (--smooth-weight chooses one)");
        return sized;
    }

    /// <param name="resumeFrom">A checkpoint to continue from; its config wins, except device, threads and out.</param>
    /// <param name="tracer">Traces steps, evaluations and checkpoints; timing only when null.</param>
    /// <param name="resumePath">The file <paramref name="resumeFrom"/> was read from, if any.</param>
    public static TrainingResult Execute(DnmConfig config, Device device, Checkpoint? resumeFrom, ITrainingObserver observer,
        IProgress<FetchProgress>? fetchProgress, CancellationToken cancel, StepTracer? tracer = null, string? resumePath = null)
    {
        var wall = Stopwatch.StartNew();
        config = RunSession.Merge(config, resumeFrom).Validated();
        // Open the data first: a missing or corrupt dataset must not leave an empty run directory behind.
        using var train = OpenTrain(config, fetchProgress);
        var (test, split) = OpenEvaluation(config, fetchProgress);
        using var _ = test;
        observer.OnMessage($"data: {train.Name} ({train.Count} samples, {train.Shape}), evaluation on {test.Name} ({test.Count} samples)");
        config = SizedFor(config, train.Count, observer.OnMessage);
        if (train.Count < config.BatchSize)
            throw new ConfigException($"batch-size {config.BatchSize} is larger than the training set ({train.Count} samples); lower --batch-size or raise --limit");

        using var trainer = new Trainer(config, train, test, device, new RunDirectory(config.Out), observer, tracer, split);
        if (resumeFrom is not null) trainer.Resume(resumeFrom, resumePath ?? "the checkpoint");
        trainer.Run(cancel);
        var final = trainer.Session.Finish(trainer.State, cancel);
        return new TrainingResult(trainer.Session.Directory.Root, final, trainer.State.GlobalStep, wall.Elapsed);
    }
}
