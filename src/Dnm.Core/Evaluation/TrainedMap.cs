using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Model;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Evaluation;

/// <summary>
/// A trained map loaded from a checkpoint, ready to place, evaluate and draw datasets of the same
/// image shape. `dnm eval` and `dnm map` are thin wrappers around it. It builds the model alone: no optimizer
/// state, no step threads; it embeds in the run's micro-batches, so its numbers are the run's final ones.
/// </summary>
public sealed class TrainedMap : IDisposable
{
    private TrainedMap(Checkpoint checkpoint, string source, DnmModel model)
    {
        Checkpoint = checkpoint;
        Source = source;
        Model = model;
    }

    public Checkpoint Checkpoint { get; }
    /// <summary>Where the checkpoint came from, for messages.</summary>
    public string Source { get; }
    public DnmModel Model { get; }
    public DnmConfig Config => Checkpoint.Config;
    public ImageShape Shape => Checkpoint.Shape;

    /// <summary>Loads a checkpoint file; a missing, corrupt or incompatible one is a <see cref="CheckpointException"/>.</summary>
    public static TrainedMap Load(string path, Device device) => From(Checkpoint.Load(path), path, device);

    public static TrainedMap From(Checkpoint checkpoint, string source, Device device)
    {
        var model = DnmModel.Create(checkpoint.Config, checkpoint.Shape, device);
        try
        {
            model.Import(checkpoint.Tensors.ToDictionary(t => t.Name));
            return new TrainedMap(checkpoint, source, model);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens a split of <paramref name="dataset"/> the way the run opened its data (folder datasets get
    /// the checkpoint's image size and channels), and checks that its images fit the model.
    /// </summary>
    /// <remarks>A dataset with one split only (idx:, a plain folder, a shard pattern) gives it for either split.</remarks>
    public IImageDataset Open(string dataset, string split, string? dataDir, int? limit, IProgress<FetchProgress>? progress)
    {
        var config = Config with { DataDir = dataDir ?? Config.DataDir };
        var dir = config.DataDir ?? DatasetCatalog.DefaultDataDir();
        var folder = TrainingRun.FolderOptionsOf(config);
        return Checked(DatasetCatalog.TryOpen(dataset, split, dir, limit, folder, progress)
                       ?? DatasetCatalog.Open(dataset, "train", dir, limit, folder, progress));
    }

    /// <summary>
    /// A split to look at the map with (`dnm eval`, `dnm map`, `dnm explore`): the run's own dataset opens exactly as the
    /// run opened it (test split: <see cref="OpenEvaluationSet"/>, train split: <see cref="OpenTrainingSet"/>), any other
    /// dataset as its plain split; <paramref name="limit"/> keeps its first N samples.
    /// </summary>
    public IImageDataset OpenSplit(string dataset, string split, string? dataDir, int? limit, IProgress<FetchProgress>? progress)
    {
        var data = dataset != Config.Dataset ? Open(dataset, split, dataDir, null, progress)
            : split == "test" ? OpenEvaluationSet(dataDir, progress).Data
            : OpenTrainingSet(dataDir, progress);
        return limit is { } n ? DatasetView.First(data, n) : data;
    }

    /// <summary>The labelled samples that name the nodes: the run's training samples for its own dataset, else the dataset's train split.</summary>
    public IImageDataset OpenReference(string dataset, string? dataDir, IProgress<FetchProgress>? progress) =>
        dataset == Config.Dataset ? OpenTrainingSet(dataDir, progress) : Open(dataset, "train", dataDir, null, progress);

    /// <summary>The samples the run trained on (its split, test-fraction and seeded limit), opened as the run opened them.</summary>
    public IImageDataset OpenTrainingSet(string? dataDir, IProgress<FetchProgress>? progress) =>
        Checked(TrainingRun.OpenTrain(Config with { DataDir = dataDir ?? Config.DataDir }, progress));

    /// <summary>The samples the run evaluated on, and whether they were held out (<see cref="EvaluationSplit"/>).</summary>
    public (IImageDataset Data, EvaluationSplit Split) OpenEvaluationSet(string? dataDir, IProgress<FetchProgress>? progress)
    {
        var (data, split) = TrainingRun.OpenEvaluation(Config with { DataDir = dataDir ?? Config.DataDir }, progress);
        return (Checked(data), split);
    }

    private IImageDataset Checked(IImageDataset data)
    {
        try
        {
            RequireShape(data);
            return data;
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    /// <summary>The model only accepts images of the shape it was trained on.</summary>
    public void RequireShape(IImageDataset data)
    {
        if (data.Shape != Shape)
            throw new CheckpointException(
                $"checkpoint {Source} was trained on {Shape} images (channels x height x width) but {data.Name} has {data.Shape} images");
    }

    /// <summary>Embeds and places the first <paramref name="limit"/> samples (all by default).</summary>
    public Placement Place(IImageDataset data, CancellationToken cancel, int? limit = null, bool keepEmbeddings = false)
    {
        RequireShape(data);
        return MapEvaluator.Place(Model, data, Config.BatchSize, limit, cancel, keepEmbeddings);
    }

    /// <summary>Node labels from a labelled reference set (normally the training split); null without one.</summary>
    public int[]? LabelNodes(IImageDataset? reference, CancellationToken cancel) =>
        reference is { HasLabels: true } ? MapEvaluator.LabelMap(Place(reference, cancel), reference, Model.Som.Nodes) : null;

    /// <summary>Quality of the map on <paramref name="data"/>, with node labels taken from <paramref name="reference"/>.</summary>
    public MapQuality Evaluate(IImageDataset? reference, IImageDataset data, CancellationToken cancel)
    {
        var labelMap = LabelNodes(reference, cancel);
        var placed = Place(data, cancel);
        return MapEvaluator.Quality(placed, labelMap, data.HasLabels, Model.Som.Grid);
    }

    /// <summary>Writes placements.csv: one row per sample with its key, label and class (when known), BMU row and column, and distance.</summary>
    public void WritePlacements(string path, Placement placement, IImageDataset data) =>
        MapCsv.Write(path, placement.Bmu, placement.Distance, Model.Som.Rows, Model.Som.Cols,
            data.HasLabels ? placement.Labels : ReadOnlySpan<int>.Empty, data.Key, data.ClassNames);

    /// <summary>
    /// The map's pictures in <paramref name="directory"/>, named as in a run directory (<see cref="MapEvaluator.RenderPictures"/>);
    /// the hit map counts <paramref name="placement"/>'s samples. Returns the files written.
    /// </summary>
    public IReadOnlyList<string> RenderPictures(string directory, int[]? labelMap, IReadOnlyList<string> classNames, Placement placement) =>
        MapEvaluator.RenderPictures(Model, directory, labelMap, classNames, placement.Bmu);

    public void Dispose() => Model.Dispose();
}
